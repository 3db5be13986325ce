package issuer

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// fuzzPassword is the password grant's check: alice with her password signs
// in; local accounts need no re-check.
type fuzzPassword struct{ userID string }

func (p fuzzPassword) PasswordLogin(_ context.Context, _, username, password, _ string) (login.Authentication, error) {
	if username == "alice" && password == "alice-password" {
		return login.Authentication{UserID: p.userID, Connector: linking.LocalConnector, AMR: []string{"pwd"}, ACR: login.ACRSingleFactor}, nil
	}
	return login.Authentication{}, login.ErrInvalidCredentials
}

func (fuzzPassword) Recheck(context.Context, string, string, string) error { return nil }

// The token endpoint's error codes (RFC 6749 §5.2).
var oauthErrorCodes = []string{"invalid_request", "invalid_client", "invalid_grant", "unauthorized_client",
	"unsupported_grant_type", "invalid_scope"}

// FuzzTokenEndpoint posts raw bodies with any Content-Type and Authorization
// header to /token through the echo handler in process. Whatever arrives, the
// answer is never a 5xx, is JSON that is not cached, and is either tokens
// (200, an access token of type Bearer) or an error object with one of RFC
// 6749's codes. The database holds three clients, a user, authorization
// codes and refresh tokens the seeds name, so that every grant is reached.
//
// The database is SQLite; with FEDHUB_FUZZ_DB=postgres it is a fresh
// PostgreSQL database (see peers.Postgres), which refuses some strings
// SQLite stores.
func FuzzTokenEndpoint(f *testing.F) {
	ctx := context.Background()
	storage := config.Storage{Driver: "sqlite", DSN: filepath.Join(f.TempDir(), "token.db")}
	if os.Getenv("FEDHUB_FUZZ_DB") == "postgres" {
		f.Cleanup(peers.StopAll) // after the database is dropped
		storage = config.Storage{Driver: "postgres", DSN: peers.Postgres(f)}
	}
	db, err := store.Open(ctx, storage)
	if err != nil {
		f.Fatal(err)
	}
	f.Cleanup(func() { store.Close(db) })
	models := append(Models(), linking.Models()...)
	models = append(models, audit.Models()...)
	models = append(models, login.Models()...)
	if err := store.Migrate(ctx, db, models...); err != nil {
		f.Fatal(err)
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	users := linking.New(db, time.Now)
	alice, err := users.CreateUser(ctx, linking.NewUser{Username: "alice", Email: "alice@example.com", EmailVerified: true,
		Roles: []string{AdminRole}})
	if err != nil {
		f.Fatal(err)
	}
	cfg := config.Defaults()
	cfg.Issuer = fuzzIssuer
	cfg.Signing.Algorithm = "EdDSA"
	cfg.Clients = []config.Client{
		{ID: "app", Secret: "app-secret", RedirectURIs: []string{"https://app.example.com/cb"},
			GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken, config.GrantClientCredentials, config.GrantPassword},
			Scopes:     []string{AdminScope}},
		{ID: "pub", Public: true, RedirectURIs: []string{"http://127.0.0.1:8080/cb"},
			GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken}},
		{ID: "svc", Secret: "svc-secret", GrantTypes: []string{config.GrantClientCredentials}},
	}
	iss, err := New(ctx, &cfg, db, nil, users, audit.New(db, log, time.Now), log, time.Now)
	if err != nil {
		f.Fatal(err)
	}
	e := echo.New()
	iss.Routes(e, fuzzPassword{alice.ID})

	// Codes and refresh tokens the seeds present. A code works once; after
	// that the fuzzer reaches the reuse path (which revokes the grant).
	now := time.Now().UTC()
	const verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
	for i, ac := range []AuthCode{
		{ClientID: "app", RedirectURI: "https://app.example.com/cb", Scope: "openid profile offline_access", Nonce: "n"},
		{ClientID: "pub", RedirectURI: "http://127.0.0.1:8080/cb", Scope: "openid", CodeChallenge: "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"},
		{ClientID: "app", RedirectURI: "https://app.example.com/cb", Scope: "openid", ExpiresAt: now.Add(-time.Minute)},
	} {
		ac.Hash, ac.GrantID, ac.UserID, ac.AuthTime, ac.AMR = secret.Hash("code-"+string(rune('a'+i))), "grant-code-"+string(rune('a'+i)), alice.ID, now, "pwd"
		if ac.ExpiresAt.IsZero() {
			ac.ExpiresAt = now.Add(24 * time.Hour)
		}
		if err := db.Create(&ac).Error; err != nil {
			f.Fatal(err)
		}
	}
	for _, g := range []Grant{
		{ID: "grant-rt-app", ClientID: "app", UserID: alice.ID, Scope: "openid profile offline_access", AuthTime: now, AMR: "pwd", CreatedAt: now},
		{ID: "grant-rt-pub", ClientID: "pub", UserID: alice.ID, Scope: "openid", AuthTime: now, AMR: "pwd", CreatedAt: now},
	} {
		if err := db.Create(&g).Error; err != nil {
			f.Fatal(err)
		}
		rt := RefreshToken{Hash: secret.Hash("rt-" + g.ClientID), GrantID: g.ID, ClientID: g.ClientID, Scope: g.Scope,
			ExpiresAt: now.Add(24 * time.Hour)}
		if err := db.Create(&rt).Error; err != nil {
			f.Fatal(err)
		}
	}

	const form = "application/x-www-form-urlencoded"
	basic := func(id, secret string) string {
		return "Basic " + base64.StdEncoding.EncodeToString([]byte(url.QueryEscape(id)+":"+url.QueryEscape(secret)))
	}
	for _, s := range []struct{ body, contentType, authorization string }{
		// Every grant, as clients send it.
		{"grant_type=authorization_code&code=code-a&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb", form, basic("app", "app-secret")},
		{"grant_type=authorization_code&code=code-b&redirect_uri=http%3A%2F%2F127.0.0.1%3A8080%2Fcb&client_id=pub&code_verifier=" + verifier, form, ""},
		{"grant_type=authorization_code&code=code-c&redirect_uri=https%3A%2F%2Fapp.example.com%2Fcb&client_id=app&client_secret=app-secret", form, ""},
		{"grant_type=refresh_token&refresh_token=rt-app&scope=openid", form, basic("app", "app-secret")},
		{"grant_type=refresh_token&refresh_token=rt-pub&client_id=pub", form, ""},
		{"grant_type=refresh_token&refresh_token=rt-app&scope=openid+fedhub%3Aadmin", form, basic("app", "app-secret")},
		{"grant_type=client_credentials&scope=fedhub%3Aadmin+openid", form, basic("svc", "svc-secret")},
		{"grant_type=client_credentials", form, basic("app", "app-secret")},
		{"grant_type=password&username=alice&password=alice-password&scope=openid+offline_access+fedhub%3Aadmin", form, basic("app", "app-secret")},
		{"grant_type=password&username=alice&password=wrong", form, basic("app", "app-secret")},
		// Bad clients and bad requests.
		{"grant_type=client_credentials", form, basic("svc", "wrong")},
		{"grant_type=client_credentials&client_id=svc&client_secret=svc-secret", form, basic("svc", "svc-secret")},
		{"grant_type=client_credentials&client_id=app", form, basic("svc", "svc-secret")},
		{"grant_type=client_credentials", form, "Basic !!!"},
		{"grant_type=client_credentials", form, "Basic " + base64.StdEncoding.EncodeToString([]byte("%zz:%zz"))},
		{"grant_type=client_credentials", form, "Bearer abc"},
		{"grant_type=password&username=alice&password=alice-password", form, basic("pub", "")},
		{"grant_type=implicit&client_id=pub", form, ""},
		{"grant_type=&client_id=pub", form, ""},
		{"client_id=pub&client_id=pub&grant_type=refresh_token", form, ""},
		{"grant_type=refresh_token&refresh_token=rt-app", form, basic("pub", "")},
		{"grant_type=authorization_code&code=code-b&client_id=pub", form, ""},
		{"grant_type=authorization_code&code=nope&client_id=pub&redirect_uri=x", form, ""},
		// Malformed bodies and content types.
		{"%zz=1&grant_type=client_credentials", form, basic("svc", "svc-secret")},
		{"grant_type=client_credentials;client_id=svc", form, ""},
		{`{"grant_type":"client_credentials","client_id":"svc","client_secret":"svc-secret"}`, "application/json", ""},
		{"--x\r\nContent-Disposition: form-data; name=\"grant_type\"\r\n\r\nclient_credentials\r\n--x--\r\n", "multipart/form-data; boundary=x", basic("svc", "svc-secret")},
		{"grant_type=client_credentials", "application/x-www-form-urlencoded; charset=utf-16", basic("svc", "svc-secret")},
		{"grant_type=client_credentials", "text/plain", basic("svc", "svc-secret")},
		{"grant_type=client_credentials", "", basic("svc", "svc-secret")},
		{"grant_type=client_credentials&client_id=" + strings.Repeat("a", 300), form, ""},
		{"grant_type=client_credentials&client_id=%00%ff", form, ""},
		{"grant_type=password&username=%00&password=%ff%fe", form, basic("app", "app-secret")},
		{strings.Repeat("a=b&", 20000), form, ""},
		{"", form, ""},
	} {
		f.Add([]byte(s.body), s.contentType, s.authorization)
	}

	f.Fuzz(func(t *testing.T, body []byte, contentType, authorization string) {
		req := httptest.NewRequest(http.MethodPost, "/token", bytes.NewReader(body))
		if contentType != "" {
			req.Header.Set("Content-Type", contentType)
		}
		if authorization != "" {
			req.Header.Set("Authorization", authorization)
		}
		rec := httptest.NewRecorder()
		e.ServeHTTP(rec, req)

		if rec.Code >= 500 {
			t.Fatalf("status %d: %s", rec.Code, rec.Body)
		}
		if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "application/json") {
			t.Fatalf("status %d with Content-Type %q: %s", rec.Code, ct, rec.Body)
		}
		if cc := rec.Header().Get("Cache-Control"); !strings.Contains(cc, "no-store") {
			t.Fatalf("status %d with Cache-Control %q: tokens and errors must not be cached", rec.Code, cc)
		}
		var answer map[string]any
		if err := json.Unmarshal(rec.Body.Bytes(), &answer); err != nil {
			t.Fatalf("status %d, body is not a JSON object: %v\n%s", rec.Code, err, rec.Body)
		}
		if rec.Code == http.StatusOK {
			if at, _ := answer["access_token"].(string); at == "" || answer["token_type"] != "Bearer" || answer["error"] != nil {
				t.Fatalf("a 200 without an access token: %s", rec.Body)
			}
			return
		}
		code, _ := answer["error"].(string)
		if !slices.Contains(oauthErrorCodes, code) {
			t.Fatalf("status %d with error %q, not an RFC 6749 error code: %s", rec.Code, code, rec.Body)
		}
		switch rec.Code {
		case http.StatusBadRequest, http.StatusUnauthorized, http.StatusRequestEntityTooLarge:
		default:
			t.Fatalf("error %q with status %d", code, rec.Code)
		}
	})
}
