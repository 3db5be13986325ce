package admin

import (
	"errors"
	"net/http"
	"strconv"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
)

// The JSON API: every action of the pages, for automation.

func actor(c echo.Context) Actor { return c.Get(ctxActor).(Actor) }

// apiFail answers an action's error as JSON.
func apiFail(c echo.Context, err error) error {
	var bad errBadInput
	switch {
	case errors.As(err, &bad):
		return c.JSON(http.StatusUnprocessableEntity, apiError{"refused", bad.msg})
	case errors.Is(err, linking.ErrNotFound), errors.Is(err, linking.ErrNotLinked):
		return c.JSON(http.StatusNotFound, apiError{"not_found", "no such user or link"})
	}
	return err
}

func (s *Service) apiUsers(c echo.Context) error {
	offset, _ := strconv.Atoi(c.QueryParam("offset"))
	limit, _ := strconv.Atoi(c.QueryParam("limit"))
	if limit == 0 {
		limit = 50
	}
	users, next, err := s.users.Search(c.Request().Context(), linking.Query{Text: c.QueryParam("q"),
		Connector: c.QueryParam("connector"), After: c.QueryParam("after"), Offset: offset, Limit: limit})
	if errors.Is(err, linking.ErrBadCursor) {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", "after: " + linking.ErrBadCursor.Error()})
	}
	if err != nil {
		return err
	}
	out := struct {
		Users []userView `json:"users"`
		More  bool       `json:"more"`
		Next  string     `json:"next,omitempty"`
	}{Users: []userView{}, More: next != "", Next: next}
	for _, u := range users {
		out.Users = append(out.Users, viewOf(u))
	}
	return c.JSON(http.StatusOK, out)
}

func (s *Service) apiUser(c echo.Context) error {
	d, err := s.detail(c.Request().Context(), c.Param("id"))
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(http.StatusOK, d)
}

// apiDone answers a successful action with the user as it is now.
func (s *Service) apiDone(c echo.Context, userID string) error {
	return s.apiUser(withParam(c, "id", userID))
}

func withParam(c echo.Context, name, value string) echo.Context {
	c.SetParamNames(name)
	c.SetParamValues(value)
	return c
}

func (s *Service) apiDisable(c echo.Context) error {
	if err := s.setDisabled(c.Request().Context(), actor(c), c.Param("id"), true); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiEnable(c echo.Context) error {
	if err := s.setDisabled(c.Request().Context(), actor(c), c.Param("id"), false); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiRevoke(c echo.Context) error {
	if err := s.revokeSessions(c.Request().Context(), actor(c), c.Param("id")); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiLink(c echo.Context) error {
	var in struct {
		Connector string `json:"connector"`
		Subject   string `json:"subject"`
		Username  string `json:"username"`
		Email     string `json:"email"`
	}
	if err := c.Bind(&in); err != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", "the body must be JSON"})
	}
	up := linking.Upstream{Connector: in.Connector, Subject: in.Subject, Username: in.Username, Email: in.Email}
	if err := s.link(c.Request().Context(), actor(c), c.Param("id"), up); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func linkParam(c echo.Context) (uint, bool) {
	id, err := strconv.ParseUint(c.Param("link"), 10, 32)
	return uint(id), err == nil
}

func (s *Service) apiUnlink(c echo.Context) error {
	id, ok := linkParam(c)
	if !ok {
		return c.JSON(http.StatusNotFound, apiError{"not_found", "no such link"})
	}
	force := c.QueryParam("force") == "true"
	if err := s.unlink(c.Request().Context(), actor(c), c.Param("id"), id, force); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiMove(c echo.Context) error {
	id, ok := linkParam(c)
	if !ok {
		return c.JSON(http.StatusNotFound, apiError{"not_found", "no such link"})
	}
	var in struct {
		To    string `json:"to_user_id"`
		Force bool   `json:"force"`
	}
	if c.Bind(&in) != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", "give to_user_id (and force) as JSON"})
	}
	if err := s.ownsLink(c, c.Param("id"), id); err != nil {
		return apiFail(c, err)
	}
	if err := s.move(c.Request().Context(), actor(c), c.Param("id"), id, in.To, in.Force); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, in.To)
}

// ownsLink checks that a link named in a user's URL is that user's.
func (s *Service) ownsLink(c echo.Context, userID string, linkID uint) error {
	links, err := s.users.Links(c.Request().Context(), userID)
	if err != nil {
		return err
	}
	for _, l := range links {
		if l.ID == linkID {
			return nil
		}
	}
	return linking.ErrNotLinked
}

func (s *Service) apiMerge(c echo.Context) error {
	var in struct {
		From string `json:"from_user_id"`
	}
	if c.Bind(&in) != nil || in.From == "" {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", "give from_user_id as JSON"})
	}
	if _, err := s.users.UserByID(c.Request().Context(), c.Param("id")); err != nil {
		return apiFail(c, err)
	}
	if err := s.merge(c.Request().Context(), actor(c), c.Param("id"), in.From); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

// apiFactors lists a user's second factors and their own policy.
func (s *Service) apiFactors(c echo.Context) error {
	ctx := c.Request().Context()
	u, err := s.users.UserByID(ctx, c.Param("id"))
	if err != nil {
		return apiFail(c, err)
	}
	v, err := s.factorsOf(ctx, u)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, v)
}

func (s *Service) apiResetFactors(c echo.Context) error {
	if err := s.resetFactors(c.Request().Context(), actor(c), c.Param("id")); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

// apiSetMFAPolicy sets a user's own second-factor policy: {"policy": "default" | "off" | "optional" | "required"}.
func (s *Service) apiSetMFAPolicy(c echo.Context) error {
	var in struct {
		Policy string `json:"policy"`
	}
	if err := c.Bind(&in); err != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", `the body must be JSON: {"policy": "default" | "off" | "optional" | "required"}`})
	}
	if _, ok := storedPolicy(in.Policy); !ok {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", "policy must be one of default, off, optional, required"})
	}
	if err := s.setMFAPolicy(c.Request().Context(), actor(c), c.Param("id"), in.Policy); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiConnectors(c echo.Context) error {
	return c.JSON(http.StatusOK, map[string]any{"connectors": s.connectorRows(c)})
}

type clientView struct {
	ID              string     `json:"id"`
	Name            string     `json:"name"`
	Public          bool       `json:"public"`
	GrantTypes      []string   `json:"grant_types"`
	RedirectURIs    []string   `json:"redirect_uris"`
	Scopes          []string   `json:"scopes,omitempty"`
	SecretRotatedAt *time.Time `json:"secret_rotated_at,omitempty"`
	RemovedAt       *time.Time `json:"removed_at,omitempty"` // disabled: no longer in the configuration
}

func (s *Service) clientViews(c echo.Context) ([]clientView, error) {
	clients, err := s.issuer.Clients(c.Request().Context())
	if err != nil {
		return nil, err
	}
	out := []clientView{}
	for _, cl := range clients { // never the secret, not even its hash
		out = append(out, clientView{ID: cl.ID, Name: cl.Name, Public: cl.Public, GrantTypes: cl.GrantTypes,
			RedirectURIs: cl.RedirectURIs, Scopes: cl.Scopes, SecretRotatedAt: cl.SecretRotatedAt, RemovedAt: cl.RemovedAt})
	}
	return out, nil
}

func (s *Service) apiClients(c echo.Context) error {
	clients, err := s.clientViews(c)
	if err != nil {
		return err
	}
	return c.JSON(http.StatusOK, map[string]any{"clients": clients})
}

func (s *Service) apiRotate(c echo.Context) error {
	secret, err := s.rotateSecret(c.Request().Context(), actor(c), c.Param("id"))
	if err != nil {
		return apiFail(c, err)
	}
	return c.JSON(http.StatusOK, map[string]string{"client_id": c.Param("id"), "client_secret": secret})
}

// auditFilter reads the audit log's filter from the query.
func auditFilter(c echo.Context) (audit.Filter, error) {
	f := audit.Filter{UserID: c.QueryParam("user"), Connector: c.QueryParam("connector"), Type: c.QueryParam("type"),
		RequestID: c.QueryParam("request_id")}
	f.Offset, _ = strconv.Atoi(c.QueryParam("offset"))
	f.Limit, _ = strconv.Atoi(c.QueryParam("limit"))
	for name, t := range map[string]*time.Time{"since": &f.Since, "until": &f.Until} {
		if v := c.QueryParam(name); v != "" {
			parsed, err := time.Parse(time.RFC3339, v)
			if err != nil {
				if parsed, err = time.Parse("2006-01-02T15:04", v); err != nil { // an HTML datetime-local input
					return f, errBadInput{name + " must be a time such as 2026-11-23T10:00:00Z"}
				}
			}
			*t = parsed
		}
	}
	return f, nil
}

func (s *Service) apiAudit(c echo.Context) error {
	f, err := auditFilter(c)
	if err != nil {
		return apiFail(c, err)
	}
	if c.QueryParam("format") == "csv" {
		return s.auditCSV(c, f)
	}
	events, more, err := s.audit.Find(c.Request().Context(), f)
	if err != nil {
		return err
	}
	if events == nil {
		events = []audit.Event{}
	}
	return c.JSON(http.StatusOK, map[string]any{"events": events, "more": more})
}

// auditCSV exports the filtered log (up to 100,000 events) as CSV.
func (s *Service) auditCSV(c echo.Context, f audit.Filter) error {
	f.Offset, f.Limit = 0, 100000
	events, _, err := s.audit.Find(c.Request().Context(), f)
	if err != nil {
		return err
	}
	h := c.Response().Header()
	h.Set("Content-Type", "text/csv; charset=utf-8")
	h.Set("Content-Disposition", `attachment; filename="fedhub-audit.csv"`)
	c.Response().WriteHeader(http.StatusOK)
	return audit.WriteCSV(c.Response(), events)
}
