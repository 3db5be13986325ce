package e2e

import (
	"encoding/base64"
	"encoding/json"
	"net"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
)

// bcRP is an application's back-channel logout endpoint, built as a Go
// application would build it: go-oidc verifies each logout token against
// fedhub's discovery and JWKS; the endpoint then checks what Back-Channel
// Logout 1.0 §2.6 asks of the token. It answers 503 while down.
type bcRP struct {
	t        testing.TB
	verifier *oidc.IDTokenVerifier
	mu       sync.Mutex
	down     int // posts still to refuse
	refused  int
	sids     map[string]string // sid → sub of the verified tokens
}

func (rp *bcRP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.down > 0 {
		rp.down--
		rp.refused++
		http.Error(w, "down", http.StatusServiceUnavailable)
		return
	}
	raw := r.PostFormValue("logout_token")
	tok, err := rp.verifier.Verify(r.Context(), raw)
	if err != nil {
		rp.t.Errorf("logout token does not verify: %v", err)
		http.Error(w, "invalid token", http.StatusBadRequest)
		return
	}
	var c struct {
		SID    string                     `json:"sid"`
		Nonce  *string                    `json:"nonce"`
		JTI    string                     `json:"jti"`
		Events map[string]json.RawMessage `json:"events"`
	}
	if err := tok.Claims(&c); err != nil {
		rp.t.Error(err)
	}
	header, _ := base64.RawURLEncoding.DecodeString(strings.Split(raw, ".")[0])
	var h struct {
		Typ string `json:"typ"`
	}
	_ = json.Unmarshal(header, &h)
	if _, ok := c.Events["http://schemas.openid.net/event/backchannel-logout"]; !ok || c.Nonce != nil || c.JTI == "" ||
		c.SID == "" || h.Typ != "logout+jwt" {
		rp.t.Errorf("logout token is not one (§2.4): typ %q, claims %+v", h.Typ, c)
		http.Error(w, "not a logout token", http.StatusBadRequest)
		return
	}
	rp.sids[c.SID] = tok.Subject
	w.WriteHeader(http.StatusOK)
}

// wantLogout waits for the logout token of session sid of user sub.
func (rp *bcRP) wantLogout(t testing.TB, sid, sub string) {
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for time.Now().Before(deadline) {
		rp.mu.Lock()
		got, ok := rp.sids[sid]
		rp.mu.Unlock()
		if ok {
			if got != sub {
				t.Fatalf("logout token for session %s names %s, want %s", sid, got, sub)
			}
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Fatalf("no logout token for session %s within 15s", sid)
}

// bcStart starts fedhub with the admin API's configuration, the client bc-app
// (rpSecret) whose back-channel logout URI is uri, and the user bc-disabled
// (aaPassword).
func bcStart(t *testing.T, uri string, opts ...Option) *Server {
	t.Helper()
	client := "  - id: bc-app\n    secret: ${RP_SECRET}\n    redirect_uris: [" + redirectURI + "]\n" +
		"    grant_types: [authorization_code, refresh_token]\n    backchannel_logout_uri: " + uri + "\n"
	users := "  - username: bc-disabled\n    email: bc-disabled@example.org\n    password: ${AA_PASSWORD}\n"
	return Start(t, append([]Option{aaEnv(), WithConfig(strings.Replace(aaConfig("", users, ""), "clients:\n", "clients:\n"+client, 1))}, opts...)...)
}

// bcLogOut signs alice in to app and out again (RP-initiated logout): the
// session's sid and her subject.
func bcLogOut(t *testing.T, s *Server, app *goRP) (sid, sub string) {
	t.Helper()
	b := NewBrowser(t)
	tok, idt, claims := app.login(t, b, "alice", alicePass)
	raw, _ := tok.Extra("id_token").(string)
	resp, page := b.Get(s.URL + "/logout?" + url.Values{"id_token_hint": {raw}}.Encode())
	if resp.StatusCode >= 400 {
		t.Fatalf("logout answered %d: %s", resp.StatusCode, page)
	}
	sid, _ = claims["sid"].(string)
	return sid, idt.Subject
}

// bcDisable signs bc-disabled in to app, then an administrator disables them
// through the admin API: the session's sid and their subject.
func bcDisable(t *testing.T, s *Server, app *goRP) (sid, sub string) {
	t.Helper()
	_, idt, claims := app.login(t, NewBrowser(t), "bc-disabled", aaPassword)
	admin := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	aaWant(t, aaCall(t, s, "POST", "/users/"+idt.Subject+"/disable", admin, ""), http.StatusOK, nil, "disable")
	sid, _ = claims["sid"].(string)
	return sid, idt.Subject
}

// TestBackchannelLogout: an application that registered a back-channel
// logout URI gets a logout token it can verify when a session it got tokens
// in ends by RP-initiated logout and by an administrator disabling the user;
// one that was down gets it when it is back.
func TestBackchannelLogout(t *testing.T) {
	t.Parallel()
	// The RP's endpoint must be known before fedhub starts: listen first,
	// then start fedhub with the URI, then point the verifier at it.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	s := bcStart(t, "http://"+ln.Addr().String()+"/backchannel-logout")
	provider, err := oidc.NewProvider(t.Context(), s.URL)
	if err != nil {
		t.Fatal(err)
	}
	var disc struct {
		Supported        bool `json:"backchannel_logout_supported"`
		SessionSupported bool `json:"backchannel_logout_session_supported"`
	}
	if err := provider.Claims(&disc); err != nil || !disc.Supported || !disc.SessionSupported {
		t.Fatalf("discovery: backchannel_logout_supported %v, backchannel_logout_session_supported %v (%v); want both",
			disc.Supported, disc.SessionSupported, err)
	}
	rp := &bcRP{t: t, verifier: provider.Verifier(&oidc.Config{ClientID: "bc-app"}), sids: map[string]string{}}
	srv := &http.Server{Handler: rp, ReadHeaderTimeout: 5 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	t.Cleanup(func() { _ = srv.Close() })
	app := newGoRP(t, s, "bc-app", rpSecret)

	t.Run("RP-initiated logout", func(t *testing.T) {
		sid, sub := bcLogOut(t, s, app)
		rp.wantLogout(t, sid, sub)
	})

	t.Run("admin disables the user, application down at first", func(t *testing.T) {
		rp.mu.Lock()
		rp.down = 1
		rp.mu.Unlock()
		sid, sub := bcDisable(t, s, app)
		rp.wantLogout(t, sid, sub)
		rp.mu.Lock()
		defer rp.mu.Unlock()
		if rp.refused != 1 {
			t.Fatalf("the application refused %d posts, want 1 (delivered on the retry)", rp.refused)
		}
	})
}
