package e2e

import (
	"database/sql"
	"fmt"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/fedhub/fedhub/e2e/peers"
)

const rlSecret = "rl-new-secret-0123456789abcdef"

// rlNewClient is a client the file gains while fedhub runs.
const rlNewClient = `  - id: rl-new
    secret: ${RL_SECRET}
    grant_types: [client_credentials]
`

// rlWrite rewrites the server's configuration file as Start wrote it, with
// the clients section extended and more lines appended.
func rlWrite(t testing.TB, s *Server, clients, more string) {
	t.Helper()
	addr := strings.TrimPrefix(s.URL, "http://")
	cfg := fmt.Sprintf(defaultConfig, s.URL, addr, filepath.Join(filepath.Dir(s.Config), "fedhub.db"))
	cfg = strings.Replace(cfg, "clients:\n", "clients:\n"+clients, 1) + more
	if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}
}

// rlSignal sends sig to the server and waits until its log says want after what it held before.
func rlSignal(t testing.TB, s *Server, sig syscall.Signal, want string) string {
	t.Helper()
	before := len(s.Output())
	if err := s.cmd.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	for deadline := time.Now().Add(10 * time.Second); time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if out := s.Output()[before:]; strings.Contains(out, want) {
			return out
		}
	}
	t.Fatalf("no %q in the log after %v:\n%s", want, sig, s.Output()[before:])
	return ""
}

// rlClientWorks gets a client_credentials token as rl-new, or says why not.
func rlClientWorks(t testing.TB, s *Server) bool {
	t.Helper()
	return ocPost(t, s, "/token", &ocClient{id: "rl-new", secret: rlSecret}, url.Values{"grant_type": {"client_credentials"}}).Status == 200
}

// TestReload: SIGHUP applies a new client while a sign-in that began before
// goes on; a broken file is refused and the running configuration kept; a
// new log level applies; SIGTERM stops fedhub gracefully and says so.
func TestReload(t *testing.T) {
	s := Start(t, WithEnv("RL_SECRET="+rlSecret))
	if rlClientWorks(t, s) {
		t.Fatal("rl-new works before it is configured")
	}
	b := NewBrowser(t)
	params := AuthParams()
	form := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode()) // a sign-in in flight

	rlWrite(t, s, rlNewClient, "")
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded")
	if !rlClientWorks(t, s) {
		t.Errorf("rl-new refused after the reload")
	}
	resp, _ := b.Submit(form, "alice", alicePass)
	ocWantTokens(t, ocRedeem(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), redirectURI, ""))

	// Broken: rl-new gone and an invalid key. Neither applies.
	rlWrite(t, s, "", "signing:\n  algorithm: HS256\n")
	out := rlSignal(t, s, syscall.SIGHUP, "configuration reload refused")
	if !strings.Contains(out, "signing.algorithm") {
		t.Errorf("the refusal does not name the invalid key:\n%s", out)
	}
	if !rlClientWorks(t, s) {
		t.Errorf("rl-new refused after a broken file: the running configuration was not kept")
	}

	// A new log level, and a key that needs a restart.
	rlWrite(t, s, rlNewClient, "log:\n  level: warn\nbrute_force:\n  max_wait: 20m\n")
	out = rlSignal(t, s, syscall.SIGHUP, "apply at the next restart")
	if !strings.Contains(out, "brute_force") {
		t.Errorf("the restart warning does not name brute_force:\n%s", out)
	}
	before := len(s.Output())
	if !rlClientWorks(t, s) {
		t.Errorf("rl-new refused after the level change")
	}
	if strings.Contains(s.Output()[before:], "msg=request") {
		t.Errorf("an access line (info) at level warn:\n%s", s.Output()[before:])
	}

	rlWrite(t, s, rlNewClient, "")
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded") // back to info, where the shutdown is logged
	rlSignal(t, s, syscall.SIGTERM, "fedhub stopped")
	if err := s.cmd.Wait(); err != nil {
		t.Errorf("fedhub exited with %v after SIGTERM, want 0", err)
	}
	if !strings.Contains(s.Output(), "shutting down") {
		t.Errorf("the log does not say fedhub is shutting down:\n%s", s.Output())
	}
}

// TestReloadConnectors: SIGHUP adds a directory connector that signs people in
// at once, while a local sign-in that began before the reload completes; a
// changed label shows; a removed connector is gone from the login page.
func TestReloadConnectors(t *testing.T) {
	dir := peers.OpenLDAP(t)
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword))
	connector := func(label string) string {
		return `connectors:
  - id: corp-ldap
    type: ldap
    label: ` + label + `
    ldap:
      urls: [` + dir.LDAPSURL + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
      group_base: ` + dir.GroupBase + `
`
	}
	b := NewBrowser(t)
	params := AuthParams()
	form := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode()) // a sign-in in flight
	if strings.Contains(form.Page, "connector-corp-ldap") {
		t.Fatal("corp-ldap is on the login page before it is configured")
	}

	rlWrite(t, s, "", connector("Login with Corporate LDAP"))
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded")
	resp, _ := b.Submit(form, "alice", alicePass)
	ocWantTokens(t, ocRedeem(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), redirectURI, ""))
	claims := ldapClaims(t, s, "corp-ldap", "jdoe1", dir.Users["jdoe1"].Password) // no local jdoe1: no first-login question
	if claims["idp"] != "corp-ldap" {
		t.Errorf("claims after a login through the reloaded connector = %v", claims)
	}

	rlWrite(t, s, "", connector("Sign in with the Directory"))
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded")
	if page := NewBrowser(t).OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()).Page; !strings.Contains(page, "Sign in with the Directory") {
		t.Errorf("the changed label is not on the login page:\n%s", page)
	}

	rlWrite(t, s, "", "")
	rlSignal(t, s, syscall.SIGHUP, "configuration reloaded")
	if page := NewBrowser(t).OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode()).Page; strings.Contains(page, "connector-corp-ldap") {
		t.Errorf("a removed connector is still on the login page:\n%s", page)
	}
}

// TestReloadSyncSchedule: SIGHUP applies a connector's directory sync
// schedule — added, it runs at once; changed to a period that has passed
// since its last run, it runs at once; unchanged or removed, it does not.
func TestReloadSyncSchedule(t *testing.T) {
	dir := peers.OpenLDAP(t)
	connector := func(sync string) string {
		return `connectors:
  - id: corp-ldap
    type: ldap
` + sync + `    ldap:
      urls: [` + dir.LDAPSURL + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
`
	}
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword), WithConfig(defaultConfig+connector("")))
	runs := func() int {
		return dsCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'directory.synced' AND actor = 'schedule'")
	}
	// backdate makes the last run start ten minutes ago.
	backdate := func() {
		db, err := sql.Open("sqlite3", "file:"+biServerDB(s)+"?_busy_timeout=10000")
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		if _, err := db.Exec("UPDATE dirsync_states SET started_at = ?", time.Now().Add(-10*time.Minute).UTC()); err != nil {
			t.Fatal(err)
		}
	}
	for _, step := range []struct {
		what     string
		sync     string
		backdate bool
		want     int
	}{
		{"added", "    sync: {import: on, period: 1h}\n", false, 1},
		{"unchanged, its period not passed", "    sync: {import: on, period: 1h}\n", true, 1},
		{"changed to a period that has passed", "    sync: {import: on, period: 5m}\n", false, 2},
		{"removed", "", true, 2},
	} {
		if step.backdate {
			backdate()
		}
		rlWrite(t, s, "", connector(step.sync))
		if out := rlSignal(t, s, syscall.SIGHUP, "configuration reloaded"); strings.Contains(out, "next restart") {
			t.Errorf("%s: the reload wants a restart:\n%s", step.what, out)
		}
		// Not the minute's tick: the reload wakes the schedule.
		for deadline := time.Now().Add(15 * time.Second); runs() < step.want && time.Now().Before(deadline); {
			time.Sleep(100 * time.Millisecond)
		}
		time.Sleep(2 * time.Second) // and no run more than wanted
		if got := runs(); got != step.want {
			t.Errorf("%s: %d scheduled runs, want %d", step.what, got, step.want)
		}
	}
}
