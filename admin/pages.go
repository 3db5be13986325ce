package admin

import (
	"errors"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/web"
)

// page is what every admin page template gets.
type page struct {
	Admin   *linking.User
	CSRF    string
	Section string
	Flash   string
	Error   string
	Data    any
}

func (s *Service) render(c echo.Context, status int, name, section string, data any) error {
	p := page{Admin: c.Get(ctxUser).(*linking.User), CSRF: c.Get(ctxSession).(*Session).CSRF, Section: section, Data: data,
		Flash: flashes[c.QueryParam("done")]}
	return c.Render(status, name, p)
}

// flashes are the outcomes a page reports after a redirect (by code, never by text from the URL).
var flashes = map[string]string{
	"disable": "The user is disabled and signed out everywhere.",
	"enable":  "The user is enabled.",
	"revoke":  "The user's sessions and refresh tokens are revoked.",
	"unlink":  "The link is removed.",
	"link":    "The upstream identity is linked.",
	"move":    "The link is moved.",
	"merge":   "The users are merged.",

	"reset-factors": "The user's second factors are removed and they are signed out everywhere.",
	"mfa-policy":    "The user's second-factor policy is set.",
	"sync":          "The directory sync runs; its progress shows below.",

	"join-group":   "The user is in the group.",
	"leave-group":  "The user is out of the group.",
	"save-group":   "The group is saved.",
	"delete-group": "The group is deleted, with its memberships.",
	"save-role":    "The role is saved.",
	"delete-role":  "The role is deleted, and taken from every group, role and user.",
}

type usersData struct {
	Query, Connector string
	Users            []userView
	Prev, Next       string
}

func (s *Service) usersPage(c echo.Context) error {
	offset, _ := strconv.Atoi(c.QueryParam("offset"))
	// at is how many users come before a page reached by a cursor: its
	// Previous link pages by offset (slower, for deep pages, than Next).
	at, _ := strconv.Atoi(c.QueryParam("at"))
	q := linking.Query{Text: c.QueryParam("q"), Connector: c.QueryParam("connector"), After: c.QueryParam("after"),
		Offset: max(offset, 0), Limit: 50}
	users, next, err := s.users.Search(c.Request().Context(), q)
	if errors.Is(err, linking.ErrBadCursor) {
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "That page of users cannot be shown",
			What: "Its link was changed, or made for another search.", Next: "Search again from the first page."})
	}
	if err != nil {
		return err
	}
	d := usersData{Query: q.Text, Connector: q.Connector}
	for _, u := range users {
		d.Users = append(d.Users, viewOf(u))
	}
	page := func(v url.Values) string {
		v.Set("q", q.Text)
		v.Set("connector", q.Connector)
		return "/admin/users?" + v.Encode()
	}
	if q.After == "" {
		at = 0
	}
	at = max(at, 0) + q.Offset
	if at > 0 {
		d.Prev = page(url.Values{"offset": {strconv.Itoa(max(at-q.Limit, 0))}})
	}
	if next != "" {
		d.Next = page(url.Values{"after": {next}, "at": {strconv.Itoa(at + len(users))}})
	}
	return s.render(c, http.StatusOK, "admin_users.html", "users", d)
}

func (s *Service) userPage(c echo.Context) error {
	d, err := s.detail(c.Request().Context(), c.Param("id"))
	if errors.Is(err, linking.ErrNotFound) {
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{Title: "No such user", Next: "Go back to the list of users."})
	}
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_user.html", "users", d)
}

// actions the user page offers, each confirmed on its own page first.
var actions = map[string]string{
	"disable": "Disable this user and sign them out everywhere",
	"enable":  "Enable this user",
	"revoke":  "Revoke all sessions and refresh tokens",
	"unlink":  "Remove this link",
	"link":    "Link an upstream identity",
	"move":    "Move this link to another user",
	"merge":   "Merge another user into this one",

	"reset-factors": "Reset this user's second factors and sign them out everywhere",
	"mfa-policy":    "Set this user's second-factor policy",
}

// policyOption is an option of the second-factor policy form.
type policyOption struct {
	Value, Label string
	Selected     bool
}

var policyLabels = map[string]string{
	policyDefault:      "Default: the connector's and the application's policy apply",
	config.MFAOff:      "Off: never ask for a second factor",
	config.MFAOptional: "Optional: ask when the user has a second factor",
	config.MFARequired: "Required: always ask; a user without one sets one up when signing in",
}

type confirmData struct {
	User       *userDetail
	Action     string
	Title      string
	Link       *linkView
	Connectors []brokers.ConnectorStatus
	NeedsFresh bool
	StepUp     bool // the fresh sign-in must use the admin's second factor
	FreshURL   string
	LastLogin  bool // the link is the user's last way to sign in: the override is needed
	Values     url.Values
	Problem    string         // why the action was refused
	Policies   []policyOption // mfa-policy: the choices, the user's current one selected
}

func (s *Service) confirmData(c echo.Context, q url.Values) (*confirmData, error) {
	d, err := s.detail(c.Request().Context(), c.Param("id"))
	if err != nil {
		return nil, err
	}
	action := q.Get("action")
	title, ok := actions[action]
	if !ok {
		return nil, errBadInput{"Unknown action."}
	}
	back := url.Values{}
	for k, v := range q {
		if k != "csrf" { // a refused form's token stays out of URLs
			back[k] = v
		}
	}
	fresh, err := s.freshLogin(c, "/admin/users/"+d.User.ID+"/confirm?"+back.Encode())
	if err != nil {
		return nil, err
	}
	cd := &confirmData{User: d, Action: action, Title: title, Values: q, NeedsFresh: fresh.Needed, StepUp: fresh.StepUp, FreshURL: fresh.URL}
	if id, err := strconv.ParseUint(q.Get("link"), 10, 32); err == nil {
		for i := range d.Links {
			if d.Links[i].ID == uint(id) {
				cd.Link = &d.Links[i]
			}
		}
		if cd.Link == nil {
			return nil, errBadInput{"That link is not this user's."}
		}
		links, err := s.users.Links(c.Request().Context(), d.User.ID)
		if err != nil {
			return nil, err
		}
		cd.LastLogin = !linking.Removable(links, cd.Link.ID, s.broker.Usable)
	}
	if (action == "unlink" || action == "move") && cd.Link == nil {
		return nil, errBadInput{"Choose a link."}
	}
	if action == "mfa-policy" {
		for _, p := range mfaPolicies {
			cd.Policies = append(cd.Policies, policyOption{Value: p, Label: policyLabels[p], Selected: p == d.Factors.Policy})
		}
	}
	if action == "link" {
		for _, st := range s.broker.Connectors() { // the form needs names, not a health check
			if st.ID != linking.LocalConnector {
				cd.Connectors = append(cd.Connectors, st)
			}
		}
	}
	return cd, nil
}

func (s *Service) confirmPage(c echo.Context) error {
	cd, err := s.confirmData(c, c.QueryParams())
	if err != nil {
		return s.pageFail(c, err)
	}
	return s.render(c, http.StatusOK, "admin_confirm.html", "users", cd)
}

// doAction runs a confirmed action: it needs the page's CSRF token and a
// login younger than the configured age, with the admin's second factor
// when they have one (see freshLogin).
func (s *Service) doAction(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	form := c.Request().PostForm
	cd, err := s.confirmData(c, form)
	if err != nil {
		return s.pageFail(c, err)
	}
	if cd.NeedsFresh {
		return s.render(c, http.StatusForbidden, "admin_confirm.html", "users", cd)
	}
	ctx, a, userID := c.Request().Context(), actor(c), cd.User.User.ID
	force := form.Get("force") == "yes"
	switch cd.Action {
	case "disable", "enable":
		err = s.setDisabled(ctx, a, userID, cd.Action == "disable")
	case "revoke":
		err = s.revokeSessions(ctx, a, userID)
	case "unlink":
		err = s.unlink(ctx, a, userID, cd.Link.ID, force)
	case "link":
		err = s.link(ctx, a, userID, linking.Upstream{Connector: form.Get("connector"), Subject: strings.TrimSpace(form.Get("subject")),
			Username: strings.TrimSpace(form.Get("username")), Email: strings.TrimSpace(form.Get("email"))})
	case "move":
		err = s.move(ctx, a, userID, cd.Link.ID, strings.TrimSpace(form.Get("to")), force)
		if err == nil {
			userID = strings.TrimSpace(form.Get("to"))
		}
	case "merge":
		err = s.merge(ctx, a, userID, strings.TrimSpace(form.Get("from")))
	case "reset-factors":
		err = s.resetFactors(ctx, a, userID)
	case "mfa-policy":
		err = s.setMFAPolicy(ctx, a, userID, form.Get("policy"))
	}
	var bad errBadInput
	if errors.As(err, &bad) {
		cd.Problem = bad.msg
		return s.render(c, http.StatusUnprocessableEntity, "admin_confirm.html", "users", cd)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+userID+"?done="+cd.Action)
}

func (s *Service) pageFail(c echo.Context, err error) error {
	var bad errBadInput
	switch {
	case errors.As(err, &bad):
		return web.RenderError(c, http.StatusBadRequest, web.ErrorPage{Title: "That cannot be done", What: bad.msg,
			Next: "Go back to the user's page."})
	case errors.Is(err, linking.ErrNotFound):
		return web.RenderError(c, http.StatusNotFound, web.ErrorPage{Title: "No such user", Next: "Go back to the list of users."})
	}
	return err
}

type connectorRow struct {
	brokers.ConnectorStatus
	Logins      int64 `json:"logins_24h"`
	Failures    int64 `json:"failures_24h"`
	ExpiresSoon bool  `json:"certificate_expires_soon"`
	// Sync is the directory sync of a connector that imports its directory.
	Sync *syncView `json:"sync,omitempty"`
}

// connectorRows is each connector's live status and its logins of the last 24 hours.
func (s *Service) connectorRows(c echo.Context) []connectorRow {
	ctx := c.Request().Context()
	since := time.Now().Add(-24 * time.Hour)
	ok, _ := s.audit.Counts(ctx, audit.LoginSucceeded, since)
	bad, _ := s.audit.Counts(ctx, audit.LoginFailed, since)
	var rows []connectorRow
	for _, st := range s.broker.Status(ctx) {
		r := connectorRow{ConnectorStatus: st, Logins: ok[st.ID], Failures: bad[st.ID]}
		r.ExpiresSoon = st.CertificateExpiry != nil && time.Until(*st.CertificateExpiry) < 30*24*time.Hour
		r.Sync = s.syncState(c, st.ID)
		rows = append(rows, r)
	}
	return rows
}

// connectorsData is the connectors page: Syncing refreshes it while a
// directory sync runs.
type connectorsData struct {
	Rows    []connectorRow
	Syncing bool
}

func (s *Service) connectorsPage(c echo.Context) error {
	d := connectorsData{Rows: s.connectorRows(c)}
	for _, r := range d.Rows {
		d.Syncing = d.Syncing || (r.Sync != nil && r.Sync.Running)
	}
	return s.render(c, http.StatusOK, "admin_connectors.html", "connectors", d)
}

func (s *Service) clientsPage(c echo.Context) error {
	clients, err := s.clientViews(c)
	if err != nil {
		return err
	}
	return s.render(c, http.StatusOK, "admin_clients.html", "clients", clients)
}

type rotateData struct {
	ClientID   string
	Secret     string
	Once       string // the form's single-use token
	Used       bool   // the form was sent already (a reload): nothing rotated again
	NeedsFresh bool
	StepUp     bool
	FreshURL   string
}

func (s *Service) confirmRotatePage(c echo.Context) error {
	id := c.Param("id")
	fresh, err := s.freshLogin(c, "/admin/clients/"+url.PathEscape(id)+"/confirm")
	if err != nil {
		return err
	}
	d := rotateData{ClientID: id, NeedsFresh: fresh.Needed, StepUp: fresh.StepUp, FreshURL: fresh.URL}
	if !d.NeedsFresh {
		if d.Once, err = s.issueOnce(c); err != nil {
			return err
		}
	}
	return s.render(c, http.StatusOK, "admin_rotate.html", "clients", d)
}

// rotatePage rotates a client's secret and shows it, this once. The form
// works once: sending it again (a reload) must not rotate again and leave
// the application with a secret nobody saw.
func (s *Service) rotatePage(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	id := c.Param("id")
	fresh, err := s.freshLogin(c, "")
	if err != nil {
		return err
	}
	if fresh.Needed {
		return s.confirmRotatePage(c)
	}
	used, err := s.useOnce(c, c.Request().PostForm.Get("once"))
	if err != nil {
		return err
	}
	if !used {
		return s.render(c, http.StatusConflict, "admin_rotate.html", "clients", rotateData{ClientID: id, Used: true})
	}
	secret, err := s.rotateSecret(c.Request().Context(), actor(c), id)
	if err != nil {
		return s.pageFail(c, err)
	}
	return s.render(c, http.StatusOK, "admin_rotate.html", "clients", rotateData{ClientID: id, Secret: secret})
}

type auditData struct {
	Filter     audit.Filter
	Values     url.Values
	Events     []audit.Event
	CSV        string
	Prev, Next string
}

func (s *Service) auditPage(c echo.Context) error {
	f, err := auditFilter(c)
	if err != nil {
		return s.pageFail(c, err)
	}
	if c.QueryParam("format") == "csv" {
		return s.auditCSV(c, f)
	}
	f.Limit = 100
	events, more, err := s.audit.Find(c.Request().Context(), f)
	if err != nil {
		return err
	}
	q := c.QueryParams()
	d := auditData{Filter: f, Values: q, Events: events}
	csv := url.Values{}
	for k, v := range q {
		if k != "offset" {
			csv[k] = v
		}
	}
	csv.Set("format", "csv")
	d.CSV = "/admin/audit?" + csv.Encode()
	at := func(off int) string {
		v := url.Values{}
		for k, vs := range q {
			v[k] = vs
		}
		v.Set("offset", strconv.Itoa(off))
		return "/admin/audit?" + v.Encode()
	}
	if f.Offset > 0 {
		d.Prev = at(max(f.Offset-f.Limit, 0))
	}
	if more {
		d.Next = at(f.Offset + f.Limit)
	}
	return s.render(c, http.StatusOK, "admin_audit.html", "audit", d)
}
