package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/throttle"
)

// demoServer is the demo configuration (demo/demo, the demo client with the
// password grant) in-process, over a fresh SQLite file.
type demoServer struct {
	url string
	app *app
}

func startDemo(t *testing.T) *demoServer {
	t.Helper()
	srv := httptest.NewUnstartedServer(nil)
	cfg, err := demoConfig(srv.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	cfg.Storage.DSN = filepath.Join(t.TempDir(), "demo.db")
	cfg.Signing.Algorithm = "ES256"
	a, err := newApp(context.Background(), cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	srv.Config.Handler = a.echo
	srv.Start()
	t.Cleanup(func() { srv.Close(); _ = store.Close(a.db) })
	return &demoServer{url: srv.URL, app: a}
}

// loginPage starts the demo client's sign-in in a new browser and returns
// the browser and the login form's hidden fields.
func (s *demoServer) loginPage(t *testing.T) (*http.Client, url.Values) {
	t.Helper()
	jar, _ := cookiejar.New(nil)
	browser := &http.Client{Jar: jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	q := url.Values{"client_id": {demoClientID}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {demoRedirectURI}, "state": {"s"}, "nonce": {"n"}}
	resp, err := browser.Get(s.url + "/authorize?" + q.Encode())
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	resp, err = browser.Get(s.url + resp.Header.Get("Location"))
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	form := url.Values{}
	for _, m := range hiddenField.FindAllStringSubmatch(string(page), -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("req") == "" {
		t.Fatalf("no login form: %d\n%s", resp.StatusCode, page)
	}
	return browser, form
}

// postLogin posts the local login form.
func (s *demoServer) postLogin(t *testing.T, browser *http.Client, form url.Values, username, password string) (*http.Response, string) {
	t.Helper()
	form.Set("username", username)
	form.Set("password", password)
	resp, err := browser.PostForm(s.url+"/broker/local/login", form)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// passwordGrant asks the token endpoint for tokens with a password.
func (s *demoServer) passwordGrant(t *testing.T, username, password string) (*http.Response, map[string]any) {
	t.Helper()
	form := url.Values{"grant_type": {"password"}, "username": {username}, "password": {password}}
	req, _ := http.NewRequest(http.MethodPost, s.url+"/token", strings.NewReader(form.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	req.SetBasicAuth(demoClientID, demoSecret)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var out map[string]any
	_ = json.NewDecoder(resp.Body).Decode(&out)
	return resp, out
}

// TestPasswordCheckBusy: when the process's password hashing is at its bound,
// the login page answers 503 with Retry-After and the password grant 503
// temporarily_unavailable with Retry-After — even for the right password,
// which was not checked. Each attempt counts for the address, not for the
// account (no password was tested: a flood must not lock out the people whose
// attempts it crowds out). Once a place is free, both sign in.
func TestPasswordCheckBusy(t *testing.T) {
	s := startDemo(t)
	browser, form := s.loginPage(t)
	defer linking.SetHashLimits(linking.HashLimits{Running: 1, Waiting: 0, Wait: time.Millisecond})()
	release := linking.OccupyHashing(1)

	resp, body := s.postLogin(t, browser, form, "demo", "demo")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" ||
		!strings.Contains(body, "Too many sign-ins at once") {
		t.Errorf("login form while hashing is full: %d, Retry-After %q:\n%s", resp.StatusCode, resp.Header.Get("Retry-After"), body)
	}
	resp, out := s.passwordGrant(t, "demo", "demo")
	if resp.StatusCode != http.StatusServiceUnavailable || resp.Header.Get("Retry-After") != "2" ||
		out["error"] != "temporarily_unavailable" {
		t.Errorf("password grant while hashing is full: %d, Retry-After %q, %v", resp.StatusCode, resp.Header.Get("Retry-After"), out)
	}
	var counted []throttle.Failure
	if err := s.app.db.Find(&counted).Error; err != nil {
		t.Fatal(err)
	}
	if len(counted) != 1 || counted[0].Key != throttle.IPKey("127.0.0.1") || counted[0].Count != 2 {
		t.Errorf("failures counted after two busy attempts: %+v, want 2 for the address and none for the account", counted)
	}

	release()
	resp, _ = s.postLogin(t, browser, form, "demo", "demo")
	if loc, _ := url.Parse(resp.Header.Get("Location")); resp.StatusCode != http.StatusSeeOther || loc.Query().Get("code") == "" {
		t.Errorf("login form once a place is free: %d to %q", resp.StatusCode, resp.Header.Get("Location"))
	}
	if resp, out := s.passwordGrant(t, "demo", "demo"); resp.StatusCode != http.StatusOK || out["access_token"] == nil {
		t.Errorf("password grant once a place is free: %d %v", resp.StatusCode, out)
	}
}

// TestPasswordFloodMemory: the flood — 48 concurrent wrong passwords,
// 866 MiB before the bound — through the password grant: each is answered
// (400 invalid_grant, or 503 with Retry-After; never an error), and the heap's
// peak stays under the stated ceiling of 4 × max(2, GOMAXPROCS) × 19 MiB over
// where it started (at most that many hashes alive, and the garbage
// collector's room of as much again).
func TestPasswordFloodMemory(t *testing.T) {
	const flood = 48
	defer tuneGC(slog.New(slog.DiscardHandler))() // serve's collector settings: a larger GOGC must not undo the bound
	s := startDemo(t)
	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
			}
		}
	})

	var mu sync.Mutex
	answers := map[int]int{}
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range flood {
		wg.Go(func() {
			<-start
			resp, out := s.passwordGrant(t, fmt.Sprintf("flood-%d", i%8), "wrong")
			mu.Lock()
			defer mu.Unlock()
			answers[resp.StatusCode]++
			switch {
			case resp.StatusCode == http.StatusBadRequest && out["error"] == "invalid_grant":
			case resp.StatusCode == http.StatusServiceUnavailable && resp.Header.Get("Retry-After") != "":
			default:
				t.Errorf("wrong password in the flood: %d %v", resp.StatusCode, out)
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	sampler.Wait()

	const mib = 1 << 20
	ceiling := uint64(4 * max(2, runtime.GOMAXPROCS(0)) * 19 * mib)
	grew := peak.Load() - min(base, peak.Load())
	t.Logf("%d concurrent wrong passwords: answers %v; heap peak %d MiB over %d MiB (ceiling %d MiB)",
		flood, answers, grew/mib, base/mib, ceiling/mib)
	if grew > ceiling {
		t.Errorf("the heap grew by %d MiB under %d concurrent wrong passwords; the ceiling is %d MiB", grew/mib, flood, ceiling/mib)
	}
}

// TestSignInRowsBounded: an anonymous browser's clicks and requests write a
// bounded number of rows — 50 clicks on a connector's button move its one
// sign-in on (no row per click), and 50 /authorize requests of one browser
// leave at most login.MaxPerBrowser sign-ins.
func TestSignInRowsBounded(t *testing.T) {
	l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
	b := l.browser(t)
	_, p := b.authorize()
	button := p.form(t, "/broker/"+laneSSO+"/login")
	l.sso.As(newcomer.Username) // the upstream would sign in a newcomer; the browser never goes there
	noFollow := &http.Client{Jar: b.client.Jar, CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
	for range 50 {
		resp, err := noFollow.PostForm(l.url+"/broker/"+laneSSO+"/login", button)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusSeeOther && resp.StatusCode != http.StatusFound {
			t.Fatalf("a click on the button: %d", resp.StatusCode)
		}
	}
	rows := func() int64 {
		var n int64
		if err := l.app.db.Model(&login.Transaction{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	if n := rows(); n != 1 {
		t.Errorf("%d sign-ins after 50 clicks on a connector's button, want 1", n)
	}
	for range 50 {
		b.authorize()
	}
	if n := rows(); n != login.MaxPerBrowser {
		t.Errorf("%d sign-ins after 51 /authorize requests of one browser, want %d", n, login.MaxPerBrowser)
	}
}
