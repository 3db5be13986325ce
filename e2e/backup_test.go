package e2e

import (
	"net/http"
	"net/url"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// TestBackupRestore takes a backup while fedhub serves a steady load of
// logins, refuses to restore under the running server, and restores into a
// fedhub that works: the users, the signing keys (a token from before
// verifies) and nothing written after the backup.
func TestBackupRestore(t *testing.T) {
	s := Start(t)
	ts, _ := ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams())
	kid := ocJWKS(t, s).Keys[0].KeyID

	var ok, failed atomic.Int64
	stop := make(chan struct{})
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			form := url.Values{"grant_type": {"password"}, "username": {"bob"}, "password": {bobPass}}
			for {
				select {
				case <-stop:
					return
				default:
				}
				req, _ := http.NewRequest(http.MethodPost, s.URL+"/token", strings.NewReader(form.Encode()))
				req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
				req.SetBasicAuth(passwordID, pwSecret)
				resp, err := http.DefaultClient.Do(req)
				if err == nil && resp.StatusCode == http.StatusOK {
					ok.Add(1)
				} else {
					failed.Add(1)
				}
				if err == nil {
					resp.Body.Close()
				}
			}
		})
	}
	time.Sleep(300 * time.Millisecond)
	backup := filepath.Join(t.TempDir(), "fedhub-backup.db")
	out, err := s.CLI(t, "", "backup", "--to", backup)
	time.Sleep(300 * time.Millisecond)
	close(stop)
	wg.Wait()
	if err != nil {
		t.Fatalf("backup while serving: %v\n%s", err, out)
	}
	if ok.Load() == 0 || failed.Load() != 0 {
		t.Errorf("the load during the backup: %d logins, %d failed; want some and none", ok.Load(), failed.Load())
	}

	if out, err := s.CLI(t, "", "restore", "--from", backup); err == nil || !strings.Contains(out, "stop fedhub") {
		t.Errorf("restore under the running server = %v, want a refusal:\n%s", err, out)
	}
	if out, err := s.CLI(t, "", "users", "add", "--username", "after-backup"); err != nil {
		t.Fatalf("users add: %v\n%s", err, out)
	}

	s.Stop(t)
	if out, err := s.CLI(t, "", "restore", "--from", backup); err != nil {
		t.Fatalf("restore: %v\n%s", err, out)
	}
	s.start(t)
	if got := ocJWKS(t, s).Keys[0].KeyID; got != kid {
		t.Errorf("signing key after the restore = %s, want %s", got, kid)
	}
	if status, _, _ := ocUserinfo(t, s, "get", ts.Access); status != http.StatusOK {
		t.Errorf("userinfo with a token from before the backup = %d, want 200", status)
	}
	out, err = s.CLI(t, "", "users", "list")
	if err != nil || !strings.Contains(out, "alice") || !strings.Contains(out, "bob") || strings.Contains(out, "after-backup") {
		t.Errorf("users after the restore (%v):\n%s\nwant alice and bob, not after-backup", err, out)
	}
	ocCodeFlow(t, s, NewBrowser(t), ocRP, AuthParams())
}
