package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strings"
	"sync"
	"time"
)

func main() {
	base := flag.String("url", "http://127.0.0.1:8080", "fedhub's issuer URL")
	client := flag.String("client", "demo-app", "client ID (must allow the grant)")
	secret := flag.String("secret", "demo-secret", "client secret")
	grant := flag.String("grant", "client_credentials", "client_credentials or password")
	username := flag.String("username", "demo", "username for the password grant")
	password := flag.String("password", "demo", "password for the password grant")
	workers := flag.Int("c", 4, "concurrent workers")
	duration := flag.Duration("d", 10*time.Second, "how long each phase runs")
	maxRequests := flag.Int("n", 200000, "the most requests a phase sends")
	soakMode := flag.Bool("soak", false, "soak: good and bad password logins from several loopback addresses (-c attackers, -d, -n)")
	good := flag.String("good", "demo:demo", "soak: the good users, user:password[,user:password…]")
	goodIPs := flag.Int("good-ips", 4, "soak: loopback addresses of good users (127.0.0.11…), one signing in at a time each")
	badIPs := flag.Int("bad-ips", 8, "soak: loopback addresses the attackers share (127.0.1.1…)")
	think := flag.Duration("think", 500*time.Millisecond, "soak: a good user's pause between sign-ins")
	redirectURI := flag.String("redirect-uri", "http://127.0.0.1:5555/callback", "soak: the client's redirect URI")
	pid := flag.Int("pid", 0, "soak: fedhub's process ID, to report its peak memory (Linux /proc)")
	dbPath := flag.String("db", "", "soak: fedhub's SQLite file, to report its growth")
	flag.Parse()

	if *soakMode {
		creds, err := parseCredentials(*good)
		if err == nil {
			err = soak(soakOptions{base: *base, client: *client, secret: *secret, redirectURI: *redirectURI, good: creds,
				goodAddrs: *goodIPs, badAddrs: *badIPs, badWorkers: *workers, duration: *duration, think: *think,
				budget: *maxRequests, pid: *pid, db: *dbPath})
		}
		if err != nil {
			fmt.Fprintln(os.Stderr, "fedhub-load:", err)
			os.Exit(1)
		}
		return
	}

	form := url.Values{"grant_type": {*grant}}
	if *grant == "password" {
		form.Set("username", *username)
		form.Set("password", *password)
	}
	token := func() (*http.Request, error) {
		req, err := http.NewRequest(http.MethodPost, *base+"/token", strings.NewReader(form.Encode()))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(*client, *secret)
		return req, nil
	}
	jwks := func() (*http.Request, error) { return http.NewRequest(http.MethodGet, *base+"/jwks", nil) }

	transport := &http.Transport{MaxIdleConnsPerHost: *workers}
	hc := &http.Client{Transport: transport, Timeout: 10 * time.Second}
	baseline, err := phase(hc, jwks, *workers, *duration, *maxRequests)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fedhub-load: baseline:", err)
		os.Exit(1)
	}
	report("GET /jwks (baseline)", baseline, nil)
	result, err := phase(hc, token, *workers, *duration, *maxRequests)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fedhub-load: token:", err)
		os.Exit(1)
	}
	report("POST /token "+*grant, result, &baseline)
}

type stats struct {
	requests  int
	errors    int
	elapsed   time.Duration
	latencies []time.Duration
}

// phase sends requests from several workers until the duration or the request
// budget runs out.
func phase(hc *http.Client, newReq func() (*http.Request, error), workers int, d time.Duration, budget int) (stats, error) {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	defer cancel()
	var mu sync.Mutex
	var all stats
	var firstErr error
	sent := make(chan struct{}, budget)
	for range budget {
		sent <- struct{}{}
	}
	close(sent)
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var local stats
			for range sent {
				if ctx.Err() != nil {
					break
				}
				req, err := newReq()
				if err != nil {
					mu.Lock()
					firstErr = err
					mu.Unlock()
					return
				}
				t0 := time.Now()
				resp, err := hc.Do(req.WithContext(ctx))
				if err != nil {
					if !errors.Is(err, context.DeadlineExceeded) {
						local.errors++
					}
					continue
				}
				_, _ = io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				local.requests++
				if resp.StatusCode != http.StatusOK {
					local.errors++
				}
				local.latencies = append(local.latencies, time.Since(t0))
			}
			mu.Lock()
			all.requests += local.requests
			all.errors += local.errors
			all.latencies = append(all.latencies, local.latencies...)
			mu.Unlock()
		})
	}
	wg.Wait()
	all.elapsed = time.Since(start)
	if firstErr != nil {
		return all, firstErr
	}
	if all.requests == 0 {
		return all, errors.New("no request succeeded: is fedhub running at that URL?")
	}
	slices.Sort(all.latencies)
	return all, nil
}

func (s stats) rate() float64 { return float64(s.requests) / s.elapsed.Seconds() }

func (s stats) pct(p float64) time.Duration {
	return s.latencies[min(len(s.latencies)-1, int(p*float64(len(s.latencies))))]
}

func report(name string, s stats, baseline *stats) {
	fmt.Printf("%-34s %8d req  %6d errors  %9.0f req/s  p50 %-9v p90 %-9v p99 %v\n",
		name, s.requests, s.errors, s.rate(), s.pct(0.50).Round(time.Microsecond),
		s.pct(0.90).Round(time.Microsecond), s.pct(0.99).Round(time.Microsecond))
	if baseline != nil {
		fmt.Printf("%-34s %.2fx the baseline's throughput\n", "", s.rate()/baseline.rate())
	}
}
