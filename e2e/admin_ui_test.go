package e2e

import (
	"context"
	"encoding/csv"
	"encoding/json"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// Passwords of the users the admin UI test adds to the default ones.
const (
	auCarolPass = "carol-Passw0rd!"
	auDavePass  = "dave-Passw0rd!"
	auErinPass  = "erin-Passw0rd!"
	auFrankPass = "frank-Passw0rd!"
)

// auUsers are appended to defaultConfig's users: carol, dave (his password is
// his only way to sign in), erin (whose email is not her username) and frank
// (with a role and a group of his own, to be merged into carol).
const auUsers = `  - username: carol
    email: carol@example.org
    name: Carol Example
    password: ${CAROL_PASSWORD}
  - username: dave
    email: dave@example.net
    name: Dave Example
    password: ${DAVE_PASSWORD}
  - username: erin
    email: e.smith@example.org
    name: Erin Smith
    password: ${ERIN_PASSWORD}
  - username: frank
    email: frank@example.org
    name: Frank Example
    password: ${FRANK_PASSWORD}
    roles: [auditor]
    groups: [ops]
`

// auEnv are the passwords of auUsers and the upstream's client secret.
func auEnv() Option {
	return WithEnv("CAROL_PASSWORD="+auCarolPass, "DAVE_PASSWORD="+auDavePass, "ERIN_PASSWORD="+auErinPass,
		"FRANK_PASSWORD="+auFrankPass, "ZITADEL_SECRET="+upstreamSecret)
}

// auConfig is the default configuration with auUsers, a live upstream
// (zitadel, at issuer) and a dead one (partner: nothing listens at dead);
// extra goes at the end (e.g. an admin section).
func auConfig(issuer, dead, extra string) Option {
	return WithConfig(defaultConfig + auUsers + `connectors:
  - id: zitadel
    type: oidc
    name: Partner SSO
    oidc:
      issuer: ` + issuer + `
      client_id: fedhub
      client_secret: ${ZITADEL_SECRET}
      use_userinfo: true
  - id: partner
    type: oidc
    name: Old partner
    oidc:
      issuer: ` + dead + `
      client_id: fedhub
      client_secret: ${ZITADEL_SECRET}
` + extra)
}

// auFlashes are the messages the user page shows after each action.
var auFlashes = map[string]string{
	"disable": "The user is disabled and signed out everywhere.",
	"enable":  "The user is enabled.",
	"revoke":  "The user's sessions and refresh tokens are revoked.",
	"unlink":  "The link is removed.",
	"link":    "The upstream identity is linked.",
	"move":    "The link is moved.",
	"merge":   "The users are merged.",

	"reset-factors": "The user's second factors are removed and they are signed out everywhere.",
	"mfa-policy":    "The user's second-factor policy is set.",
}

// auJS quotes a string for a JavaScript expression.
func auJS(s string) string {
	b, _ := json.Marshal(s)
	return string(b)
}

// auBody is the text of the page, for failure messages.
func auBody(ctx context.Context) string {
	loc, _ := chromedp.Run(ctx, chromedp.Location())
	text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`document.body ? document.body.innerText : ""`))
	return loc + "\n" + text
}

// auNav opens a URL in the browser and returns the HTTP status of the page.
func auNav(t *testing.T, ctx context.Context, rawURL string) int64 {
	t.Helper()
	nctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.Run(nctx, chromedp.NavigateResponse(rawURL))
	if err != nil {
		t.Fatalf("open %s: %v", rawURL, err)
	}
	return resp.Status
}

// auClick clicks a link or a submit button and waits for the page it leads
// to; it returns that page's HTTP status (after redirects).
func auClick(t *testing.T, ctx context.Context, sel string) int64 {
	t.Helper()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	resp, err := chromedp.RunResponse(cctx, chromedp.Click(chromedp.CSS(sel)))
	if err != nil {
		t.Fatalf("click %s: %v\n%s", sel, err, auBody(ctx))
	}
	return resp.Status
}

// auHas says whether the page has an element, without waiting for one.
func auHas(t *testing.T, ctx context.Context, sel string) bool {
	t.Helper()
	ok, err := chromedp.Run(ctx, chromedp.Evaluate[bool](`document.querySelector(`+auJS(sel)+`) !== null`))
	if err != nil {
		t.Fatal(err)
	}
	return ok
}

// auRows is the text of a table's body cells, row by row.
func auRows(t *testing.T, ctx context.Context, table string) [][]string {
	t.Helper()
	rows, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll(`+auJS(table+" tbody tr")+
		`)).map(tr => Array.from(tr.cells).map(td => td.innerText.trim()))`))
	if err != nil {
		t.Fatal(err)
	}
	return rows
}

// auColumn is one column of auRows.
func auColumn(rows [][]string, i int) []string {
	var out []string
	for _, r := range rows {
		if i < len(r) {
			out = append(out, r[i])
		}
	}
	return out
}

// auType replaces the value of a form field by typing into it.
func auType(t *testing.T, ctx context.Context, sel, value string) {
	t.Helper()
	// (chromedp.SetValue refuses the empty string: it compares what it set with what it reads back.)
	clear := chromedp.Evaluate[chromedp.Void](`document.querySelector(` + auJS(sel) + `).value = ""`)
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(sel)), clear, chromedp.SendKeys(chromedp.CSS(sel), value)); err != nil {
		t.Fatalf("type into %s: %v\n%s", sel, err, auBody(ctx))
	}
}

// auSignIn fills in fedhub's login page, which the browser is on, and
// returns the status of the page the sign-in leads to.
func auSignIn(t *testing.T, ctx context.Context, username, password string) int64 {
	t.Helper()
	if got := textOf(t, ctx, "h1"); got != "Sign in" {
		t.Fatalf("expected fedhub's login page, got %q:\n%s", got, auBody(ctx))
	}
	auType(t, ctx, "#username", username)
	auType(t, ctx, "#password", password)
	return auClick(t, ctx, "#sign-in")
}

// auAdminLogin opens /admin, which sends the browser to fedhub's login page,
// and signs in there.
func auAdminLogin(t *testing.T, ctx context.Context, s *Server, username, password string) int64 {
	t.Helper()
	if st := auNav(t, ctx, s.URL+"/admin"); st != http.StatusOK {
		t.Fatalf("/admin answered %d:\n%s", st, auBody(ctx))
	}
	return auSignIn(t, ctx, username, password)
}

// auUserID finds a user with the admin search and returns the ID its link points at.
func auUserID(t *testing.T, ctx context.Context, s *Server, username string) string {
	t.Helper()
	auNav(t, ctx, s.URL+"/admin/users?q="+url.QueryEscape(username))
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(() => {
		for (const a of document.querySelectorAll("#users a")) if (a.textContent.trim() === `+auJS(username)+`) return a.getAttribute("href");
		return "";
	})()`))
	if err != nil || !strings.HasPrefix(href, "/admin/users/") {
		t.Fatalf("the search for %s shows no link to the user (%v):\n%s", username, err, auBody(ctx))
	}
	return strings.TrimPrefix(href, "/admin/users/")
}

// auOpenConfirm opens a user's page and follows one of its action links
// (#action-…, #unlink-…, #move-…) to the confirm page.
func auOpenConfirm(t *testing.T, ctx context.Context, s *Server, userID, link string) {
	t.Helper()
	if st := auNav(t, ctx, s.URL+"/admin/users/"+userID); st != http.StatusOK {
		t.Fatalf("the user page answered %d:\n%s", st, auBody(ctx))
	}
	if st := auClick(t, ctx, link); st != http.StatusOK {
		t.Fatalf("following %s: the confirm page answered %d:\n%s", link, st, auBody(ctx))
	}
	textOf(t, ctx, "#confirm-form")
}

// auAction runs one action from a user's page: its link, the confirm page
// (fill completes the form), the confirm button. It returns the status of
// the page the browser lands on.
func auAction(t *testing.T, ctx context.Context, s *Server, userID, link string, fill func()) int64 {
	t.Helper()
	auOpenConfirm(t, ctx, s, userID, link)
	if fill != nil {
		fill()
	}
	return auClick(t, ctx, "#confirm")
}

// auWantFlash checks that the page is the user page after an action, with its message.
func auWantFlash(t *testing.T, ctx context.Context, status int64, action string) {
	t.Helper()
	if status != http.StatusOK {
		t.Fatalf("%s answered %d:\n%s", action, status, auBody(ctx))
	}
	if got := textOf(t, ctx, "#flash"); got != auFlashes[action] {
		t.Fatalf("after %s the page says %q, want %q", action, got, auFlashes[action])
	}
}

// auLinkIDs are the IDs of a user page's links, from its #unlink-<id> anchors, by connector.
func auLinkIDs(t *testing.T, ctx context.Context) map[string]string {
	t.Helper()
	pairs, err := chromedp.Run(ctx, chromedp.Evaluate[[][]string](`Array.from(document.querySelectorAll("#links a[id^=unlink-]")).map(a =>
		[a.closest("tr").cells[0].innerText.trim(), a.id.slice("unlink-".length)])`))
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]string{}
	for _, p := range pairs {
		out[p[0]] = p[1]
	}
	return out
}

// auShot saves a screenshot to the artifacts; with doc set, and when
// FEDHUB_UPDATE_DOCS=1, also a full-page one to docs/NAME.png.
func auShot(t *testing.T, ctx context.Context, name string, doc bool) {
	t.Helper()
	screenshot(t, ctx, name)
	if !doc || os.Getenv("FEDHUB_UPDATE_DOCS") != "1" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.FullScreenshot(100))
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	dir := filepath.Join("..", "docs")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// auSignInAs runs a code flow as a local user in a harness browser and
// returns the verified ID token.
func auSignInAs(t *testing.T, s *Server, b *Browser, username, password string) ocIDToken {
	t.Helper()
	params := AuthParams("scope", "openid offline_access")
	_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocAuthorizeAs(t, s, b, params, username, password), params), params)
	return idt
}

// auPasswordAnswer submits the login form of a new authorization request
// and returns fedhub's answer.
func auPasswordAnswer(t *testing.T, s *Server, username, password string) (*http.Response, string) {
	t.Helper()
	b := NewBrowser(t)
	return b.Submit(b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()), username, password)
}

// auWantDisabled checks that a user's right password no longer signs them
// in: the login page says the account is disabled, and no code is issued.
func auWantDisabled(t *testing.T, s *Server, username, password string) {
	t.Helper()
	resp, page := auPasswordAnswer(t, s, username, password)
	if resp.StatusCode != http.StatusUnauthorized || resp.Header.Get("Location") != "" || !strings.Contains(page, "Your account is disabled") {
		t.Errorf("disabled %s signing in got %d %q:\n%s", username, resp.StatusCode, resp.Header.Get("Location"), page)
	}
}

// auHeading is the first <h1> of an HTML page.
func auHeading(page string) string {
	_, rest, _ := strings.Cut(page, "<h1>")
	h, _, _ := strings.Cut(rest, "</h1>")
	return h
}

// auUpstreamSub signs in through zitadel as one of its users, in a new
// browser, and returns the sub of the ID token the RP gets; when fedhub does
// not send the browser back to the RP (a first login's page, say) it returns
// "" and where the browser stopped.
func auUpstreamSub(t *testing.T, s *Server, username string) (string, string) {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	callback := b.upstreamLogin(s, params, "zitadel", b.zitadelSignInAs(username))
	atRP := func(u *url.URL) bool { return strings.HasPrefix(u.String(), redirectURI) }
	u, resp, _ := b.follow(callback.String(), atRP)
	if !atRP(u) {
		return "", u.Path + " " + resp.Status
	}
	_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, u.Query(), params), params)
	return idt.Subject, ""
}

// auFetch is what the page's fetch of a URL got.
type auFetch struct {
	Status      int    `json:"status"`
	Type        string `json:"type"`
	Disposition string `json:"disposition"`
	Body        string `json:"body"`
}

// auFetchLink fetches the href of a link from the page, with the browser's cookies.
func auFetchLink(t *testing.T, ctx context.Context, sel string) auFetch {
	t.Helper()
	got, err := chromedp.Run(ctx, chromedp.Evaluate[auFetch](`(async () => {
		const r = await fetch(document.querySelector(`+auJS(sel)+`).href, {credentials: "same-origin"});
		return {status: r.status, type: r.headers.get("Content-Type") || "", disposition: r.headers.get("Content-Disposition") || "", body: await r.text()};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatalf("fetch %s: %v", sel, err)
	}
	return got
}

// TestAdminUI drives the admin pages in Chromium as alice, the admin: every
// action end to end, each checked on the page and, where it matters, in what
// it changes for the people who sign in.
func TestAdminUI(t *testing.T) {
	t.Run("non-admin gets 403", func(t *testing.T) {
		s := Start(t)
		ctx := peers.Chromium(t)
		if st := auAdminLogin(t, ctx, s, "bob", bobPass); st != http.StatusForbidden {
			t.Fatalf("bob's sign-in to /admin answered %d, want 403:\n%s", st, auBody(ctx))
		}
		if got := textOf(t, ctx, "h1"); got != "Administrators only" {
			t.Fatalf("bob sees %q, want the 403 page", got)
		}
		auShot(t, ctx, "admin-403", false)
		// No admin session came of it: each visit signs in again (silently, with
		// bob's SSO session) and ends on the same 403, never on an admin page.
		if st := auNav(t, ctx, s.URL+"/admin/users"); st != http.StatusForbidden {
			t.Errorf("after the 403, /admin/users answered %d:\n%s", st, auBody(ctx))
		}
		if got := textOf(t, ctx, "h1"); got != "Administrators only" {
			t.Errorf("after the 403, /admin/users shows %q", got)
		}
	})

	t.Run("actions", auActions)
	t.Run("fresh login", auFreshLogin)
}

func auActions(t *testing.T) {
	addr := freeAddr(t)
	issuer := startZitadel(t, "fedhub", "http://"+addr+"/broker/zitadel/callback")
	dead := "http://" + freeAddr(t) // nothing listens there
	s := Start(t, WithAddr(addr), auEnv(), auConfig(issuer, dead, ""))
	ctx := peers.Chromium(t)

	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's sign-in to /admin answered %d:\n%s", st, auBody(ctx))
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); loc != s.URL+"/admin/users" {
		t.Fatalf("after signing in alice is at %s, want /admin/users", loc)
	}
	aliceID := auUserID(t, ctx, s, "alice")
	bobID := auUserID(t, ctx, s, "bob")
	carolID := auUserID(t, ctx, s, "carol")
	daveID := auUserID(t, ctx, s, "dave")
	erinID := auUserID(t, ctx, s, "erin")
	frankID := auUserID(t, ctx, s, "frank")

	t.Run("search", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/users")
		if got := auColumn(auRows(t, ctx, "#users"), 0); !slices.Equal(got, []string{"alice", "bob", "carol", "dave", "erin", "frank"}) {
			t.Fatalf("the users page lists %q", got)
		}
		auShot(t, ctx, "admin-users", true)
		for _, c := range []struct{ q, want string }{
			{"bo", "bob"}, {"BO", "bob"}, // a username prefix, case-insensitively
			{"carol@ex", "carol"}, {"e.smi", "erin"}, // an email prefix, not a username's
		} {
			auNav(t, ctx, s.URL+"/admin/users")
			auType(t, ctx, "#q", c.q)
			auClick(t, ctx, "#search")
			rows := auRows(t, ctx, "#users")
			if len(rows) != 1 || rows[0][0] != c.want {
				t.Errorf("searching %q finds %q, want only %s", c.q, rows, c.want)
			}
		}
		auType(t, ctx, "#q", "e.smi")
		auClick(t, ctx, "#search")
		auShot(t, ctx, "admin-users-search-email", false)
		auType(t, ctx, "#q", "nobody-like-this")
		auClick(t, ctx, "#search")
		if rows := auRows(t, ctx, "#users"); len(rows) != 1 || rows[0][0] != "No users match." {
			t.Errorf("a search without matches shows %q", rows)
		}
	})

	t.Run("user page", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/users/"+aliceID)
		page, err := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".profile")))
		if err != nil {
			t.Fatal(err)
		}
		for _, want := range []string{aliceID, "Alice Example", "alice@example.com", "verified", "admin", "staff"} {
			if !strings.Contains(page, want) {
				t.Errorf("alice's profile lacks %q:\n%s", want, page)
			}
		}
		if links := auRows(t, ctx, "#links"); len(links) != 1 || links[0][0] != "local" || links[0][1] != aliceID {
			t.Errorf("alice's links = %q, want her local password", links)
		}
		// Her sign-in to these pages went through fedhub's login: a session, and its event.
		if sessions := auRows(t, ctx, "#sessions"); len(sessions) != 1 || sessions[0][1] != "local" {
			t.Errorf("alice's sessions = %q, want the one of her sign-in", sessions)
		}
		if events := auColumn(auRows(t, ctx, "#events"), 1); !slices.Contains(events, "login.success") {
			t.Errorf("alice's recent events = %q, want her login", events)
		}
		for _, id := range []string{"#action-revoke", "#action-link", "#action-merge"} {
			if !auHas(t, ctx, id) {
				t.Errorf("the user page has no %s", id)
			}
		}
		if auHas(t, ctx, "#action-disable") { // an admin cannot disable themselves: not offered
			t.Errorf("alice's own page offers to disable her")
		}
		auShot(t, ctx, "admin-user", true)
	})

	t.Run("disable and enable", func(t *testing.T) {
		bob := NewBrowser(t)
		auSignInAs(t, s, bob, "bob", bobPass)
		auOpenConfirm(t, ctx, s, bobID, "#action-disable")
		auShot(t, ctx, "admin-confirm-disable", false)
		auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "disable")
		if got := textOf(t, ctx, "h1 .badge"); got != "disabled" {
			t.Errorf("bob's heading badge = %q, want disabled", got)
		}
		if !auHas(t, ctx, "#action-enable") || auHas(t, ctx, "#action-disable") {
			t.Error("a disabled user's page should offer Enable, not Disable")
		}
		auShot(t, ctx, "admin-user-disabled", false)
		auNav(t, ctx, s.URL+"/admin/users?q=bob")
		if rows := auRows(t, ctx, "#users"); len(rows) != 1 || rows[0][3] != "disabled" {
			t.Errorf("the search shows bob as %q, want disabled", rows)
		}
		// In reality: bob's session is gone, and his password no longer signs him in.
		params := AuthParams("prompt", "none")
		ocWantAuthzError(t, s, ocSilent(t, s, bob, params), params, "login_required")
		auWantDisabled(t, s, "bob", bobPass)

		auWantFlash(t, ctx, auAction(t, ctx, s, bobID, "#action-enable", nil), "enable")
		if auHas(t, ctx, "h1 .badge") || !auHas(t, ctx, "#action-disable") {
			t.Error("an enabled user's page still shows the disabled badge or lacks Disable")
		}
		if idt := auSignInAs(t, s, NewBrowser(t), "bob", bobPass); idt.Subject != bobID {
			t.Errorf("bob signs in again as %s, want %s", idt.Subject, bobID)
		}
	})

	t.Run("revoke sessions", func(t *testing.T) {
		bob := NewBrowser(t)
		params := AuthParams("scope", "openid offline_access")
		ts, _ := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocAuthorizeAs(t, s, bob, params, "bob", bobPass), params), params)
		silent := AuthParams("prompt", "none")
		ocWantCode(t, s, ocSilent(t, s, bob, silent), silent) // the session works before
		auNav(t, ctx, s.URL+"/admin/users/"+bobID)
		if rows := auRows(t, ctx, "#sessions"); len(rows) == 0 || rows[0][0] == "No active sessions." {
			t.Fatalf("bob's page shows no session: %q", rows)
		}
		auWantFlash(t, ctx, auAction(t, ctx, s, bobID, "#action-revoke", nil), "revoke")
		if rows := auRows(t, ctx, "#sessions"); len(rows) != 1 || rows[0][0] != "No active sessions." {
			t.Errorf("after the revocation bob's sessions = %q", rows)
		}
		auShot(t, ctx, "admin-user-revoked", false)
		silent = AuthParams("prompt", "none")
		ocWantAuthzError(t, s, ocSilent(t, s, bob, silent), silent, "login_required")
		if ts.Refresh == "" {
			t.Errorf("no refresh token to check the revocation with (scope %q)", ts.Scope)
		} else if a := ocRefresh(t, s, ocRP, ts.Refresh); a.Status != http.StatusBadRequest || a.str("error") != "invalid_grant" {
			t.Errorf("bob's refresh token after the revocation: %d %s", a.Status, a.Raw)
		}
	})

	// link fills the link form and confirms it.
	// fedhub's subject of an OIDC identity is "<issuer>|<sub>" (brokers/oidc).
	id1, id2 := issuer+"|id1", issuer+"|id2"
	link := func(t *testing.T, userID, connector, subject, username, email string) int64 {
		t.Helper()
		return auAction(t, ctx, s, userID, "#action-link", func() {
			options, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#link-connector option")).map(o => o.value)`))
			if err != nil || !slices.Equal(options, []string{"zitadel", "partner"}) {
				t.Errorf("the connectors to link from = %q (%v), want the upstream ones", options, err)
			}
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#link-connector"), connector)); err != nil {
				t.Fatal(err)
			}
			auType(t, ctx, "#link-subject", subject)
			auType(t, ctx, "#link-username", username)
			auType(t, ctx, "#link-email", email)
			if username == "test-user@127.0.0.1" {
				auShot(t, ctx, "admin-link-form", false)
			}
		})
	}

	t.Run("link", func(t *testing.T) {
		auWantFlash(t, ctx, link(t, carolID, "zitadel", id1, "test-user@127.0.0.1", "test-user@zitadel.ch"), "link")
		rows := auRows(t, ctx, "#links")
		if len(rows) != 2 || rows[1][0] != "zitadel" || rows[1][1] != id1 || rows[1][2] != "test-user@127.0.0.1" {
			t.Errorf("carol's links = %q, want local and zitadel %s", rows, id1)
		}
		auShot(t, ctx, "admin-user-linked", false)
		// In reality: zitadel's test-user now signs in as carol.
		if sub, stop := auUpstreamSub(t, s, "test-user@127.0.0.1"); sub != carolID {
			t.Errorf("zitadel's test-user signs in as %q (stopped at %s), want carol %s", sub, stop, carolID)
		}
		// One upstream identity, one user: linking it again is refused with a message.
		if st := link(t, daveID, "zitadel", id1, "", ""); st != http.StatusUnprocessableEntity {
			t.Errorf("linking an identity that is linked already answered %d", st)
		}
		if got := textOf(t, ctx, "#problem"); !strings.Contains(got, "already linked") {
			t.Errorf("the refusal says %q", got)
		}
		auShot(t, ctx, "admin-link-refused", false)
		// frank gets zitadel's test-user2, to be merged later.
		auWantFlash(t, ctx, link(t, frankID, "zitadel", id2, "test-user2", "test-user2@zitadel.ch"), "link")
	})

	t.Run("move", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/users/"+carolID)
		linkID := auLinkIDs(t, ctx)["zitadel"]
		if linkID == "" {
			t.Fatal("carol has no zitadel link to move")
		}
		st := auAction(t, ctx, s, carolID, "#move-"+linkID, func() { auType(t, ctx, "#move-to", erinID) })
		auWantFlash(t, ctx, st, "move")
		if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/admin/users/"+erinID) {
			t.Errorf("after the move the browser is at %s, want erin's page", loc)
		}
		if got := auLinkIDs(t, ctx)["zitadel"]; got != linkID {
			t.Errorf("erin's zitadel link = %q, want link %s", got, linkID)
		}
		auNav(t, ctx, s.URL+"/admin/users/"+carolID)
		if _, ok := auLinkIDs(t, ctx)["zitadel"]; ok {
			t.Error("carol still shows the moved link")
		}
		if sub, stop := auUpstreamSub(t, s, "test-user@127.0.0.1"); sub != erinID {
			t.Errorf("after the move zitadel's test-user signs in as %q (stopped at %s), want erin %s", sub, stop, erinID)
		}
		// A local password belongs to its account: moving it is refused with a message.
		auNav(t, ctx, s.URL+"/admin/users/"+carolID)
		local := auLinkIDs(t, ctx)["local"]
		st = auAction(t, ctx, s, carolID, "#move-"+local, func() { auType(t, ctx, "#move-to", erinID) })
		if st != http.StatusUnprocessableEntity {
			t.Errorf("moving a local password answered %d", st)
		}
		if got := textOf(t, ctx, "#problem"); !strings.Contains(got, "cannot move") {
			t.Errorf("the refusal to move a local password says %q", got)
		}
		auNav(t, ctx, s.URL+"/admin/users/"+carolID)
		if got := auLinkIDs(t, ctx)["local"]; got != local {
			t.Errorf("carol's local link after the refused move = %q, want %s", got, local)
		}
	})

	t.Run("unlink", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/users/"+erinID)
		linkID := auLinkIDs(t, ctx)["zitadel"]
		if linkID == "" {
			t.Fatal("erin has no zitadel link to remove")
		}
		auOpenConfirm(t, ctx, s, erinID, "#unlink-"+linkID)
		if auHas(t, ctx, "#force") {
			t.Error("the override is offered for a link that is not the last")
		}
		auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "unlink")
		if rows := auRows(t, ctx, "#links"); len(rows) != 1 || rows[0][0] != "local" {
			t.Errorf("erin's links after the unlink = %q", rows)
		}
		if sub, _ := auUpstreamSub(t, s, "test-user@127.0.0.1"); sub == erinID {
			t.Error("zitadel's test-user still signs in as erin after the unlink")
		}
	})

	t.Run("last way to sign in", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/users/"+daveID)
		linkID := auLinkIDs(t, ctx)["local"]
		if linkID == "" {
			t.Fatal("dave has no local link")
		}
		auOpenConfirm(t, ctx, s, daveID, "#unlink-"+linkID)
		if !auHas(t, ctx, "#force") {
			t.Error("the confirm page of a user's last link offers no override")
		}
		if st := auClick(t, ctx, "#confirm"); st != http.StatusUnprocessableEntity {
			t.Errorf("removing the last link without the override answered %d", st)
		}
		if got := textOf(t, ctx, "#problem"); got != "This is the user's last way to sign in. Confirm the override to remove it anyway." {
			t.Errorf("the refusal says %q", got)
		}
		auShot(t, ctx, "admin-unlink-refused", false)
		if idt := auSignInAs(t, s, NewBrowser(t), "dave", auDavePass); idt.Subject != daveID {
			t.Errorf("after the refusal dave signs in as %s", idt.Subject)
		}
		// From the refusal's page, with the override.
		if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS("#force"))); err != nil {
			t.Fatalf("tick #force: %v\n%s", err, auBody(ctx))
		}
		auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "unlink")
		if rows := auRows(t, ctx, "#links"); len(rows) != 1 || !strings.Contains(rows[0][0], "cannot sign in") {
			t.Errorf("dave's links after the forced unlink = %q", rows)
		}
		// In reality: dave's password no longer signs him in as dave.
		resp, page := auPasswordAnswer(t, s, "dave", auDavePass)
		loc := resp.Header.Get("Location")
		if strings.HasPrefix(loc, redirectURI) || resp.StatusCode >= 500 {
			t.Errorf("dave's password after the forced unlink answered %d %q:\n%s", resp.StatusCode, loc, page)
		}
		t.Logf("dave's password after the forced unlink: %d %q", resp.StatusCode, auHeading(page))
	})

	t.Run("merge", func(t *testing.T) {
		auOpenConfirm(t, ctx, s, carolID, "#action-merge")
		auType(t, ctx, "#merge-from", frankID)
		auShot(t, ctx, "admin-confirm-merge", false)
		auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "merge")
		profile, _ := chromedp.Run(ctx, chromedp.Text(chromedp.CSS(".profile")))
		for _, want := range []string{"auditor", "ops"} { // frank's role and group
			if !strings.Contains(profile, want) {
				t.Errorf("carol's profile after the merge lacks %q:\n%s", want, profile)
			}
		}
		links := auLinkIDs(t, ctx)
		if _, ok := links["zitadel"]; !ok || len(links) != 2 {
			t.Errorf("carol's links after the merge = %v, want her local one and frank's zitadel one", links)
		}
		auShot(t, ctx, "admin-user-merged", false)
		if st := auNav(t, ctx, s.URL+"/admin/users/"+frankID); st != http.StatusNotFound {
			t.Errorf("frank's page after the merge answered %d, want 404", st)
		}
		auNav(t, ctx, s.URL+"/admin/users?q=frank")
		if rows := auRows(t, ctx, "#users"); len(rows) != 1 || rows[0][0] != "No users match." {
			t.Errorf("the search still finds frank: %q", rows)
		}
		if sub, stop := auUpstreamSub(t, s, "test-user2"); sub != carolID {
			t.Errorf("zitadel's test-user2 (frank's) signs in as %q (stopped at %s), want carol", sub, stop)
		}
		if resp, _ := auPasswordAnswer(t, s, "frank", auFrankPass); resp.StatusCode != http.StatusUnauthorized {
			t.Errorf("frank's password after the merge answered %d, want the login page's refusal", resp.StatusCode)
		}
	})

	t.Run("connectors", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/connectors")
		for id, want := range map[string]string{"local": "reachable", "zitadel": "reachable", "partner": "down"} {
			row := textOf(t, ctx, "#connector-"+id)
			if !strings.Contains(row, want) {
				t.Errorf("connector %s shows %q, want %s", id, row, want)
			}
		}
		if rows := auRows(t, ctx, "#connectors"); len(rows) != 3 {
			t.Errorf("the connectors page lists %q, want local, zitadel and partner", rows)
		}
		auShot(t, ctx, "admin-connectors", true)
	})

	t.Run("clients and secret rotation", func(t *testing.T) {
		auNav(t, ctx, s.URL+"/admin/clients")
		html, err := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html")))
		if err != nil {
			t.Fatal(err)
		}
		for _, secret := range []string{rpSecret, rp2Secret, pwSecret, "sha256:"} {
			if strings.Contains(html, secret) {
				t.Errorf("the clients page shows a secret or its hash (%q)", secret)
			}
		}
		if got := auColumn(auRows(t, ctx, "#clients"), 0); len(got) < 5 {
			t.Errorf("the clients page lists %q", got)
		}
		if auHas(t, ctx, "#rotate-public-app") {
			t.Error("a public client offers a secret rotation")
		}
		auShot(t, ctx, "admin-clients", false)

		if st := auClick(t, ctx, "#rotate-pw-app"); st != http.StatusOK {
			t.Fatalf("the rotation's confirm page answered %d", st)
		}
		if auHas(t, ctx, "#new-secret") {
			t.Error("the confirm page shows a secret before the rotation")
		}
		if st := auClick(t, ctx, "#confirm"); st != http.StatusOK {
			t.Fatalf("the rotation answered %d:\n%s", st, auBody(ctx))
		}
		secret := textOf(t, ctx, "#new-secret")
		if len(secret) < 32 || secret == pwSecret {
			t.Fatalf("the new secret = %q", secret)
		}
		auShot(t, ctx, "admin-secret-rotated", false)
		// In reality: the new secret works, the old one no longer.
		grant := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {alicePass}, "scope": {"openid"}}
		if a := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: secret}, grant); a.Status != http.StatusOK {
			t.Errorf("the new secret at the token endpoint: %d %s", a.Status, a.Raw)
		}
		if a := ocPost(t, s, "/token", &ocPW, grant); a.Status != http.StatusUnauthorized {
			t.Errorf("the old secret at the token endpoint: %d %s", a.Status, a.Raw)
		}
		// Shown once: a reload of the page neither shows it again nor rotates again.
		rctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		if err := chromedp.Do(rctx, chromedp.Reload()); err != nil {
			t.Errorf("reload: %v", err)
		}
		if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, secret) {
			t.Error("reloading the page shows the new secret again")
		} else if auHas(t, ctx, "#new-secret") {
			t.Error("reloading the page rotated the secret once more and showed another one")
		}
		auShot(t, ctx, "admin-secret-reloaded", false)
		if a := ocPost(t, s, "/token", &ocClient{id: passwordID, secret: secret}, grant); a.Status != http.StatusOK {
			t.Errorf("after the reload the new secret no longer works: %d %s", a.Status, a.Raw)
		}
		for _, page := range []string{"/admin/clients", "/admin/clients/pw-app/confirm"} {
			auNav(t, ctx, s.URL+page)
			if html, _ := chromedp.Run(ctx, chromedp.OuterHTML(chromedp.CSS("html"))); strings.Contains(html, secret) {
				t.Errorf("%s shows the new secret again", page)
			}
		}
		auNav(t, ctx, s.URL+"/admin/clients")
		if row := textOf(t, ctx, "#rotate-pw-app"); row != "Rotate" {
			t.Errorf("the rotate link reads %q", row)
		}
		if rows := auRows(t, ctx, "#clients"); !slices.ContainsFunc(rows, func(r []string) bool {
			return len(r) == 6 && strings.Contains(r[0], "pw-app") && strings.Contains(r[4], "rotated") && r[5] == "enabled"
		}) {
			t.Errorf("the clients page does not say pw-app's secret was rotated, and that pw-app is enabled: %q", rows)
		}
	})

	t.Run("audit log and CSV", func(t *testing.T) {
		filter := func(fields map[string]string) [][]string {
			t.Helper()
			auNav(t, ctx, s.URL+"/admin/audit")
			for name, v := range fields {
				if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS(`input[name="`+name+`"]`), v)); err != nil {
					t.Fatal(err)
				}
			}
			if st := auClick(t, ctx, "#filter"); st != http.StatusOK {
				t.Fatalf("filtering by %v answered %d:\n%s", fields, st, auBody(ctx))
			}
			return auRows(t, ctx, "#events")
		}
		// By type: the admin actions above, each by alice.
		rows := filter(map[string]string{"type": "user.disabled"})
		if len(rows) != 1 || len(rows[0]) < 5 || rows[0][1] != "user.disabled" || rows[0][3] != aliceID || rows[0][4] != bobID {
			t.Errorf("user.disabled events = %q, want alice disabling bob", rows)
		}
		for _, typ := range []string{"user.enabled", "sessions.revoked", "link.created", "link.moved", "link.removed", "user.merged", "client.secret_rotated"} {
			if rows := filter(map[string]string{"type": typ}); len(rows) == 0 || !slices.Equal(slices.Compact(auColumn(rows, 1)), []string{typ}) {
				t.Errorf("%s events = %q", typ, rows)
			}
		}
		// By user.
		rows = filter(map[string]string{"user": bobID})
		if len(rows) < 4 || slices.ContainsFunc(rows, func(r []string) bool { return len(r) < 5 || r[4] != bobID }) {
			t.Errorf("bob's events = %q", rows)
		}
		// By connector: the logins through zitadel.
		rows = filter(map[string]string{"connector": "zitadel"})
		if len(rows) == 0 || slices.ContainsFunc(rows, func(r []string) bool { return len(r) < 6 || r[5] != "zitadel" }) {
			t.Errorf("zitadel's events = %q", rows)
		}
		// By time (UTC, as the page says).
		if rows := filter(map[string]string{"since": "2099-01-01T00:00"}); len(rows) != 1 || rows[0][0] != "No events match." {
			t.Errorf("events since 2099 = %q", rows)
		}
		hourAgo := time.Now().UTC().Add(-time.Hour).Format("2006-01-02T15:04")
		if rows := filter(map[string]string{"since": hourAgo, "until": "2099-01-01T00:00", "type": "user.merged"}); len(rows) != 1 {
			t.Errorf("merges of the last hour = %q", rows)
		}

		// The CSV export of the filtered log, fetched with the browser's cookies.
		want := filter(map[string]string{"type": "login.success"})
		auShot(t, ctx, "admin-audit", false)
		href, _ := chromedp.Run(ctx, chromedp.AttributeValue(chromedp.CSS("#export-csv"), "href"))
		if !strings.Contains(href.Value, "type=login.success") || !strings.Contains(href.Value, "format=csv") {
			t.Errorf("the export link %q does not carry the filter", href.Value)
		}
		got := auFetchLink(t, ctx, "#export-csv")
		if got.Status != http.StatusOK || !strings.HasPrefix(got.Type, "text/csv") || !strings.Contains(got.Disposition, "attachment") {
			t.Fatalf("the CSV export answered %d %q %q:\n%s", got.Status, got.Type, got.Disposition, got.Body)
		}
		records, err := csv.NewReader(strings.NewReader(got.Body)).ReadAll()
		if err != nil {
			t.Fatalf("the export is not CSV: %v\n%s", err, got.Body)
		}
		if header := []string{"id", "time", "type", "outcome", "actor", "user_id", "connector", "client_id", "ip", "detail"}; len(records) == 0 ||
			!slices.Equal(records[0], header) {
			t.Fatalf("the CSV header = %q", records[:min(len(records), 1)])
		}
		if len(records)-1 != len(want) {
			t.Errorf("the CSV has %d events, the page %d", len(records)-1, len(want))
		}
		for _, r := range records[1:] {
			if r[2] != "login.success" {
				t.Errorf("the filtered CSV has a %s event", r[2])
			}
		}
		// Without an admin session the export is not served.
		if resp, body := NewBrowser(t).Get(s.URL + href.Value); resp.StatusCode != http.StatusSeeOther || strings.Contains(body, "login.success") {
			t.Errorf("the export without a session answered %d", resp.StatusCode)
		}
	})
}

// auFreshLogin: with a short admin.fresh_login_age, a destructive action
// asks for a fresh login first — on the page and on the server — and goes
// through once the admin signed in again.
func auFreshLogin(t *testing.T) {
	const age = 6 * time.Second
	addr := freeAddr(t)
	issuer := startZitadel(t, "fedhub", "http://"+addr+"/broker/zitadel/callback")
	s := Start(t, WithAddr(addr), auEnv(), auConfig(issuer, "http://"+freeAddr(t), "admin:\n  fresh_login_age: 6s\n"))
	ctx := peers.Chromium(t)
	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's sign-in answered %d:\n%s", st, auBody(ctx))
	}
	bobID := auUserID(t, ctx, s, "bob")
	// A confirm page opened while the login is fresh, confirmed once it is not.
	auOpenConfirm(t, ctx, s, bobID, "#action-disable")
	time.Sleep(age + 1500*time.Millisecond)
	if st := auClick(t, ctx, "#confirm"); st != http.StatusForbidden {
		t.Errorf("confirming with a stale login answered %d, want 403", st)
	}
	if !auHas(t, ctx, "#needs-fresh") {
		t.Errorf("confirming with a stale login does not ask for a fresh one:\n%s", auBody(ctx))
	}
	auNav(t, ctx, s.URL+"/admin/users/"+bobID)
	if auHas(t, ctx, "h1 .badge") {
		t.Fatal("bob was disabled on a stale login")
	}

	// The confirm page itself asks for it, and offers no form.
	if st := auClick(t, ctx, "#action-disable"); st != http.StatusOK {
		t.Fatalf("the confirm page answered %d:\n%s", st, auBody(ctx))
	}
	if got := textOf(t, ctx, "#needs-fresh"); !strings.Contains(got, "recent sign-in") {
		t.Errorf("#needs-fresh says %q", got)
	}
	if auHas(t, ctx, "#confirm-form") || auHas(t, ctx, "#confirm") {
		t.Error("the confirm page of a stale login still offers the form")
	}
	auShot(t, ctx, "admin-needs-fresh", false)

	// Signing in again: fedhub's login page although the SSO session lives, then back here.
	if st := auClick(t, ctx, "#fresh-login"); st != http.StatusOK {
		t.Fatalf("#fresh-login answered %d:\n%s", st, auBody(ctx))
	}
	if st := auSignIn(t, ctx, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("the fresh sign-in answered %d:\n%s", st, auBody(ctx))
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/admin/users/"+bobID+"/confirm") || !strings.Contains(loc, "action=disable") {
		t.Errorf("after the fresh sign-in the browser is at %s, want the confirm page", loc)
	}
	textOf(t, ctx, "#confirm-form")
	auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "disable")
	auWantDisabled(t, s, "bob", bobPass)

	// Secret rotation asks for it too.
	time.Sleep(age + 1500*time.Millisecond)
	auNav(t, ctx, s.URL+"/admin/clients")
	auClick(t, ctx, "#rotate-rp2")
	if !auHas(t, ctx, "#needs-fresh") || auHas(t, ctx, "#confirm") {
		t.Errorf("the rotation's confirm page with a stale login:\n%s", auBody(ctx))
	}
	auClick(t, ctx, "#fresh-login")
	auSignIn(t, ctx, "alice", alicePass)
	auClick(t, ctx, "#confirm")
	if secret := textOf(t, ctx, "#new-secret"); len(secret) < 32 {
		t.Errorf("the rotation after a fresh sign-in shows %q", secret)
	}
}
