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

// syncNow starts a connector's directory sync ("Sync now") and goes back to
// the connectors page, which shows its progress.
func (s *Service) syncNow(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	id := c.Param("id")
	if s.sync == nil || !s.sync.Imports(id) {
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{Title: "No directory sync",
			What: "This connector does not import its directory (sync: {import: on}).", Next: "Go back to the connectors."})
	}
	err := s.sync.Start(c.Request().Context(), id, actor(c).ID)
	if err != nil && !errors.Is(err, dirsync.ErrBusy) { // busy: its progress is shown all the same
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/connectors?done=sync")
}
