package e2e

import (
	"bufio"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"net/http"
	"os/exec"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/e2e/peers"
)

// dsPassword is the password of the first imported OpenLDAP user, who signs in.
const dsPassword = "Sync-Passw0rd!"

// dsLoad adds entries over LDAPS as the directory's administrator, on a few
// connections at once (one Add each: far faster than a tool per entry).
func dsLoad(t *testing.T, url string, caPEM []byte, adminDN, adminPassword string, entries []*ldap.AddRequest) {
	t.Helper()
	const conns = 4
	var wg sync.WaitGroup
	errs := make(chan error, conns)
	for c := range conns {
		wg.Go(func() {
			conn := dsDial(t, url, caPEM, adminDN, adminPassword)
			defer conn.Close()
			for i := c; i < len(entries); i += conns {
				if err := conn.Add(entries[i]); err != nil {
					errs <- fmt.Errorf("add %s: %w", entries[i].DN, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
}

func dsDial(t *testing.T, url string, caPEM []byte, dn, password string) *ldap.Conn {
	t.Helper()
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	conn, err := ldap.DialURL(url, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
	if err != nil {
		t.Fatal(err)
	}
	if err := conn.Bind(dn, password); err != nil {
		t.Fatal(err)
	}
	return conn
}

// dsCount runs a counting query on the server's database.
func dsCount(t *testing.T, s *Server, query string, args ...any) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+biServerDB(s)+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	if err := db.QueryRow(query, args...).Scan(&n); err != nil {
		t.Fatalf("%s: %v", query, err)
	}
	return n
}

var dsDone = regexp.MustCompile(`: (full|incremental) sync done: (.*)\n`)

// dsSync runs `fedhub connectors sync ID` and returns its final line's kind and counts.
func dsSync(t *testing.T, s *Server, id string) (kind, counts string) {
	t.Helper()
	start := time.Now()
	out, err := s.CLI(t, "", "connectors", "sync", id)
	m := dsDone.FindStringSubmatch(out)
	if err != nil || m == nil {
		t.Fatalf("fedhub connectors sync %s: %v\n%s", id, err, out)
	}
	t.Logf("sync %s: %s, %s in %v", id, m[1], m[2], time.Since(start).Round(time.Millisecond))
	return m[1], m[2]
}

func dsWant(t *testing.T, what, kind, counts, wantKind, wantCounts string) {
	t.Helper()
	if kind != wantKind || counts != wantCounts {
		t.Errorf("%s: %s sync with %s; want %s with %s", what, kind, counts, wantKind, wantCounts)
	}
}

// dsDuplicates counts the upstream subjects linked more than once, and the
// users linked through connector more than once (never: both are unique).
func dsDuplicates(t *testing.T, s *Server, connector string) int {
	return dsCount(t, s, `SELECT COUNT(*) FROM (SELECT user_id FROM links WHERE connector = ? GROUP BY user_id HAVING COUNT(*) > 1)`, connector) +
		dsCount(t, s, `SELECT COUNT(*) FROM (SELECT subject FROM links WHERE connector = ? GROUP BY subject HAVING COUNT(*) > 1)`, connector)
}

// dsLoadOpenLDAP adds n users under ou=sync (the first, sync00000, with
// dsPassword; the first 100 in the group sync-staff) and returns that base.
func dsLoadOpenLDAP(t *testing.T, dir *peers.LDAPServer, n int) string {
	t.Helper()
	base := "ou=sync," + dir.BaseDN
	var entries []*ldap.AddRequest
	var staff []string
	for i := range n {
		dn := fmt.Sprintf("uid=sync%05d,%s", i, base)
		a := ldap.NewAddRequest(dn, nil)
		a.Attribute("objectClass", []string{"inetOrgPerson"})
		a.Attribute("uid", []string{fmt.Sprintf("sync%05d", i)})
		a.Attribute("cn", []string{fmt.Sprintf("Sync User %d", i)})
		a.Attribute("sn", []string{"User"})
		a.Attribute("mail", []string{fmt.Sprintf("sync%05d@example.test", i)})
		if i == 0 {
			a.Attribute("userPassword", []string{dsPassword})
		}
		if i < 100 {
			staff = append(staff, dn)
		}
		entries = append(entries, a)
	}
	group := ldap.NewAddRequest("cn=sync-staff,"+base, nil)
	group.Attribute("objectClass", []string{"groupOfNames"})
	group.Attribute("cn", []string{"sync-staff"})
	group.Attribute("member", staff)
	start := time.Now()
	for _, batch := range [][]*ldap.AddRequest{{ldapOU(base, "sync")}, entries, {group}} {
		dsLoad(t, dir.LDAPSURL, dir.CAPEM, dir.AdminDN, dir.AdminPassword, batch)
	}
	t.Logf("%d entries loaded in %v", n, time.Since(start).Round(time.Millisecond))
	return base
}

// dsStartSync starts `fedhub connectors sync ID` and returns it with a
// function that waits until it has seen that many entries.
func dsStartSync(t *testing.T, s *Server, id string) (cli *exec.Cmd, waitFor func(seen int)) {
	t.Helper()
	cli = exec.Command(binary, "connectors", "sync", id, "-c", s.Config)
	cli.Env = s.env
	var stderr syncBuffer
	cli.Stderr = &stderr
	stdout, err := cli.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cli.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cli.Process.Kill(); _ = cli.Wait() })
	lines := bufio.NewScanner(stdout)
	return cli, func(seen int) {
		t.Helper()
		for lines.Scan() {
			if strings.Contains(lines.Text(), fmt.Sprintf("seen %d,", seen)) {
				return
			}
		}
		t.Fatalf("the sync ended before it saw %d entries:\n%s", seen, stderr.String())
	}
}

// dsKill ends a sync with SIGKILL, as a crash would.
func dsKill(t *testing.T, cli *exec.Cmd) {
	t.Helper()
	if err := cli.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cli.Wait()
}

// TestDirectorySyncOpenLDAP: 10,000 entries imported through paging (a run
// killed with kill -9 half way, then run again: no duplicate, all there), a
// second run that changes nothing, 100 deleted and 100 changed entries picked
// up; the admin page shows a run in progress in another process and runs one
// with "Sync now".
func TestDirectorySyncOpenLDAP(t *testing.T) {
	dir := peers.OpenLDAP(t)
	const n = 10000
	base := dsLoadOpenLDAP(t, dir, n)

	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword, "AA_AUTOMATION_SECRET="+aaAutomationKey), WithConfig(strings.Replace(defaultConfig,
		"clients:\n", "clients:\n"+aaClients[:strings.Index(aaClients, "  - id: admin-app")], 1)+`connectors:
  - id: corp-sync
    type: ldap
    name: Corporate LDAP
    sync: {mode: force, import: on}
    mappers:
      - {type: group_to_role, group: sync-staff, role: staff}
    ldap:
      urls: [`+dir.LDAPSURL+`]
      ca_file: `+dir.CAFile+`
      bind_dn: `+dir.ReaderDN+`
      bind_password: ${LDAP_BIND}
      user_base: `+base+`
`))
	ctx := peers.Chromium(t)
	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's admin sign-in answered %d:\n%s", st, auBody(ctx))
	}

	// The first run, watched on the admin page from another process, then killed.
	cli, waitFor := dsStartSync(t, s, "corp-sync")
	waitFor(1000)
	auNav(t, ctx, s.URL+"/admin/connectors")
	if !auHas(t, ctx, "#connector-corp-sync #sync-running") || !auHas(t, ctx, "#connector-corp-sync progress") {
		t.Errorf("the admin page does not show the run in progress:\n%s", auBody(ctx))
	}
	auShot(t, ctx, "admin-connectors-sync", true)
	waitFor(3000)
	dsKill(t, cli)
	before := dsCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'corp-sync'")
	if before < 3000 || before >= n {
		t.Fatalf("%d users imported when the run was killed, want a part of them", before)
	}

	kind, counts := dsSync(t, s, "corp-sync")
	dsWant(t, "the run after kill -9", kind, counts, "full", fmt.Sprintf("seen %d, created %d, updated 0, disabled 0, enabled 0, failed 0", n, n-before))
	if got := dsCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'corp-sync'"); got != n || dsDuplicates(t, s, "corp-sync") != 0 {
		t.Errorf("%d users linked (duplicates: %d), want %d and none", got, dsDuplicates(t, s, "corp-sync"), n)
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM user_roles WHERE role = 'staff' AND source = 'corp-sync'"); got != 100 {
		t.Errorf("%d users have the mapped role, want 100", got)
	}

	// The imported user signs in as the user the sync made: same subject.
	claims := ldapClaims(t, s, "corp-sync", "sync00000", dsPassword)
	synced := dsCount(t, s, "SELECT COUNT(*) FROM links l JOIN users u ON u.id = l.user_id WHERE l.connector = 'corp-sync' AND u.username = 'sync00000' AND u.id = ?", claims["sub"])
	if synced != 1 || dsCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'corp-sync'") != n {
		t.Errorf("the login of sync00000 (sub %v) is not the synced user", claims["sub"])
	}

	// "Sync now" on the admin page: nothing changed since.
	auNav(t, ctx, s.URL+"/admin/connectors")
	auClick(t, ctx, "#connector-corp-sync button")
	want := fmt.Sprintf("seen %d, created 0, updated 0, disabled 0, enabled 0, failed 0", n)
	deadline := time.Now().Add(2 * time.Minute)
	for {
		text, _ := chromedp.Run(ctx, chromedp.Evaluate[string](`(document.querySelector("#connector-corp-sync #sync-counts") || {}).innerText || ""`))
		if !auHas(t, ctx, "#connector-corp-sync #sync-running") && strings.TrimSpace(text) == want {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the admin page never showed the finished run %q:\n%s", want, auBody(ctx))
		}
		time.Sleep(500 * time.Millisecond)
		auNav(t, ctx, s.URL+"/admin/connectors")
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM events e JOIN users u ON u.id = e.actor WHERE e.type = 'directory.synced' AND u.username = 'alice'"); got != 1 {
		t.Errorf("%d runs audited as alice's, want 1", got)
	}

	// The admin API starts one too, and shows its progress.
	token := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	aaWant(t, aaCall(t, s, "post", "/connectors/local/sync", token, ""), http.StatusNotFound, nil, "sync of a connector that does not import")
	var started struct {
		Connector string `json:"connector"`
		Running   bool   `json:"running"`
	}
	aaWant(t, aaCall(t, s, "post", "/connectors/corp-sync/sync", token, ""), http.StatusAccepted, &started, "sync")
	if started.Connector != "corp-sync" || !started.Running {
		t.Errorf("the API's sync answered %+v, want corp-sync running", started)
	}
	for deadline := time.Now().Add(time.Minute); ; time.Sleep(300 * time.Millisecond) {
		var list struct {
			Connectors []struct {
				ID   string `json:"id"`
				Sync *struct {
					Running bool `json:"running"`
					Seen    int  `json:"seen"`
					Updated int  `json:"updated"`
				} `json:"sync"`
			} `json:"connectors"`
		}
		aaWant(t, aaCall(t, s, "get", "/connectors", token, ""), http.StatusOK, &list, "connectors")
		c := list.Connectors[len(list.Connectors)-1]
		if c.ID == "corp-sync" && c.Sync != nil && !c.Sync.Running && c.Sync.Seen == n && c.Sync.Updated == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the API never showed the run finished: %+v", c)
		}
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'directory.synced' AND actor = 'client:automation' AND outcome = 'success'"); got != 1 {
		t.Errorf("%d runs audited as the automation client's, want 1", got)
	}

	// 100 entries deleted, 100 changed.
	conn := dsDial(t, dir.LDAPSURL, dir.CAPEM, dir.AdminDN, dir.AdminPassword)
	defer conn.Close()
	dsDeleteAndRename(t, conn, n, "cn", func(i int) string { return fmt.Sprintf("uid=sync%05d,%s", i, base) })
	kind, counts = dsSync(t, s, "corp-sync")
	dsWant(t, "after 100 deletions and 100 changes", kind, counts, "full", fmt.Sprintf("seen %d, created 0, updated 100, disabled 100, enabled 0, failed 0", n-100))
	if got := dsCount(t, s, "SELECT COUNT(*) FROM users WHERE disabled AND disabled_by = 'sync:corp-sync'"); got != 100 {
		t.Errorf("%d users disabled by the sync, want 100", got)
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM users WHERE name LIKE 'Renamed %'"); got != 100 {
		t.Errorf("%d users renamed, want 100", got)
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'user.disabled' AND actor = 'sync:corp-sync'"); got != 100 {
		t.Errorf("%d disables audited, want 100", got)
	}
}

// ldapOU is an organizational unit to add.
func ldapOU(dn, name string) *ldap.AddRequest {
	a := ldap.NewAddRequest(dn, nil)
	a.Attribute("objectClass", []string{"organizationalUnit"})
	a.Attribute("ou", []string{name})
	return a
}

// TestDirectorySyncAD: 2,000 Samba AD users imported through paging, then
// incremental runs by uSNChanged: one that changes nothing, one that picks up
// 100 deleted, 100 changed and 10 disabled accounts, and one that re-enables
// the 10. The users live in an OU of their own: the shared Samba server's
// others stay as they are.
func TestDirectorySyncAD(t *testing.T) {
	ad := peers.SambaAD(t)
	const n = 2000
	sfx := fmt.Sprint(time.Now().UnixNano() % 100000) // sAMAccountName: unique in the domain, at most 20 characters
	ou := "OU=fedhub-sync-" + sfx + "," + ad.BaseDN
	var entries []*ldap.AddRequest
	var staff []string
	for i := range n {
		dn := fmt.Sprintf("CN=Sync User %d,%s", i, ou)
		a := ldap.NewAddRequest(dn, nil)
		a.Attribute("objectClass", []string{"user"})
		a.Attribute("sAMAccountName", []string{fmt.Sprintf("ds%s-%04d", sfx, i)})
		a.Attribute("displayName", []string{fmt.Sprintf("Sync User %d", i)})
		a.Attribute("mail", []string{fmt.Sprintf("dsync%04d@example.test", i)})
		// NORMAL_ACCOUNT | PASSWD_NOTREQD: enabled, and no password to set per user.
		a.Attribute("userAccountControl", []string{"544"})
		if i < 50 {
			staff = append(staff, dn)
		}
		entries = append(entries, a)
	}
	loadStart := time.Now()
	group := ldap.NewAddRequest("CN=SyncStaff,"+ou, nil)
	group.Attribute("objectClass", []string{"group"})
	group.Attribute("member", staff)
	for _, batch := range [][]*ldap.AddRequest{{ldapOU(ou, "fedhub-sync-"+sfx)}, entries, {group}} {
		dsLoad(t, ad.LDAPSURL, ad.CAPEM, ad.AdminDN, ad.AdminPassword, batch)
	}
	t.Logf("%d AD users loaded in %v", n, time.Since(loadStart).Round(time.Millisecond))
	t.Cleanup(func() {
		start := time.Now()
		dsDeleteTree(t, ad, ou)
		t.Logf("the test's OU deleted in %v", time.Since(start).Round(time.Millisecond))
	})

	s := Start(t, WithEnv("AD_BIND="+ad.Users["service"].Password), withoutLocalUsers(`
  - id: ad-sync
    type: ldap
    name: Corporate AD
    sync: {import: on, period: 6h}
    mappers:
      - {type: group_to_role, group: SyncStaff, role: staff}
    ldap:
      urls: [`+ad.LDAPSURL+`]
      ca_file: `+ad.CAFile+`
      bind_dn: `+ad.Users["service"].DN+`
      bind_password: ${AD_BIND}
      active_directory: true
      user_base: `+ou+`
`))
	// serve runs the first sync at start (its period has passed: it never ran);
	// a run of the CLI meanwhile waits for it to end.
	importStart := time.Now()
	for deadline := time.Now().Add(3 * time.Minute); ; {
		out, err := s.CLI(t, "", "connectors", "sync", "ad-sync")
		if err == nil && dsDone.MatchString(out) {
			break
		}
		if !strings.Contains(out, "running") || time.Now().After(deadline) {
			t.Fatalf("connectors sync: %v\n%s", err, out)
		}
		time.Sleep(time.Second)
	}
	t.Logf("%d AD users imported in %v", n, time.Since(importStart).Round(time.Millisecond))
	if got := dsCount(t, s, "SELECT COUNT(*) FROM links WHERE connector = 'ad-sync'"); got != n || dsDuplicates(t, s, "ad-sync") != 0 {
		t.Fatalf("%d users imported (duplicates %d), want %d", got, dsDuplicates(t, s, "ad-sync"), n)
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'directory.synced' AND detail LIKE 'full: seen 2000, created 2000,%'"); got != 1 {
		t.Errorf("%d full runs that imported the %d users, want 1", got, n)
	}
	if got := dsCount(t, s, "SELECT COUNT(*) FROM events WHERE type = 'directory.synced' AND actor = 'schedule'"); got != 1 {
		t.Errorf("%d scheduled runs, want 1 (at start)", got)
	}
	kind, counts := dsSync(t, s, "ad-sync")
	dsWant(t, "the run after the import", kind, counts, "incremental", "seen 0, created 0, updated 0, disabled 0, enabled 0, failed 0")
	if got := dsCount(t, s, "SELECT COUNT(*) FROM user_roles WHERE role = 'staff' AND source = 'ad-sync'"); got != 50 {
		t.Errorf("%d users have the mapped role, want 50", got)
	}

	conn := dsDial(t, ad.LDAPSURL, ad.CAPEM, ad.AdminDN, ad.AdminPassword)
	defer conn.Close()
	dsDeleteAndRename(t, conn, n, "displayName", func(i int) string { return fmt.Sprintf("CN=Sync User %d,%s", i, ou) })
	setUAC := func(uac string) {
		for i := range 10 {
			m := ldap.NewModifyRequest(fmt.Sprintf("CN=Sync User %d,%s", 500+i, ou), nil)
			m.Replace("userAccountControl", []string{uac})
			if err := conn.Modify(m); err != nil {
				t.Fatal(err)
			}
		}
	}
	setUAC("546") // ACCOUNTDISABLE
	kind, counts = dsSync(t, s, "ad-sync")
	dsWant(t, "after the changes", kind, counts, "incremental", "seen 110, created 0, updated 100, disabled 110, enabled 0, failed 0")
	setUAC("544")
	kind, counts = dsSync(t, s, "ad-sync")
	dsWant(t, "after re-enabling 10", kind, counts, "incremental", "seen 10, created 0, updated 0, disabled 0, enabled 10, failed 0")
	if got := dsCount(t, s, "SELECT COUNT(*) FROM users WHERE disabled"); got != 100 {
		t.Errorf("%d users disabled, want the 100 deleted", got)
	}
}

// dsDeleteAndRename deletes the last 100 of n entries and renames (attr) the
// 100 from the thousandth on; dn names entry i.
func dsDeleteAndRename(t *testing.T, conn *ldap.Conn, n int, attr string, dn func(i int) string) {
	t.Helper()
	for i := range 100 {
		if err := conn.Del(ldap.NewDelRequest(dn(n-1-i), nil)); err != nil {
			t.Fatal(err)
		}
		m := ldap.NewModifyRequest(dn(1000+i), nil)
		m.Replace(attr, []string{fmt.Sprintf("Renamed %d", i)})
		if err := conn.Modify(m); err != nil {
			t.Fatal(err)
		}
	}
}

// dsDeleteTree removes the test's OU and everything in it from the shared server.
func dsDeleteTree(t *testing.T, ad *peers.ADServer, ou string) {
	conn := dsDial(t, ad.LDAPSURL, ad.CAPEM, ad.AdminDN, ad.AdminPassword)
	defer conn.Close()
	// The tree delete control (1.2.840.113556.1.4.805).
	del := ldap.NewDelRequest(ou, []ldap.Control{ldap.NewControlString("1.2.840.113556.1.4.805", true, "")})
	if err := conn.Del(del); err != nil {
		t.Errorf("delete %s: %v", ou, err)
	}
}

// TestDirectorySyncPostgres: on PostgreSQL a run holds the connector with an
// advisory lock: a second run (another process: another node) is refused
// while it goes on, and once it is killed with kill -9 the lock is gone with
// its connection — the next run takes over at once and completes the import
// without duplicates.
func TestDirectorySyncPostgres(t *testing.T) {
	dir := peers.OpenLDAP(t)
	const n = 5000
	base := dsLoadOpenLDAP(t, dir, n)
	dsn := peers.Postgres(t)
	s := Start(t, WithEnv("LDAP_BIND="+dir.ReaderPassword, "FEDHUB_DS_DSN="+dsn), WithConfig(strings.Replace(defaultConfig,
		"  driver: sqlite\n  dsn: %[3]s\n", "  driver: postgres\n  dsn: ${FEDHUB_DS_DSN}\n", 1)+`connectors:
  - id: corp-sync
    type: ldap
    sync: {import: on}
    ldap:
      urls: [`+dir.LDAPSURL+`]
      ca_file: `+dir.CAFile+`
      bind_dn: `+dir.ReaderDN+`
      bind_password: ${LDAP_BIND}
      user_base: `+base+`
`))
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	count := func(query string) int {
		t.Helper()
		var got int
		if err := db.QueryRow(query).Scan(&got); err != nil {
			t.Fatalf("%s: %v", query, err)
		}
		return got
	}

	cli, waitFor := dsStartSync(t, s, "corp-sync")
	waitFor(1000)
	if out, err := s.CLI(t, "", "connectors", "sync", "corp-sync"); err == nil || !strings.Contains(out, "is running") {
		t.Errorf("a second run while the first goes on: %v\n%s", err, out)
	}
	waitFor(2000)
	dsKill(t, cli)
	before := count("SELECT COUNT(*) FROM links WHERE connector = 'corp-sync'")
	if before < 2000 || before >= n {
		t.Fatalf("%d users imported when the run was killed, want a part of them", before)
	}
	kind, counts := dsSync(t, s, "corp-sync")
	dsWant(t, "the run after kill -9", kind, counts, "full", fmt.Sprintf("seen %d, created %d, updated 0, disabled 0, enabled 0, failed 0", n, n-before))
	if got, dups := count("SELECT COUNT(*) FROM links WHERE connector = 'corp-sync'"),
		count("SELECT COUNT(*) FROM (SELECT user_id FROM links WHERE connector = 'corp-sync' GROUP BY user_id HAVING COUNT(*) > 1) d"); got != n || dups != 0 {
		t.Errorf("%d users linked, %d twice; want %d and none", got, dups, n)
	}
}
