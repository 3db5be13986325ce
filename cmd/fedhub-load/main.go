package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"strings"
	"time"

	"github.com/fedhub/fedhub/internal/loadgen"
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
	body := form.Encode()
	hc := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: *workers}, Timeout: 10 * time.Second}
	token := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, *base+"/token", strings.NewReader(body))
		if err != nil {
			return err
		}
		req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
		req.SetBasicAuth(*client, *secret)
		return send(hc, req)
	}
	jwks := func(ctx context.Context) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, *base+"/jwks", nil)
		if err != nil {
			return err
		}
		return send(hc, req)
	}

	ctx := context.Background()
	baseline, err := loadgen.Run(ctx, *workers, *duration, *maxRequests, jwks)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fedhub-load: baseline:", err)
		os.Exit(1)
	}
	baseline.Report(os.Stdout, "GET /jwks (baseline)")
	result, err := loadgen.Run(ctx, *workers, *duration, *maxRequests, token)
	if err != nil {
		fmt.Fprintln(os.Stderr, "fedhub-load: token:", err)
		os.Exit(1)
	}
	result.Report(os.Stdout, "POST /token "+*grant)
	fmt.Printf("%-34s %.2fx the baseline's throughput\n", "", result.Rate()/baseline.Rate())
}

// send sends a request and reads the whole answer; anything but 200 is an error.
func send(hc *http.Client, req *http.Request) error {
	resp, err := hc.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if _, err := io.Copy(io.Discard, resp.Body); err != nil {
		return err
	}
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("%s %s: %s", req.Method, req.URL.Path, resp.Status)
	}
	return nil
}
