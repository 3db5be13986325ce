package web

import (
	"log/slog"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/requestid"
)

// RequestObserver is told of every request answered (metrics). route is the
// matched route pattern, never the raw path, which may carry codes or grow
// without bound.
type RequestObserver interface {
	ObserveRequest(r *http.Request, route string, status int, d time.Duration)
}

// unmatched is the route of requests that matched none.
const unmatched = "unmatched"

// Requests names each request (requestid: from X-Request-ID when valid, else
// new; echoed in the response and carried in the request's context), answers
// errors through the error handler so that the status is known, then writes
// one access-log line and reports the request to observe. The line has no
// path or query: those can carry codes and tokens.
func Requests(log *slog.Logger, observe RequestObserver) echo.MiddlewareFunc {
	return func(next echo.HandlerFunc) echo.HandlerFunc {
		return func(c echo.Context) error {
			start := time.Now()
			r := c.Request()
			id := requestid.Of(r.Header.Get(requestid.Header))
			c.SetRequest(r.WithContext(requestid.NewContext(r.Context(), id)))
			c.Response().Header().Set(requestid.Header, id)
			if err := next(c); err != nil {
				c.Error(err)
			}
			d := time.Since(start)
			route := c.Path()
			if route == "" {
				route = unmatched
			}
			status := c.Response().Status
			log.LogAttrs(r.Context(), slog.LevelInfo, "request", slog.String("method", r.Method), slog.String("route", route),
				slog.Int("status", status), slog.Duration("duration", d), slog.String("ip", c.RealIP()), slog.String("request_id", id))
			if observe != nil {
				observe.ObserveRequest(c.Request(), route, status, d)
			}
			return nil
		}
	}
}
