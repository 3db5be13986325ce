package e2e

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/pquerna/otp/totp"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/e2e/peers"
)

// Second factors in the admin pages and the admin API: listing them, an
// administrator's reset (which signs the user out everywhere), a user's own
// policy, and the step-up an administrator with a second factor needs before
// a destructive action.

// sfKey is an enrolled authenticator app: its key, and the time steps whose
// codes were used already (each is accepted once).
type sfKey struct {
	secret string
	used   map[int64]bool
}

// code returns a code of a time step fedhub accepts now (±1 step) and that
// was not used yet.
func (k *sfKey) code(t testing.TB) string {
	t.Helper()
	cur := time.Now().Unix() / 30
	for _, step := range []int64{cur, cur + 1, cur - 1} {
		if k.used[step] {
			continue
		}
		k.used[step] = true
		code, err := totp.GenerateCode(k.secret, time.Unix(step*30, 0))
		if err != nil {
			t.Fatal(err)
		}
		return code
	}
	t.Fatal("every code of the current time steps was used")
	return ""
}

// sfEnrol adds an authenticator app for a user at /account (signing in
// first, then again as adding a factor asks), in a browser of their own, and
// returns its key and the browser.
func sfEnrol(t testing.TB, s *Server, username, password string) (*sfKey, *Browser) {
	t.Helper()
	b := NewBrowser(t)
	b.Authorize(s, AuthParams(), username, password) // an SSO session, for /account
	secret, _, at, _ := mfaEnrol(t, s, b, username, password)
	return &sfKey{secret: secret, used: map[int64]bool{at.Unix() / 30: true}}, b
}

// sfPasswordStep signs a user in to client rp with their password in a new
// browser and returns the browser and fedhub's answer to the password.
func sfPasswordStep(t testing.TB, s *Server, params url.Values, username, password string) (*Browser, *http.Response) {
	t.Helper()
	b := NewBrowser(t)
	resp, _ := b.Submit(b.OpenLogin(s, s.URL+"/authorize?"+params.Encode()), username, password)
	return b, resp
}

// sfLoginWithCode signs a user with an authenticator app in to client rp
// (password, then a code) and returns the browser and the tokens.
func sfLoginWithCode(t testing.TB, s *Server, username, password string, k *sfKey) (*Browser, ocTokens) {
	t.Helper()
	params := AuthParams()
	b, resp := sfPasswordStep(t, s, params, username, password)
	page := mfaFollow(t, s, b, resp, "/login/factor?t=")
	resp, _ = b.PostForm(s.URL+"/login/factor", url.Values{"t": {mfaMatch(t, mfaToken, page)}, "csrf": {mfaMatch(t, mfaCSRF, page)},
		"code": {k.code(t)}})
	ts := ocWantTokens(t, ocRedeem(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), redirectURI, ""))
	if ts.Refresh == "" {
		t.Fatalf("%s got no refresh token", username)
	}
	return b, ts
}

// sfFactors is the answer of GET /users/{id}/factors.
type sfFactors struct {
	Policy string `json:"policy"`
	TOTP   []struct {
		ID       string  `json:"id"`
		Name     string  `json:"name"`
		AddedAt  string  `json:"added_at"`
		LastUsed *string `json:"last_used"`
	} `json:"totp"`
	Passkeys          []any `json:"passkeys"`
	PasskeysAvailable *bool `json:"passkeys_available"`
	RecoveryCodesLeft *int  `json:"recovery_codes_left"`
}

func sfFactorsOf(t testing.TB, s *Server, token, userID string) sfFactors {
	t.Helper()
	var f sfFactors
	aaWant(t, aaCall(t, s, "GET", "/users/"+userID+"/factors", token, ""), http.StatusOK, &f, "factors of "+userID)
	if f.RecoveryCodesLeft == nil || f.PasskeysAvailable == nil || f.TOTP == nil {
		t.Fatalf("factors of %s: a member is missing: %+v", userID, f)
	}
	return f
}

// sfUsers are added to the admin API test's configuration: ann gets an
// authenticator app, ben a policy of his own.
const sfUsers = `  - username: sf-ann
    email: ann@sf.example.org
    password: ${AA_PASSWORD}
  - username: sf-ben
    email: ben@sf.example.org
    password: ${AA_PASSWORD}
`

// TestAdminSecondFactorsAPI: /users/{id}/factors, /factors/reset and /mfa
// against the real binary.
func TestAdminSecondFactorsAPI(t *testing.T) {
	t.Parallel()
	s := Start(t, aaEnv(), WithConfig(aaConfig("", sfUsers, "")))
	dbPath := biServerDB(s)
	automation := aaClientCredentials(t, s, aaAutomation, aaAdminScope)
	aliceTok := aaUserToken(t, s, aaAdminApp, "alice", alicePass, "openid "+aaAdminScope)
	bobTok := aaUserToken(t, s, aaAdminApp, "bob", bobPass, "openid "+aaAdminScope) // not an administrator
	rpTok := aaClientCredentials(t, s, ocRP, aaAdminScope)                          // no admin scope
	aliceID := aaUserID(t, s, automation.Access, "alice")
	ann, ben := aaUserID(t, s, automation.Access, "sf-ann"), aaUserID(t, s, automation.Access, "sf-ben")

	key, _ := sfEnrol(t, s, "sf-ann", aaPassword)
	annBrowser, annTokens := sfLoginWithCode(t, s, "sf-ann", aaPassword, key)
	refused := []aaRefused{
		{"no token", "", http.StatusUnauthorized, ""},
		{"garbage token", "Bearer not-a-token", http.StatusUnauthorized, "invalid_token"},
		{"client token without the scope (rp)", aaBearer(rpTok.Access), http.StatusForbidden, "insufficient_scope"},
		{"bob's token (no admin role)", aaBearer(bobTok.Access), http.StatusForbidden, ""},
	}

	t.Run("list", func(t *testing.T) {
		f := sfFactorsOf(t, s, automation.Access, ann)
		if f.Policy != "default" || len(f.TOTP) != 1 || f.TOTP[0].Name == "" || f.TOTP[0].ID == "" || f.TOTP[0].AddedAt == "" ||
			f.TOTP[0].LastUsed == nil || *f.RecoveryCodesLeft != 10 {
			t.Errorf("ann's factors = %s, want one authenticator app (used), 10 recovery codes and the default policy", aaJSON(f))
		}
		if *f.PasskeysAvailable || f.Passkeys != nil {
			t.Errorf("passkeys are not wired, yet the answer lists %s", aaJSON(f))
		}
		if f := sfFactorsOf(t, s, automation.Access, ben); len(f.TOTP) != 0 || *f.RecoveryCodesLeft != 0 {
			t.Errorf("ben's factors = %s, want none", aaJSON(f))
		}
		var d struct {
			Factors sfFactors `json:"second_factors"`
		}
		aaWant(t, aaCall(t, s, "GET", "/users/"+ann, automation.Access, ""), http.StatusOK, &d, "ann")
		if len(d.Factors.TOTP) != 1 {
			t.Errorf("ann's page in the API lacks her factor: %s", aaJSON(d))
		}
		aaWantError(t, aaCall(t, s, "GET", "/users/"+aaNoSuchUser+"/factors", automation.Access, ""), http.StatusNotFound, "not_found", "factors of an unknown user")
		for _, w := range refused {
			if a := aaCallAuth(t, s, "GET", "/users/"+ann+"/factors", w.authorization, ""); a.Status != w.status {
				t.Errorf("%s: GET factors answered %d, want %d", w.name, a.Status, w.status)
			}
		}
	})

	t.Run("reset refused", func(t *testing.T) {
		for _, w := range refused {
			before := biSnapshotDB(t, dbPath)
			a := aaCallAuth(t, s, "POST", "/users/"+ann+"/factors/reset", w.authorization, "")
			before.expectChanged(t, biSnapshotDB(t, dbPath)) // nothing
			if a.Status != w.status {
				t.Errorf("%s: reset answered %d, want %d: %s", w.name, a.Status, w.status, a.Raw)
			}
		}
		aaWantError(t, aaCall(t, s, "POST", "/users/"+aaNoSuchUser+"/factors/reset", automation.Access, ""), http.StatusNotFound, "not_found", "reset an unknown user")
		if f := sfFactorsOf(t, s, automation.Access, ann); len(f.TOTP) != 1 || *f.RecoveryCodesLeft != 10 {
			t.Fatalf("after the refused resets ann has %s", aaJSON(f))
		}
		ocWantTokens(t, ocRefresh(t, s, ocRP, annTokens.Refresh)) // her grant lives
	})

	t.Run("reset", func(t *testing.T) {
		var d struct {
			Sessions []any     `json:"sessions"`
			Factors  sfFactors `json:"second_factors"`
		}
		aaWant(t, aaCall(t, s, "POST", "/users/"+ann+"/factors/reset", aliceTok.Access, ""), http.StatusOK, &d, "reset")
		if len(d.Factors.TOTP) != 0 || d.Factors.RecoveryCodesLeft == nil || *d.Factors.RecoveryCodesLeft != 0 || len(d.Sessions) != 0 {
			t.Errorf("after the reset: %s, want no factors, no recovery codes, no sessions", aaJSON(d))
		}
		// Her sessions and grants ended.
		ocWantOAuthError(t, ocRefresh(t, s, ocRP, annTokens.Refresh), http.StatusBadRequest, "invalid_grant")
		ocWantUserinfoRefused(t, s, annTokens.Access)
		if e := aaSilent(t, s, annBrowser); e != "login_required" {
			t.Errorf("prompt=none after the reset = %q, want login_required", e)
		}
		e := aaWantEvent(t, s, automation.Access, audit.FactorsReset, ann, "", aliceID)
		if !strings.Contains(e.Detail, "1 authenticator app") {
			t.Errorf("the audit event says %q", e.Detail)
		}
		// Her next sign-in asks for no code.
		params := AuthParams()
		_, resp := sfPasswordStep(t, s, params, "sf-ann", aaPassword)
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), params)
		if idt.Subject != ann || idt.str("acr") != "1" {
			t.Errorf("ann's sign-in after the reset: sub %s acr %q, want her with one factor", idt.Subject, idt.str("acr"))
		}
	})

	t.Run("policy", func(t *testing.T) {
		put := func(token, userID, body string) aaAnswer {
			return aaCall(t, s, "PUT", "/users/"+userID+"/mfa", token, body)
		}
		for _, body := range []string{`{"policy":"sometimes"}`, `{"policy":""}`, `{}`, `{"policy":"REQUIRED"}`, `{"policy":" required"}`,
			`{"policy":2}`, `{"policy":"required"`, `policy=required`} {
			before := biSnapshotDB(t, dbPath)
			aaWantError(t, put(automation.Access, ben, body), http.StatusBadRequest, "invalid_request", "policy "+body)
			before.expectChanged(t, biSnapshotDB(t, dbPath)) // nothing
		}
		a := put(automation.Access, ben, `{"policy":"sometimes"}`)
		if !strings.Contains(a.Raw, "default, off, optional, required") {
			t.Errorf("a bad policy's error does not say what is allowed: %s", a.Raw)
		}
		for _, w := range refused {
			before := biSnapshotDB(t, dbPath)
			if a := aaCallAuth(t, s, "PUT", "/users/"+ben+"/mfa", w.authorization, `{"policy":"required"}`); a.Status != w.status {
				t.Errorf("%s: PUT mfa answered %d, want %d", w.name, a.Status, w.status)
			}
			before.expectChanged(t, biSnapshotDB(t, dbPath))
		}
		aaWantError(t, put(automation.Access, aaNoSuchUser, `{"policy":"required"}`), http.StatusNotFound, "not_found", "policy of an unknown user")
		if f := sfFactorsOf(t, s, automation.Access, ben); f.Policy != "default" {
			t.Fatalf("after the refused calls ben's policy is %q", f.Policy)
		}

		// required: ben, who has no factor, sets one up at his next sign-in.
		var d struct {
			Factors sfFactors `json:"second_factors"`
		}
		aaWant(t, put(aliceTok.Access, ben, `{"policy":"required"}`), http.StatusOK, &d, "policy required")
		if d.Factors.Policy != "required" {
			t.Errorf("the answer says policy %q", d.Factors.Policy)
		}
		e := aaWantEvent(t, s, automation.Access, audit.MFAPolicySet, ben, "", aliceID)
		if !strings.Contains(e.Detail, "required") {
			t.Errorf("the audit event says %q", e.Detail)
		}
		if f := sfFactorsOf(t, s, automation.Access, ben); f.Policy != "required" {
			t.Errorf("ben's policy = %q, want required", f.Policy)
		}
		b, resp := sfPasswordStep(t, s, AuthParams(), "sf-ben", aaPassword)
		page := mfaFollow(t, s, b, resp, "/login/enrol?t=")
		mfaMatch(t, mfaSecret, page)

		// default again: his sign-in goes straight through.
		aaWant(t, put(automation.Access, ben, `{"policy":"default"}`), http.StatusOK, &d, "policy default")
		if d.Factors.Policy != "default" {
			t.Errorf("the answer says policy %q, want default", d.Factors.Policy)
		}
		params := AuthParams()
		_, resp = sfPasswordStep(t, s, params, "sf-ben", aaPassword)
		ocWantCode(t, s, ocCallback(t, resp, redirectURI), params)
	})
}

// TestAdminSecondFactorsUI: alice, an administrator without a second factor,
// sees bob's authenticator app on his page, resets it through the
// confirmation page (which signs him out), and sets his policy.
func TestAdminSecondFactorsUI(t *testing.T) {
	s := Start(t)
	_, bobBrowser := sfEnrol(t, s, "bob", bobPass)
	ctx := peers.Chromium(t)
	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's sign-in to /admin answered %d:\n%s", st, auBody(ctx))
	}
	bobID := auUserID(t, ctx, s, "bob")

	auNav(t, ctx, s.URL+"/admin/users/"+bobID)
	if rows := auRows(t, ctx, "#factors"); len(rows) != 1 || rows[0][0] != "Authenticator app" || rows[0][1] == "" || rows[0][2] == "—" {
		t.Errorf("bob's factors = %q, want his authenticator app", rows)
	}
	if got := textOf(t, ctx, "#recovery-left"); got != "10" {
		t.Errorf("recovery codes left = %q, want 10", got)
	}
	if got := textOf(t, ctx, "#mfa-policy-now .badge"); got != "default" {
		t.Errorf("bob's policy shows %q, want default", got)
	}
	auShot(t, ctx, "admin-user-factors", false)

	// Reset, through the confirmation page.
	auOpenConfirm(t, ctx, s, bobID, "#action-reset-factors")
	if got := textOf(t, ctx, "#reset-what"); !strings.Contains(got, "1 authenticator app") || !strings.Contains(got, "10 unused recovery code") {
		t.Errorf("the confirmation says %q", got)
	}
	auShot(t, ctx, "admin-confirm-reset-factors", false)
	auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "reset-factors")
	if rows := auRows(t, ctx, "#factors"); len(rows) != 1 || rows[0][0] != "No second factors." {
		t.Errorf("after the reset bob's factors = %q", rows)
	}
	if rows := auRows(t, ctx, "#sessions"); len(rows) != 1 || rows[0][0] != "No active sessions." {
		t.Errorf("after the reset bob's sessions = %q", rows)
	}
	if events := auColumn(auRows(t, ctx, "#events"), 1); !slices.Contains(events, audit.FactorsReset) {
		t.Errorf("bob's recent events = %q, want %s", events, audit.FactorsReset)
	}
	silent := AuthParams("prompt", "none")
	ocWantAuthzError(t, s, ocSilent(t, s, bobBrowser, silent), silent, "login_required")
	params := AuthParams()
	_, resp := sfPasswordStep(t, s, params, "bob", bobPass)
	ocWantCode(t, s, ocCallback(t, resp, redirectURI), params) // no second step

	// Policy: the form offers the four, with the current one chosen.
	auOpenConfirm(t, ctx, s, bobID, "#action-mfa-policy")
	options, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`Array.from(document.querySelectorAll("#mfa-policy option")).map(o => o.value)`))
	if err != nil || !slices.Equal(options, []string{"default", "off", "optional", "required"}) {
		t.Errorf("the policy options = %q (%v)", options, err)
	}
	if v := flValue(t, ctx, "#mfa-policy"); v != "default" {
		t.Errorf("the form has %q chosen, want bob's current default", v)
	}
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#mfa-policy"), "required")); err != nil {
		t.Fatal(err)
	}
	auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "mfa-policy")
	if got := textOf(t, ctx, "#mfa-policy-now .badge"); got != "required" {
		t.Errorf("bob's policy shows %q, want required", got)
	}
	b, resp := sfPasswordStep(t, s, AuthParams(), "bob", bobPass)
	mfaFollow(t, s, b, resp, "/login/enrol?t=")

	// A value the form does not offer is refused with a message, and changes nothing.
	auOpenConfirm(t, ctx, s, bobID, "#action-mfa-policy")
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector("#mfa-policy").options[0].value = "sometimes"`),
		chromedp.SetValue(chromedp.CSS("#mfa-policy"), "sometimes")); err != nil {
		t.Fatal(err)
	}
	if st := auClick(t, ctx, "#confirm"); st != http.StatusUnprocessableEntity {
		t.Errorf("an unknown policy answered %d", st)
	}
	if got := textOf(t, ctx, "#problem"); !strings.Contains(got, "default, off, optional, required") {
		t.Errorf("the refusal says %q", got)
	}
	auNav(t, ctx, s.URL+"/admin/users/"+bobID)
	if got := textOf(t, ctx, "#mfa-policy-now .badge"); got != "required" {
		t.Errorf("after the refusal bob's policy shows %q, want required", got)
	}
}

// TestAdminSecondFactorStepUp: once an administrator has a second factor, a
// destructive action needs a sign-in that used it (acr 2), not only a recent
// one. alice's own policy is off, so that her ordinary sign-ins have one
// factor and only acr_values=2 makes fedhub ask for her code.
func TestAdminSecondFactorStepUp(t *testing.T) {
	s := Start(t)
	ctx := peers.Chromium(t)
	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's sign-in to /admin answered %d:\n%s", st, auBody(ctx))
	}
	aliceID, bobID := auUserID(t, ctx, s, "alice"), auUserID(t, ctx, s, "bob")

	// Without a factor a recent sign-in of one factor is enough: alice turns
	// her own second-factor policy off.
	auOpenConfirm(t, ctx, s, aliceID, "#action-mfa-policy")
	if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#mfa-policy"), "off")); err != nil {
		t.Fatal(err)
	}
	auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "mfa-policy")

	// A confirmation page opened now, confirmed once she has a factor.
	auOpenConfirm(t, ctx, s, bobID, "#action-revoke")
	key, _ := sfEnrol(t, s, "alice", alicePass)
	if st := auClick(t, ctx, "#confirm"); st != http.StatusForbidden {
		t.Errorf("confirming with a sign-in of one factor answered %d, want 403", st)
	}
	if got := textOf(t, ctx, "#needs-fresh"); !strings.Contains(got, "second factor") {
		t.Errorf("#needs-fresh says %q, want it to ask for the second factor", got)
	}
	if auHas(t, ctx, "#confirm") {
		t.Error("the page still offers the form")
	}
	auShot(t, ctx, "admin-needs-step-up", false)
	if n := sfEvents(t, s, audit.SessionsRevoked); n != 0 {
		t.Fatalf("bob's sessions were revoked on a sign-in of one factor (%d events)", n)
	}

	// The confirmation page asks for it too; so does a secret rotation.
	auNav(t, ctx, s.URL+"/admin/users/"+bobID+"/confirm?action=revoke")
	if !auHas(t, ctx, "#needs-fresh") || auHas(t, ctx, "#confirm") {
		t.Errorf("the confirmation page with a sign-in of one factor:\n%s", auBody(ctx))
	}
	auNav(t, ctx, s.URL+"/admin/clients/rp2/confirm")
	if !auHas(t, ctx, "#needs-fresh") || auHas(t, ctx, "#confirm") {
		t.Errorf("the rotation's confirmation with a sign-in of one factor:\n%s", auBody(ctx))
	}

	// Signing in again asks for acr_values=2: the password, then the code,
	// although her policy is off and her sign-in is recent.
	auNav(t, ctx, s.URL+"/admin/users/"+bobID+"/confirm?action=revoke")
	href, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector("#fresh-login").getAttribute("href")`))
	if err != nil || !strings.Contains(href, "acr=2") || !strings.Contains(href, "fresh=1") {
		t.Errorf("#fresh-login goes to %q (%v), want a fresh sign-in with acr=2", href, err)
	}
	if st := auClick(t, ctx, "#fresh-login"); st != http.StatusOK {
		t.Fatalf("#fresh-login answered %d:\n%s", st, auBody(ctx))
	}
	if st := auSignIn(t, ctx, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("the password answered %d:\n%s", st, auBody(ctx))
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/login/factor") {
		t.Fatalf("after the password alice is at %s, want the second-factor page:\n%s", loc, auBody(ctx))
	}
	auShot(t, ctx, "admin-step-up-code", false)
	auType(t, ctx, "#code", key.code(t))
	if st := auClick(t, ctx, "#verify"); st != http.StatusOK {
		t.Fatalf("the code answered %d:\n%s", st, auBody(ctx))
	}
	if loc, _ := chromedp.Run(ctx, chromedp.Location()); !strings.Contains(loc, "/admin/users/"+bobID+"/confirm") {
		t.Errorf("after the code alice is at %s, want the confirmation page", loc)
	}
	auWantFlash(t, ctx, auClick(t, ctx, "#confirm"), "revoke")
	if n := sfEvents(t, s, audit.SessionsRevoked); n != 1 {
		t.Errorf("%d sessions.revoked events, want 1", n)
	}

	// The rotation's confirmation now offers its form.
	auNav(t, ctx, s.URL+"/admin/clients/rp2/confirm")
	if auHas(t, ctx, "#needs-fresh") || !auHas(t, ctx, "#confirm") {
		t.Errorf("after the sign-in with her code the rotation still asks for one:\n%s", auBody(ctx))
	}
}

// sfEvents counts the audit events of a type in the server's database.
func sfEvents(t testing.TB, s *Server, typ string) int {
	t.Helper()
	var n int
	biQueryDB(t, biServerDB(s), "SELECT COUNT(*) FROM events WHERE type = ?", []any{typ}, &n)
	return n
}
