package main

import (
	"context"
	"crypto/x509"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/go-jose/go-jose/v4"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/mfa"
	"github.com/fedhub/fedhub/store"
)

// The benchmarks run fedhub in-process on SQLite and print each figure next to
// the raw signing speed of the configured key, measured in the same run ("x-sign":
// how many signatures one operation costs), because these machines are noisy.
//
//	go test -run '^$' -bench . -benchtime 3s ./cmd/fedhub/

type benchServer struct {
	url    string
	client *http.Client
	app    *app     // nil for a server in a process of its own
	pid    int      // that process; 0 in-process
	db     *gorm.DB // its database
}

// startBench starts the demo on a fresh SQLite file.
func startBench(b *testing.B, alg string, extra ...brokers.Connector) *benchServer {
	b.Helper()
	return startServer(b, alg, config.Storage{Driver: "sqlite", DSN: filepath.Join(b.TempDir(), "bench.db")}, extra...)
}

// startServer runs the demo configuration in-process with this signing
// algorithm and storage, with serve's garbage collector settings (the whole
// process has them: the load generator too); extra connectors (fakes) follow
// the configured ones.
func startServer(tb testing.TB, alg string, storage config.Storage, extra ...brokers.Connector) *benchServer {
	tb.Helper()
	tb.Cleanup(tuneGC(slog.New(slog.DiscardHandler)))
	srv := httptest.NewUnstartedServer(nil)
	cfg, err := demoConfig(srv.Listener.Addr().String())
	if err != nil {
		tb.Fatal(err)
	}
	cfg.Storage = storage
	cfg.Signing.Algorithm = alg
	cfg.BruteForce.FailureFactor = 1 << 30 // the benchmark logs in many times
	ctx, log := context.Background(), slog.New(slog.DiscardHandler)
	db, err := store.Open(ctx, cfg.Storage)
	if err != nil {
		tb.Fatal(err)
	}
	if err := migrate(ctx, db, log); err != nil {
		tb.Fatal(err)
	}
	a, err := wire(ctx, cfg, db, log, extra...)
	if err != nil {
		tb.Fatal(err)
	}
	srv.Config.Handler = a.echo
	srv.Start()
	tb.Cleanup(func() { srv.Close(); store.Close(a.db) })
	// Enough idle connections for every concurrent worker: with the default 2
	// the others would dial a new connection per request.
	srv.Client().Transport.(*http.Transport).MaxIdleConnsPerHost = 64
	return &benchServer{url: srv.URL, client: srv.Client(), app: a, db: a.db}
}

// rawSigner signs with the very key the issuer uses (read from its database).
func (s *benchServer) rawSigner(tb testing.TB) jose.Signer {
	var row issuer.SigningKey
	if err := s.db.Order("created_at DESC").Take(&row).Error; err != nil {
		tb.Fatal(err)
	}
	priv, err := x509.ParsePKCS8PrivateKey(row.PrivateKey)
	if err != nil {
		tb.Fatal(err)
	}
	signer, err := jose.NewSigner(jose.SigningKey{Algorithm: jose.SignatureAlgorithm(row.Algorithm), Key: priv}, nil)
	if err != nil {
		tb.Fatal(err)
	}
	return signer
}

func (s *benchServer) token(tb testing.TB, form url.Values) map[string]any {
	out, err := s.tokenCtx(context.Background(), form)
	if err != nil {
		tb.Fatal(err)
	}
	return out
}

// tokenCtx asks the token endpoint as the demo client; anything but 200 is an error.
func (s *benchServer) tokenCtx(ctx context.Context, form url.Values) (map[string]any, error) {
	return s.tokenAs(ctx, demoClientID, demoSecret, form)
}

// tokenAs asks the token endpoint as the client id with its secret.
func (s *benchServer) tokenAs(ctx context.Context, id, secret string, form url.Values) (map[string]any, error) {
	var out map[string]any
	err := s.tokenInto(ctx, id, secret, form, &out)
	return out, err
}

// tokenInto asks the token endpoint as the client id with its secret and
// decodes the answer into out (nil: only its status counts, which spares
// the load generator the decoding); anything but 200 is an error.
func (s *benchServer) tokenInto(ctx context.Context, id, secret string, form url.Values, out any) error {
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, s.url+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(id, secret)
	resp, err := s.client.Do(req)
	if err != nil {
		return err
	}
	body, err := readClose(resp)
	if err == nil && resp.StatusCode != http.StatusOK {
		err = fmt.Errorf("%s", body)
	}
	if err == nil && out != nil {
		err = json.Unmarshal(body, out)
	}
	if err != nil {
		return fmt.Errorf("token endpoint: %d: %w", resp.StatusCode, err)
	}
	return nil
}

// login runs authorize → login page → form POST → code → token, as a browser and an RP would.
func (s *benchServer) login(b *testing.B) { s.loginAs(b, "demo", "demo", "") }

// loginAs is login as another user; with a TOTP key it answers the
// second-factor step with the current code.
func (s *benchServer) loginAs(tb testing.TB, username, password, totpKey string) {
	if err := s.loginCtx(context.Background(), username, password, totpKey); err != nil {
		tb.Fatal(err)
	}
}

// loginCtx is loginAs that returns its error, for concurrent browsers.
func (s *benchServer) loginCtx(ctx context.Context, username, password, totpKey string) error {
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, Transport: s.client.Transport,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	do := func(method, path string, form url.Values) (*http.Response, error) {
		var body io.Reader
		if form != nil {
			body = strings.NewReader(form.Encode())
		}
		req, err := http.NewRequestWithContext(ctx, method, s.url+path, body)
		if err != nil {
			return nil, err
		}
		if form != nil {
			req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		}
		return browser.Do(req)
	}
	formAt := func(path string) (url.Values, error) {
		resp, err := do(http.MethodGet, path, nil)
		if err != nil {
			return nil, err
		}
		page, _ := readClose(resp)
		form := url.Values{}
		for _, m := range hiddenField.FindAllStringSubmatch(string(page), -1) {
			form.Set(m[1], m[2])
		}
		return form, nil
	}
	q := url.Values{"client_id": {demoClientID}, "response_type": {"code"}, "scope": {"openid profile email"},
		"redirect_uri": {demoRedirectURI}, "state": {"s"}, "nonce": {"n"}}
	resp, err := do(http.MethodGet, "/authorize?"+q.Encode(), nil)
	if err != nil {
		return err
	}
	readClose(resp)
	form, err := formAt(resp.Header.Get("Location"))
	if err != nil {
		return err
	}
	form.Set("username", username)
	form.Set("password", password)
	if resp, err = do(http.MethodPost, "/broker/local/login", form); err != nil {
		return err
	}
	readClose(resp)
	if totpKey != "" {
		form, err := formAt(resp.Header.Get("Location"))
		if err != nil {
			return err
		}
		code, _ := totp.GenerateCode(totpKey, time.Now())
		form.Set("code", code)
		if resp, err = do(http.MethodPost, "/login/factor", form); err != nil {
			return err
		}
		readClose(resp)
	}
	cb, err := url.Parse(resp.Header.Get("Location"))
	if err != nil || cb.Query().Get("code") == "" {
		return fmt.Errorf("login did not return a code: %d %s", resp.StatusCode, resp.Header.Get("Location"))
	}
	_, err = s.tokenCtx(ctx, url.Values{"grant_type": {"authorization_code"}, "code": {cb.Query().Get("code")}, "redirect_uri": {demoRedirectURI}})
	return err
}

// readClose reads an answer to its end and closes it: the client reuses a
// connection only after that (closed early, the next request opened a new
// one, which the measurements then counted).
func readClose(resp *http.Response) ([]byte, error) {
	defer resp.Body.Close()
	return io.ReadAll(resp.Body)
}

var hiddenField = regexp.MustCompile(`name="(req|t|csrf)" value="([^"]*)"`)

// BenchmarkSecondFactor: a full local login with an authenticator app's code
// next to the password-only login, in the same run; "x-password" is how many
// password-only logins one costs.
//
//	go test -run '^$' -bench SecondFactor -benchtime 100x ./cmd/fedhub/
func BenchmarkSecondFactor(b *testing.B) {
	s := startBench(b, "ES256")
	const key = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
	ctx := context.Background()
	u, err := s.app.users.CreateUser(ctx, linking.NewUser{Username: "otp-demo", Password: "otp-demo-password"})
	if err != nil {
		b.Fatal(err)
	}
	code, _ := totp.GenerateCode(key, time.Now())
	if _, _, err := mfa.New(s.app.db, s.app.secrets, "fedhub", time.Now).ConfirmTOTP(ctx, u.ID, "Phone", key, code); err != nil {
		b.Fatal(err)
	}
	var passwordNs float64
	b.Run("password", func(b *testing.B) {
		for b.Loop() {
			s.login(b)
		}
		passwordNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("password+totp", func(b *testing.B) {
		for b.Loop() {
			// A code is accepted once: forget the used one, outside the measurement.
			b.StopTimer()
			if err := s.app.db.Exec("DELETE FROM mfa_used_steps").Error; err != nil {
				b.Fatal(err)
			}
			b.StartTimer()
			s.loginAs(b, "otp-demo", "otp-demo-password", key)
		}
		if passwordNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/passwordNs, "x-password")
		}
	})
}

func BenchmarkIssuer(b *testing.B) {
	for _, alg := range []string{"RS256", "ES256", "EdDSA"} {
		b.Run(alg, func(b *testing.B) {
			s := startBench(b, alg)
			var signNs float64
			perSign := func(b *testing.B) {
				if signNs > 0 {
					b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/signNs, "x-sign")
				}
			}
			b.Run("sign", func(b *testing.B) {
				signer := s.rawSigner(b)
				payload := []byte(fmt.Sprintf(`{"iss":%q,"sub":"bench","aud":"demo-app","exp":%d}`, s.url, time.Now().Unix()))
				for b.Loop() {
					if _, err := signer.Sign(payload); err != nil {
						b.Fatal(err)
					}
				}
				signNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			})
			b.Run("client_credentials", func(b *testing.B) {
				form := url.Values{"grant_type": {"client_credentials"}}
				for b.Loop() {
					s.token(b, form)
				}
				perSign(b)
			})
			b.Run("refresh_token", func(b *testing.B) {
				first := s.token(b, url.Values{"grant_type": {"password"}, "username": {"demo"}, "password": {"demo"}, "scope": {"openid"}})
				refresh := first["refresh_token"].(string)
				for b.Loop() { // each refresh rotates: use the newest token
					refresh = s.token(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})["refresh_token"].(string)
				}
				perSign(b)
			})
			b.Run("local_login", func(b *testing.B) {
				for b.Loop() {
					s.login(b)
				}
				perSign(b)
			})
		})
	}
}

// BenchmarkClientScopes: client_credentials for a client whose default scope
// has three mappers and an audience mapper, asking for an API with resource,
// next to the plain demo client: each iteration asks once as each, the order
// swapped every time, so that the load of a shared machine falls on both alike. "x-plain" is how
// many plain requests one costs (the target: at most 1.10).
//
//	go test -run '^$' -bench ClientScopes -benchtime 3s ./cmd/fedhub/
func BenchmarkClientScopes(b *testing.B) {
	s := startBench(b, "EdDSA")
	cfg, err := demoConfig(strings.TrimPrefix(s.url, "http://"))
	if err != nil {
		b.Fatal(err)
	}
	const api, id, secret = "https://orders.example.com", "scoped-app", "scoped-secret"
	cfg.ClientScopes = []config.ClientScope{{Name: "tenant", Mappers: []config.ClaimMapper{
		{Type: config.MapperHardcoded, Claim: "tenant", Value: "acme"},
		{Type: config.MapperHardcoded, Claim: "org.unit", Value: "sales"},
		{Type: config.MapperHardcoded, Claim: "features", Value: []any{"a", "b"}},
		{Type: config.MapperAudience, Audience: "https://audit.example.com"},
	}}}
	cfg.APIs = []config.API{{ID: api, Scopes: []string{"orders:read"}}}
	cfg.Clients = append(cfg.Clients, config.Client{ID: id, Secret: secret, GrantTypes: []string{config.GrantClientCredentials},
		DefaultScopes: []string{"roles", "groups", "tenant"}, APIs: []string{api}})
	if err := cfg.Validate(); err != nil {
		b.Fatal(err)
	}
	ctx := context.Background()
	if err := s.app.issuer.SyncClients(ctx, cfg); err != nil {
		b.Fatal(err)
	}
	plain := url.Values{"grant_type": {"client_credentials"}}
	mapped := url.Values{"grant_type": {"client_credentials"}, "resource": {api}}
	var plainNs, mappedNs time.Duration
	timed := func(total *time.Duration, client, secret string, form url.Values) {
		start := time.Now()
		if _, err := s.tokenAs(ctx, client, secret, form); err != nil {
			b.Fatal(err)
		}
		*total += time.Since(start)
	}
	for i := 0; b.Loop(); i++ {
		if i%2 == 0 { // each goes first every other time: the second of a pair runs slower
			timed(&plainNs, demoClientID, demoSecret, plain)
			timed(&mappedNs, id, secret, mapped)
		} else {
			timed(&mappedNs, id, secret, mapped)
			timed(&plainNs, demoClientID, demoSecret, plain)
		}
	}
	b.ReportMetric(float64(plainNs.Nanoseconds())/float64(b.N), "plain-ns/op")
	b.ReportMetric(float64(mappedNs.Nanoseconds())/float64(b.N), "mapped-ns/op")
	b.ReportMetric(float64(mappedNs)/float64(plainNs), "x-plain")
}
