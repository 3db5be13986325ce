package issuer

import (
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/fedhub/fedhub/templates"
)

// The clients of TestRemovedClientRefused: app signs people in, svc is a
// service, rs a resource server that introspects tokens and stays configured.
var (
	rcApp = config.Client{ID: "app", Secret: "app-secret", RedirectURIs: []string{"https://app.example.com/cb"},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantPassword}}
	rcSvc = config.Client{ID: "svc", Secret: "svc-secret", GrantTypes: []string{config.GrantClientCredentials}}
	rcRS  = config.Client{ID: "rs", Secret: "rs-secret", GrantTypes: []string{config.GrantClientCredentials}}
)

// rcServer is the issuer as one start-up with these clients configured would
// serve it, on db.
func rcServer(t *testing.T, db *gorm.DB, users *linking.Service, events *audit.Log, clients ...config.Client) (*echo.Echo, *Issuer) {
	t.Helper()
	cfg := config.Defaults()
	cfg.Issuer = "https://id.example.com"
	cfg.Signing.Algorithm = "EdDSA"
	cfg.Clients = clients
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	iss, err := New(context.Background(), &cfg, db, nil, users, events, log, time.Now)
	if err != nil {
		t.Fatal(err)
	}
	e := echo.New()
	if e.Renderer, err = templates.New(); err != nil {
		t.Fatal(err)
	}
	u, err := users.UserByUsername(context.Background(), "alice")
	if err != nil {
		t.Fatal(err)
	}
	iss.Routes(e, fuzzPassword{u.ID})
	return e, iss
}

// rcCall sends a form to path, authenticated as client:secret when client is given.
func rcCall(e *echo.Echo, method, path string, form url.Values, client, secret, bearer string) (int, map[string]any) {
	r := httptest.NewRequest(method, path, strings.NewReader(form.Encode()))
	if method == http.MethodGet {
		r = httptest.NewRequest(method, path+"?"+form.Encode(), nil)
	}
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if client != "" {
		r.SetBasicAuth(client, secret)
	}
	if bearer != "" {
		r.Header.Set("Authorization", "Bearer "+bearer)
	}
	w := httptest.NewRecorder()
	e.ServeHTTP(w, r)
	var body map[string]any
	_ = json.Unmarshal(w.Body.Bytes(), &body)
	return w.Code, body
}

// TestRemovedClientRefused: a client removed from the configuration is
// disabled at the next start — audited, its row kept, its grants revoked —
// and refused by every endpoint, tokens issued before included; added again,
// it works again, but what it had before stays revoked.
func TestRemovedClientRefused(t *testing.T) {
	models := append(Models(), linking.Models()...)
	models = append(models, audit.Models()...)
	models = append(models, login.Models()...)
	storetest.ForEachDB(t, models, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		users := linking.New(db, time.Now)
		if _, err := users.CreateUser(ctx, linking.NewUser{Username: "alice", Email: "alice@example.com"}); err != nil {
			t.Fatal(err)
		}
		events := audit.New(db, log, time.Now)
		e, _ := rcServer(t, db, users, events, rcApp, rcSvc, rcRS)

		password := url.Values{"grant_type": {"password"}, "username": {"alice"}, "password": {"alice-password"}, "scope": {"openid"}}
		st, body := rcCall(e, http.MethodPost, "/token", password, "app", "app-secret", "")
		if st != http.StatusOK {
			t.Fatalf("password grant: %d %v", st, body)
		}
		access, refresh := body["access_token"].(string), body["refresh_token"].(string)
		st, body = rcCall(e, http.MethodPost, "/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret", "")
		if st != http.StatusOK {
			t.Fatalf("client credentials: %d %v", st, body)
		}
		service := body["access_token"].(string)
		introspect := func(token string) url.Values { return url.Values{"token": {token}} }
		for _, tok := range []string{access, refresh, service} {
			if _, body := rcCall(e, http.MethodPost, "/introspect", introspect(tok), "rs", "rs-secret", ""); body["active"] != true {
				t.Fatalf("before the removal, introspection says %v", body)
			}
		}

		e, iss := rcServer(t, db, users, events, rcRS) // app and svc are gone from the file
		authorize := url.Values{"client_id": {"app"}, "redirect_uri": {"https://app.example.com/cb"}, "response_type": {"code"},
			"scope": {"openid"}, "state": {"s"}}
		for _, c := range []struct {
			name           string
			method, path   string
			form           url.Values
			client, secret string
			bearer         string
			status         int
			want           map[string]any // fields of the JSON answer
		}{
			{"refresh of a token issued before", "POST", "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}},
				"app", "app-secret", "", 401, map[string]any{"error": "invalid_client"}},
			{"password grant", "POST", "/token", password, "app", "app-secret", "", 401, map[string]any{"error": "invalid_client"}},
			{"client credentials", "POST", "/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret", "",
				401, map[string]any{"error": "invalid_client"}},
			{"introspection of its access token", "POST", "/introspect", introspect(access), "rs", "rs-secret", "",
				200, map[string]any{"active": false}},
			{"introspection of its refresh token", "POST", "/introspect", introspect(refresh), "rs", "rs-secret", "",
				200, map[string]any{"active": false}},
			{"introspection of its client-credentials token", "POST", "/introspect", introspect(service), "rs", "rs-secret", "",
				200, map[string]any{"active": false}},
			{"introspection by the removed client", "POST", "/introspect", introspect(access), "app", "app-secret", "",
				401, map[string]any{"error": "invalid_client"}},
			{"userinfo with its access token", "GET", "/userinfo", nil, "", "", access, 401, map[string]any{"error": "invalid_token"}},
			{"revocation by the removed client", "POST", "/revoke", introspect(refresh), "app", "app-secret", "",
				401, map[string]any{"error": "invalid_client"}},
			{"authorization request", "GET", "/authorize", authorize, "", "", "", 400, nil}, // the unknown-client page, no redirect
		} {
			st, body := rcCall(e, c.method, c.path, c.form, c.client, c.secret, c.bearer)
			if st != c.status {
				t.Errorf("%s: status %d, want %d (%v)", c.name, st, c.status, body)
			}
			for k, v := range c.want {
				if body[k] != v {
					t.Errorf("%s: %s = %v, want %v", c.name, k, body[k], v)
				}
			}
		}

		clients, err := iss.Clients(ctx)
		if err != nil {
			t.Fatal(err)
		}
		state := map[string]bool{}
		for _, c := range clients {
			state[c.ID] = c.RemovedAt != nil
		}
		if !state["app"] || !state["svc"] || state["rs"] || state[AdminClientID] {
			t.Errorf("removed (true) per client: %v; want app and svc removed, kept as rows", state)
		}
		var revoked int64
		if err := db.Model(&Grant{}).Where("client_id = ? AND revoked_at IS NOT NULL", "app").Count(&revoked).Error; err != nil || revoked != 1 {
			t.Errorf("app's revoked grants: %d (%v), want its one grant kept and revoked", revoked, err)
		}

		rcServer(t, db, users, events, rcRS) // a second start with the same file changes nothing
		countEvents := func(typ string) map[string]int {
			found, _, err := events.Find(ctx, audit.Filter{Type: typ})
			if err != nil {
				t.Fatal(err)
			}
			n := map[string]int{}
			for _, ev := range found {
				n[ev.ClientID]++
			}
			return n
		}
		if got := countEvents(audit.ClientDisabled); got["app"] != 1 || got["svc"] != 1 || len(got) != 2 {
			t.Errorf("client.disabled events per client: %v, want one for app and one for svc", got)
		}

		e, _ = rcServer(t, db, users, events, rcApp, rcSvc, rcRS) // back in the file
		if st, body := rcCall(e, http.MethodPost, "/token", url.Values{"grant_type": {"client_credentials"}}, "svc", "svc-secret", ""); st != 200 {
			t.Errorf("svc back in the configuration: client credentials answered %d %v", st, body)
		}
		if st, body := rcCall(e, http.MethodPost, "/token", password, "app", "app-secret", ""); st != 200 {
			t.Errorf("app back in the configuration: password grant answered %d %v", st, body)
		}
		st, body = rcCall(e, http.MethodPost, "/token", url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}}, "app", "app-secret", "")
		if st != 400 || body["error"] != "invalid_grant" {
			t.Errorf("a refresh token from before the removal, after re-adding: %d %v, want invalid_grant", st, body)
		}
		if got := countEvents(audit.ClientEnabled); got["app"] != 1 || got["svc"] != 1 || len(got) != 2 {
			t.Errorf("client.enabled events per client: %v, want one for app and one for svc", got)
		}
	})
}
