package admin

import (
	"errors"
	"net/http"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/dirsync"
	"github.com/fedhub/fedhub/web"
)

// syncView is a connector's directory sync on the connectors page.
type syncView struct {
	dirsync.State
	Running bool `json:"running"`
}

// syncState is the directory sync of a connector that imports its
// directory, read from the database: the same on every node.
func (s *Service) syncState(c echo.Context, id string) *syncView {
	if s.sync == nil || !s.sync.Imports(id) {
		return nil
	}
	st, err := s.sync.State(c.Request().Context(), id)
	if err != nil {
		s.log.Error("read the directory sync's state", "connector", id, "err", err)
		return nil
	}
	return &syncView{State: st, Running: st.Running(time.Now())}
}

// errNoSync says a connector does not import its directory.
var errNoSync = errors.New("this connector does not import its directory (sync: {import: on})")

// startSync starts a connector's directory sync for the signed-in actor;
// busy says one runs already (on any node), which is then the one to watch.
func (s *Service) startSync(c echo.Context, id string) (busy bool, err error) {
	if s.sync == nil || !s.sync.Imports(id) {
		return false, errNoSync
	}
	err = s.sync.Start(c.Request().Context(), id, actor(c).ID)
	if errors.Is(err, dirsync.ErrBusy) {
		return true, nil
	}
	return false, err
}

// syncNow starts a connector's directory sync ("Sync now") and goes back to
// the connectors page, which shows its progress.
func (s *Service) syncNow(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	if _, err := s.startSync(c, c.Param("id")); errors.Is(err, errNoSync) {
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{Title: "No directory sync", What: "This connector does not import its directory.",
			Next: "Go back to the connectors."})
	} else if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/connectors?done=sync")
}

// apiSync starts a connector's directory sync: 202 with its state, or 409
// with the state of the run that is going on.
func (s *Service) apiSync(c echo.Context) error {
	id := c.Param("id")
	busy, err := s.startSync(c, id)
	if errors.Is(err, errNoSync) {
		return c.JSON(http.StatusNotFound, apiError{"not_found", err.Error()})
	}
	if err != nil {
		return err
	}
	status := http.StatusAccepted
	if busy {
		status = http.StatusConflict
	}
	return c.JSON(status, s.syncState(c, id))
}
