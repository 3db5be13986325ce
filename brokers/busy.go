package brokers

import (
	"errors"
	"net/http"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/login"
)

// failedStatus is the status of the login page after a failed password
// login: 503 with Retry-After when the password could not be checked for
// lack of capacity (login.ErrBusy), 401 otherwise.
func failedStatus(c echo.Context, err error) int {
	if errors.Is(err, login.ErrBusy) {
		c.Response().Header().Set("Retry-After", login.BusyRetryAfter)
		return http.StatusServiceUnavailable
	}
	return http.StatusUnauthorized
}
