package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store"
)

// The soak: for a bounded time, good users sign in with their passwords
// (sometimes after a typo) from a few loopback source addresses of their own,
// while attackers send wrong passwords as fast as they can from others —
// through the login form (each attempt on a fresh /authorize without cookies,
// or many on one login page) and the password grant. It reports every
// answer by who asked and how, the latencies, whether any good user was
// refused with the right password (locked out: must be none), fedhub's peak
// memory (with -pid) and its database's growth (with -db, SQLite).

type soakOptions struct {
	base, client, secret, redirectURI string
	good                              []credential
	goodAddrs, badAddrs, badWorkers   int
	duration, think                   time.Duration
	budget                            int
	pid                               int
	db                                string
}

type credential struct{ username, password string }

func parseCredentials(s string) ([]credential, error) {
	var out []credential
	for _, pair := range strings.Split(s, ",") {
		u, p, ok := strings.Cut(strings.TrimSpace(pair), ":")
		if !ok || u == "" || p == "" {
			return nil, fmt.Errorf("-good %q: want user:password[,user:password…]", s)
		}
		out = append(out, credential{u, p})
	}
	return out, nil
}

// Outcomes of one attempt.
const (
	outOK        = "ok"        // signed in (a code, or tokens)
	outInvalid   = "invalid"   // "invalid username or password"
	outThrottled = "throttled" // "too many failed sign-in attempts"
	outBusy      = "busy"      // 503 with Retry-After
	outOther     = "other"     // anything else: an error
)

// tally counts outcomes and keeps latencies, by row ("good form", "bad grant"…).
type tally struct {
	mu        sync.Mutex
	counts    map[string]map[string]int
	latencies map[string][]time.Duration
	notes     map[string]int // unexpected answers, for the report
	sent      atomic.Int64
}

func newTally() *tally {
	return &tally{counts: map[string]map[string]int{}, latencies: map[string][]time.Duration{}, notes: map[string]int{}}
}

func (t *tally) add(row, outcome string, took time.Duration, note string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.counts[row] == nil {
		t.counts[row] = map[string]int{}
	}
	t.counts[row][outcome]++
	t.latencies[row] = append(t.latencies[row], took)
	if note != "" {
		t.notes[row+": "+note]++
	}
}

// loopbackOnly refuses a target that is not this machine: the soak is a load.
func loopbackOnly(base string) error {
	u, err := url.Parse(base)
	if err != nil {
		return err
	}
	host := u.Hostname()
	if host == "localhost" {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("-url %s: the soak only targets a fedhub on this machine (loopback)", base)
}

// transportFrom makes connections from the loopback address addr: fedhub
// sees it as the client's IP.
func transportFrom(addr string) *http.Transport {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 5 * time.Second}
	return &http.Transport{DialContext: d.DialContext, MaxIdleConnsPerHost: 4}
}

// browser is an HTTP client over tr that follows no redirect, with a new
// cookie jar: a browser that has not been to fedhub yet.
func browser(tr http.RoundTripper) *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Transport: tr, Jar: jar, Timeout: 15 * time.Second,
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}
}

var hidden = regexp.MustCompile(`name="(req|csrf)" value="([^"]*)"`)

// loginPage starts a sign-in at /authorize and returns the login form's hidden fields.
func (o *soakOptions) loginPage(ctx context.Context, hc *http.Client) (url.Values, error) {
	q := url.Values{"client_id": {o.client}, "response_type": {"code"}, "scope": {"openid"},
		"redirect_uri": {o.redirectURI}, "state": {"soak"}, "nonce": {"soak"}, "prompt": {"login"}}
	resp, err := get(ctx, hc, o.base+"/authorize?"+q.Encode())
	if err != nil {
		return nil, err
	}
	if resp.status != http.StatusSeeOther {
		return nil, fmt.Errorf("/authorize: %d", resp.status)
	}
	page, err := get(ctx, hc, o.base+resp.location)
	if err != nil {
		return nil, err
	}
	form := url.Values{}
	for _, m := range hidden.FindAllStringSubmatch(page.body, -1) {
		form.Set(m[1], m[2])
	}
	if form.Get("req") == "" {
		return nil, fmt.Errorf("login page: %d without a form", page.status)
	}
	return form, nil
}

type answer struct {
	status             int
	location, body     string
	retryAfter         string
	oauthErr, oauthMsg string
}

func do(hc *http.Client, req *http.Request) (answer, error) {
	resp, err := hc.Do(req)
	if err != nil {
		return answer{}, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return answer{}, err
	}
	a := answer{status: resp.StatusCode, location: resp.Header.Get("Location"), body: string(body), retryAfter: resp.Header.Get("Retry-After")}
	if strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") {
		var e struct{ Error, ErrorDescription string }
		var raw map[string]any
		if json.Unmarshal(body, &raw) == nil {
			e.Error, _ = raw["error"].(string)
			e.ErrorDescription, _ = raw["error_description"].(string)
		}
		a.oauthErr, a.oauthMsg = e.Error, e.ErrorDescription
	}
	return a, nil
}

func get(ctx context.Context, hc *http.Client, u string) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, u, nil)
	if err != nil {
		return answer{}, err
	}
	return do(hc, req)
}

func postForm(ctx context.Context, hc *http.Client, u string, form url.Values, basic *credential) (answer, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, strings.NewReader(form.Encode()))
	if err != nil {
		return answer{}, err
	}
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	if basic != nil {
		req.SetBasicAuth(basic.username, basic.password)
	}
	return do(hc, req)
}

// formAttempt posts the login form and says how it went.
func (o *soakOptions) formAttempt(ctx context.Context, hc *http.Client, form url.Values, c credential) (string, answer, error) {
	form.Set("username", c.username)
	form.Set("password", c.password)
	a, err := postForm(ctx, hc, o.base+"/broker/local/login", form, nil)
	if err != nil {
		return outOther, a, err
	}
	switch {
	case a.status == http.StatusSeeOther && strings.Contains(a.location, "code="):
		return outOK, a, nil
	case a.status == http.StatusServiceUnavailable && a.retryAfter != "":
		return outBusy, a, nil
	case strings.Contains(a.body, "Too many failed sign-in attempts"):
		return outThrottled, a, nil
	case a.status == http.StatusUnauthorized && strings.Contains(a.body, "Invalid username or password"):
		return outInvalid, a, nil
	}
	return outOther, a, nil
}

// grantAttempt asks for tokens with the password grant and says how it went.
func (o *soakOptions) grantAttempt(ctx context.Context, hc *http.Client, c credential) (string, answer, error) {
	form := url.Values{"grant_type": {"password"}, "username": {c.username}, "password": {c.password}}
	a, err := postForm(ctx, hc, o.base+"/token", form, &credential{o.client, o.secret})
	if err != nil {
		return outOther, a, err
	}
	switch {
	case a.status == http.StatusOK:
		return outOK, a, nil
	case a.status == http.StatusServiceUnavailable && a.oauthErr == "temporarily_unavailable" && a.retryAfter != "":
		return outBusy, a, nil
	case strings.Contains(a.oauthMsg, "Too many failed sign-in attempts"):
		return outThrottled, a, nil
	case a.oauthErr == "invalid_grant" && strings.Contains(a.oauthMsg, "Invalid username or password"):
		return outInvalid, a, nil
	}
	return outOther, a, nil
}

func note(outcome string, a answer, err error) string {
	switch {
	case err != nil && !errors.Is(err, context.DeadlineExceeded) && !errors.Is(err, context.Canceled):
		return err.Error()
	case outcome == outOther && err == nil:
		return fmt.Sprintf("%d %s", a.status, a.oauthErr)
	}
	return ""
}

// goodUser signs one person in again and again from one address, as a
// person would: a typo now and then, and after a 503 another try once the
// Retry-After has passed.
func (o *soakOptions) goodUser(ctx context.Context, t *tally, addr string, c credential, seq int, refused, failed *atomic.Int64) {
	tr := transportFrom(addr)
	defer tr.CloseIdleConnections()
	for n := seq; ctx.Err() == nil; n++ {
		kind := "form"
		if n%2 == 1 {
			kind = "grant"
		}
		attempt := func(cr credential) (string, error) {
			if t.sent.Add(1) > int64(o.budget) {
				return "", errBudget
			}
			start := time.Now()
			var out string
			var a answer
			var err error
			if kind == "grant" {
				out, a, err = o.grantAttempt(ctx, browser(tr), cr)
			} else {
				hc := browser(tr) // a new browser: no SSO session yet
				var form url.Values
				if form, err = o.loginPage(ctx, hc); err == nil {
					out, a, err = o.formAttempt(ctx, hc, form, cr)
				} else {
					out = outOther
				}
			}
			if ctx.Err() != nil {
				return "", ctx.Err()
			}
			row := "good " + kind
			if cr.password != c.password {
				row = "good " + kind + " typo"
			}
			t.add(row, out, time.Since(start), note(out, a, err))
			if out == outBusy {
				wait, _ := strconv.Atoi(a.retryAfter)
				sleep(ctx, time.Duration(max(wait, 1))*time.Second)
			}
			return out, nil
		}
		if n%4 == 3 { // a typo first
			if _, err := attempt(credential{c.username, c.password + "x"}); err != nil {
				return
			}
		}
		for try := 0; try < 5; try++ {
			out, err := attempt(c)
			if err != nil {
				return
			}
			switch out {
			case outThrottled, outInvalid:
				refused.Add(1)
			case outOther:
				failed.Add(1)
			}
			if out != outBusy {
				break
			}
		}
		sleep(ctx, o.think)
	}
}

var errBudget = errors.New("request budget spent")

// attacker sends wrong passwords from one address as fast as it is answered:
// made-up usernames (a new one each time) and a few guessed ones, through the
// password grant, one login page used again and again, and a fresh /authorize
// without cookies each time.
func (o *soakOptions) attacker(ctx context.Context, t *tally, addr string, seed uint64) {
	r := rand.New(rand.NewPCG(seed, seed^0x5eed))
	tr := transportFrom(addr)
	defer tr.CloseIdleConnections()
	kept := browser(tr) // keeps its cookie: one browser, one login page
	var page url.Values
	for ctx.Err() == nil && t.sent.Add(1) <= int64(o.budget) {
		username := fmt.Sprintf("nobody-%d", r.Int64())
		if r.IntN(4) == 0 {
			username = []string{"admin", "root", "administrator", "test"}[r.IntN(4)]
		}
		c := credential{username, fmt.Sprintf("guess-%d", r.Int64())}
		start := time.Now()
		var out, kind string
		var a answer
		var err error
		switch r.IntN(4) {
		case 0, 1:
			kind = "grant"
			out, a, err = o.grantAttempt(ctx, kept, c)
		case 2:
			kind = "form, one page"
			if page == nil {
				if page, err = o.loginPage(ctx, kept); err != nil {
					out, page = outOther, nil
					break
				}
			}
			out, a, err = o.formAttempt(ctx, kept, page, c)
		case 3:
			kind = "form, new /authorize"
			hc := browser(tr) // no cookies: a new browser every time
			var form url.Values
			if form, err = o.loginPage(ctx, hc); err != nil {
				out = outOther
				break
			}
			out, a, err = o.formAttempt(ctx, hc, form, c)
		}
		if ctx.Err() != nil {
			return
		}
		t.add("bad "+kind, out, time.Since(start), note(out, a, err))
		if out == outOK {
			t.add("bad "+kind+" SIGNED IN", outOther, 0, "a wrong password was accepted")
		}
	}
}

func sleep(ctx context.Context, d time.Duration) {
	select {
	case <-ctx.Done():
	case <-time.After(d):
	}
}

// memory reads VmRSS or VmHWM (kB) of a process.
func memory(pid int, field string) (int64, error) {
	b, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, err
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			return strconv.ParseInt(strings.TrimSpace(strings.TrimSuffix(strings.TrimSpace(v), "kB")), 10, 64)
		}
	}
	return 0, fmt.Errorf("/proc/%d/status has no %s", pid, field)
}

// dbSize is the size of the SQLite database's file and of its write-ahead log.
func dbSize(path string) (db, wal int64) {
	if fi, err := os.Stat(path); err == nil {
		db = fi.Size()
	}
	if fi, err := os.Stat(path + "-wal"); err == nil {
		wal = fi.Size()
	}
	return db, wal
}

// soakTables are the tables whose rows the report counts.
var soakTables = []string{"failures", "login_transactions", "events", "sessions", "auth_codes", "grants", "refresh_tokens", "connector_values"}

func rowCounts(path string) (map[string]int64, error) {
	db, err := store.Open(context.Background(), config.Storage{Driver: "sqlite", DSN: path})
	if err != nil {
		return nil, err
	}
	defer store.Close(db)
	out := map[string]int64{}
	for _, table := range soakTables {
		var n int64
		if err := db.Table(table).Count(&n).Error; err != nil {
			return nil, fmt.Errorf("count %s: %w", table, err)
		}
		out[table] = n
	}
	return out, nil
}

func soak(o soakOptions) error {
	if err := loopbackOnly(o.base); err != nil {
		return err
	}
	if o.duration <= 0 || o.duration > 10*time.Minute || o.budget <= 0 {
		return errors.New("the soak runs for at most 10 minutes (-d) and a positive number of requests (-n)")
	}
	if o.goodAddrs < 1 || o.goodAddrs > 50 || o.badAddrs < 1 || o.badAddrs > 100 || o.badWorkers < 0 || o.badWorkers > 256 {
		return errors.New("-good-ips 1…50, -bad-ips 1…100, -c 0…256")
	}
	var sizeBefore, walBefore int64
	var rowsBefore map[string]int64
	if o.db != "" {
		sizeBefore, walBefore = dbSize(o.db)
		var err error
		if rowsBefore, err = rowCounts(o.db); err != nil {
			return fmt.Errorf("-db: %w", err)
		}
	}
	var rssBefore, hwmBefore int64
	var peakRSS atomic.Int64
	if o.pid > 0 {
		var err error
		if rssBefore, err = memory(o.pid, "VmRSS"); err != nil {
			return fmt.Errorf("-pid: %w", err)
		}
		hwmBefore, _ = memory(o.pid, "VmHWM")
		peakRSS.Store(rssBefore)
	}

	ctx, cancel := context.WithTimeout(context.Background(), o.duration)
	defer cancel()
	t := newTally()
	var refused, failed atomic.Int64
	var wg sync.WaitGroup
	if o.pid > 0 {
		wg.Go(func() {
			tick := time.NewTicker(50 * time.Millisecond)
			defer tick.Stop()
			for {
				select {
				case <-ctx.Done():
					return
				case <-tick.C:
					if v, err := memory(o.pid, "VmRSS"); err == nil && v > peakRSS.Load() {
						peakRSS.Store(v)
					}
				}
			}
		})
	}
	goodAddr := func(i int) string { return fmt.Sprintf("127.0.0.%d", 11+i) }
	badAddr := func(i int) string { return fmt.Sprintf("127.0.1.%d", 1+i) }
	for i := range o.goodAddrs {
		wg.Go(func() { o.goodUser(ctx, t, goodAddr(i), o.good[i%len(o.good)], i, &refused, &failed) })
	}
	for w := range o.badWorkers {
		wg.Go(func() { o.attacker(ctx, t, badAddr(w%o.badAddrs), uint64(w)+1) })
	}
	start := time.Now()
	wg.Wait()
	elapsed := time.Since(start)

	fmt.Printf("soak: %v against %s; good users %d from %s…%s; attackers %d from %s…%s\n\n",
		elapsed.Round(time.Millisecond), o.base, o.goodAddrs, goodAddr(0), goodAddr(o.goodAddrs-1),
		o.badWorkers, badAddr(0), badAddr(min(o.badWorkers, o.badAddrs)-1))
	rows := slices.Sorted(func(yield func(string) bool) {
		for k := range t.counts {
			if !yield(k) {
				return
			}
		}
	})
	outcomes := []string{outOK, outInvalid, outThrottled, outBusy, outOther}
	fmt.Printf("%-28s %7s %7s %7s %9s %7s %7s %10s %10s\n", "", "sent", outOK, outInvalid, outThrottled, outBusy, outOther, "p50", "p99")
	for _, row := range rows {
		lat := t.latencies[row]
		slices.Sort(lat)
		total := 0
		fmt.Printf("%-28s", row)
		for _, oc := range outcomes {
			total += t.counts[row][oc]
		}
		fmt.Printf(" %7d", total)
		for _, oc := range outcomes {
			w := 7
			if oc == outThrottled {
				w = 9
			}
			fmt.Printf(" %*d", w, t.counts[row][oc])
		}
		fmt.Printf(" %10v %10v\n", pct(lat, 0.50), pct(lat, 0.99))
	}
	for n, c := range t.notes {
		fmt.Printf("  note: %d × %s\n", c, n)
	}
	fmt.Printf("\ngood users refused with the right password (locked out): %d; failed otherwise (errors): %d\n", refused.Load(), failed.Load())
	if o.pid > 0 {
		hwm, _ := memory(o.pid, "VmHWM")
		rss, _ := memory(o.pid, "VmRSS")
		fmt.Printf("fedhub (pid %d) RSS: %d MiB before, peak %d MiB during, %d MiB after; VmHWM %d → %d MiB\n",
			o.pid, rssBefore>>10, peakRSS.Load()>>10, rss>>10, hwmBefore>>10, hwm>>10)
	}
	if o.db != "" {
		after, walAfter := dbSize(o.db)
		fmt.Printf("database %s: %.1f MiB before, %.1f MiB after; its write-ahead log %.1f MiB before, %.1f MiB after\n",
			o.db, mib(sizeBefore), mib(after), mib(walBefore), mib(walAfter))
		if rowsAfter, err := rowCounts(o.db); err == nil {
			fmt.Printf("rows added:")
			for _, table := range soakTables {
				fmt.Printf(" %s %+d", table, rowsAfter[table]-rowsBefore[table])
			}
			fmt.Println()
		}
	}
	if refused.Load() > 0 || failed.Load() > 0 {
		return fmt.Errorf("%d good sign-ins were refused, %d failed", refused.Load(), failed.Load())
	}
	return nil
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }

func pct(lat []time.Duration, p float64) time.Duration {
	if len(lat) == 0 {
		return 0
	}
	return lat[min(len(lat)-1, int(p*float64(len(lat))))].Round(time.Millisecond)
}
