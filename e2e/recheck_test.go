package e2e

import (
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"database/sql"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/e2e/peers"
)

// Identities stay true after login (issue 8), against the real peers: an
// upstream that stops vouching for a person ends what they got through it at
// the next refresh or SSO reuse after the connector's recheck_interval, and
// says why in the audit log; an upstream that cannot answer spends nothing.

// rcPassword is the password of the directory entries these tests add.
const rcPassword = "rc-Passw0rd!-0123456789"

// rcSession is what a person holds after a sign-in: the tokens, and the
// browser with its SSO session (nil after the password grant).
type rcSession struct {
	b   *Browser
	c   ocClient
	tok ocTokens
	sub string
}

// rcBrowserLogin signs in through a password connector's form in a browser of
// its own (code flow, client rp) and returns the session.
func rcBrowserLogin(t testing.TB, s *Server, connector, username, password string) *rcSession {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams()
	resp, page := b.ldapLogin(s, params, connector, username, password)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("%s login as %s answered %d:\n%s", connector, username, resp.StatusCode, page)
	}
	ts, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocCallback(t, resp, redirectURI), params), params)
	if ts.Refresh == "" {
		t.Fatalf("%s got no refresh token", username)
	}
	return &rcSession{b: b, c: ocRP, tok: ts, sub: idt.Subject}
}

// rcPasswordLogin signs in by the password grant (client pw-app).
func rcPasswordLogin(t testing.TB, s *Server, username, password string) *rcSession {
	t.Helper()
	ts := ocWantTokens(t, aaPasswordGrant(t, s, username, password))
	if ts.Refresh == "" {
		t.Fatalf("%s got no refresh token", username)
	}
	sub, _ := ocJWTPayload(t, ts.Access)["sub"].(string)
	return &rcSession{c: ocPW, tok: ts, sub: sub}
}

// refresh uses the refresh token, keeping the rotated one when it works.
func (r *rcSession) refresh(t testing.TB, s *Server) ocAnswer {
	t.Helper()
	a := ocRefresh(t, s, r.c, r.tok.Refresh)
	if a.Status == http.StatusOK {
		r.tok = ocWantTokens(t, a)
	}
	return a
}

// wantRefresh expects the refresh to work.
func (r *rcSession) wantRefresh(t testing.TB, s *Server) {
	t.Helper()
	if a := r.refresh(t, s); a.Status != http.StatusOK {
		t.Fatalf("refresh of %s answered %d: %s", r.sub, a.Status, a.Raw)
	}
}

// sso reports whether the browser's SSO session still signs the person in:
// /authorize sends a code to the RP at once, or the login page.
func (r *rcSession) sso(t testing.TB, s *Server) bool {
	t.Helper()
	params := AuthParams()
	resp, _ := r.b.Get(s.URL + "/authorize?" + params.Encode())
	if loc := resp.Header.Get("Location"); resp.StatusCode == http.StatusSeeOther && strings.HasPrefix(loc, "/login?") {
		return false
	}
	ocWantCode(t, s, ocCallback(t, resp, redirectURI), params)
	return true
}

// wantEnded expects the session to be over everywhere: the refresh is
// invalid_grant, userinfo refuses the access token, the SSO session gives no
// code. ssoFirst asks the SSO session before the refresh, so that it is the
// one that meets the upstream's no.
func (r *rcSession) wantEnded(t testing.TB, s *Server, ssoFirst bool) {
	t.Helper()
	if ssoFirst && r.b != nil && r.sso(t, s) {
		t.Fatal("the SSO session still gives a code")
	}
	ocWantOAuthError(t, r.refresh(t, s), http.StatusBadRequest, "invalid_grant")
	ocWantUserinfoRefused(t, s, r.tok.Access)
	if !ssoFirst && r.b != nil && r.sso(t, s) {
		t.Fatal("the SSO session still gives a code")
	}
}

// wantAlive expects the session to be untouched: userinfo, refresh and SSO work.
func (r *rcSession) wantAlive(t testing.TB, s *Server) {
	t.Helper()
	if status, _, _ := ocUserinfo(t, s, "get", r.tok.Access); status != http.StatusOK {
		t.Fatalf("userinfo with %s's access token answered %d", r.sub, status)
	}
	r.wantRefresh(t, s)
	if r.b != nil && !r.sso(t, s) {
		t.Fatal("the SSO session no longer gives a code")
	}
}

// rcRefusals are the identity.upstream_refused events about a user.
func rcRefusals(t testing.TB, s *Server, adminToken, userID string) []audit.Event {
	t.Helper()
	return aaAudit(t, s, adminToken, url.Values{"type": {audit.UpstreamRefused}, "user": {userID}}).Events
}

// rcWantRefusal expects exactly one identity.upstream_refused event about the
// user, through the connector, that says why.
func rcWantRefusal(t testing.TB, s *Server, adminToken, userID, connector, why string) {
	t.Helper()
	evs := rcRefusals(t, s, adminToken, userID)
	if len(evs) != 1 || evs[0].Connector != connector || evs[0].Outcome != "failure" || !strings.Contains(evs[0].Detail, why) {
		t.Fatalf("identity.upstream_refused events of %s: %+v, want one through %s saying %q", userID, evs, connector, why)
	}
}

// rcSleepPast sleeps until d after since: a recheck_interval has passed.
func rcSleepPast(since time.Time, d time.Duration) {
	time.Sleep(time.Until(since.Add(d + 150*time.Millisecond)))
}

// rcAddEntry adds a person of the test's own to the directory (the fixture's
// entries belong to other tests) and returns its entryUUID.
func rcAddEntry(t testing.TB, admin *ldap.Conn, dn, uid, employeeType string) string {
	t.Helper()
	add := ldap.NewAddRequest(dn, nil)
	add.Attribute("objectClass", []string{"inetOrgPerson"})
	add.Attribute("uid", []string{uid})
	add.Attribute("cn", []string{uid})
	add.Attribute("sn", []string{uid})
	add.Attribute("mail", []string{uid + "@example.test"})
	add.Attribute("userPassword", []string{rcPassword})
	if employeeType != "" {
		add.Attribute("employeeType", []string{employeeType})
	}
	if err := admin.Add(add); err != nil {
		t.Fatalf("add %s: %v", dn, err)
	}
	return rcEntryUUID(t, admin, dn)
}

func rcEntryUUID(t testing.TB, admin *ldap.Conn, dn string) string {
	t.Helper()
	res, err := admin.Search(ldap.NewSearchRequest(dn, ldap.ScopeBaseObject, ldap.NeverDerefAliases, 0, 0, false,
		"(objectClass=*)", []string{"entryUUID"}, nil))
	if err != nil || len(res.Entries) != 1 {
		t.Fatalf("read %s: %v", dn, err)
	}
	return res.Entries[0].GetAttributeValue("entryUUID")
}

// rcLDAPConnector is an LDAP connector on the test directory; extra is more
// of its keys (recheck_interval…).
func rcLDAPConnector(dir *peers.LDAPServer, id, url, filter, extra string) string {
	return `
  - id: ` + id + `
    type: ldap
    name: ` + id + `
    ` + extra + `
    ldap:
      urls: [` + url + `]
      ca_file: ` + dir.CAFile + `
      bind_dn: ` + dir.ReaderDN + `
      bind_password: ${LDAP_BIND}
      user_base: ` + dir.UserBase + `
      user_filter: "` + filter + `"
      timeout: 2s
`
}

// rcRow is a person whose directory entry a test takes away from a connector
// with recheck_interval 1s, and puts back.
type rcRow struct {
	connector, username, password string
	ssoFirst                      bool   // the SSO session, not a refresh, meets the directory's no
	why                           string // what the audit event says
	change, restore               func()
}

// rcDirectoryRefuses signs the person in (browser and password grant), sees
// the refresh ask the directory and work, then takes the entry away: after
// the interval the refresh is refused, the SSO session gives no code, the
// audit log says why; put back, the person signs in again as the same user.
func rcDirectoryRefuses(t *testing.T, s *Server, adminToken string, r rcRow) {
	t.Helper()
	web := rcBrowserLogin(t, s, r.connector, r.username, r.password)
	grant := rcPasswordLogin(t, s, r.username, r.password)
	if grant.sub != web.sub {
		t.Fatalf("the password grant signed in %s, the browser %s", grant.sub, web.sub)
	}
	rcSleepPast(time.Now(), time.Second) // the directory is asked, and says yes
	web.wantRefresh(t, s)
	grant.wantRefresh(t, s)
	if !web.sso(t, s) {
		t.Fatal("the SSO session gives no code while the entry is fine")
	}
	if evs := rcRefusals(t, s, adminToken, web.sub); len(evs) != 0 {
		t.Fatalf("refusals while the entry is fine: %+v", evs)
	}

	r.change()
	rcSleepPast(time.Now(), time.Second)
	web.wantEnded(t, s, r.ssoFirst)
	grant.wantEnded(t, s, false) // ended with the identity, by the first no
	rcWantRefusal(t, s, adminToken, web.sub, r.connector, r.why)

	r.restore()
	again := rcBrowserLogin(t, s, r.connector, r.username, r.password)
	if again.sub != web.sub {
		t.Fatalf("back in the directory, %s signed in as %s, before as %s", r.username, again.sub, web.sub)
	}
	rcSleepPast(time.Now(), time.Second)
	again.wantAlive(t, s)
	if evs := rcRefusals(t, s, adminToken, web.sub); len(evs) != 1 {
		t.Fatalf("%d refusals after the entry came back, want the one before", len(evs))
	}
}

// TestRecheckOpenLDAP: a directory entry deleted, moved out of the
// connector's user_filter or out of its user_base ends the refresh tokens and
// SSO sessions that came through it at the next use after the recheck
// interval, with the reason in the audit log; put back, the person signs in
// again as the same user. (A ppolicy lock's re-check is the connector's
// TestPasswordPolicyOpenLDAP.)
func TestRecheckOpenLDAP(t *testing.T) {
	t.Parallel()
	dir := peers.OpenLDAP(t)
	proxy := rcStartProxy(t, strings.TrimPrefix(dir.LDAPSURL, "ldaps://"))
	s := Start(t, aaEnv(), WithEnv("LDAP_BIND="+dir.ReaderPassword), WithConfig(aaConfig("", "",
		rcLDAPConnector(dir, "rc-ldap", dir.LDAPSURL, "(&(objectClass=inetOrgPerson)(employeeType=active))", "recheck_interval: 1s")+
			// The same directory behind a proxy that the test cuts off.
			rcLDAPConnector(dir, "rc-closed", "ldaps://"+proxy.addr, "(&(objectClass=inetOrgPerson)(employeeType=closed))", "recheck_interval: 1s")+
			rcLDAPConnector(dir, "rc-open", "ldaps://"+proxy.addr, "(&(objectClass=inetOrgPerson)(employeeType=open))",
				"recheck_interval: 2s\n    upstream_down: fail_open"))))
	admin := dir.Admin(t)
	adminToken := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	former := "ou=former," + dir.BaseDN // outside user_base
	add := ldap.NewAddRequest(former, nil)
	add.Attribute("objectClass", []string{"organizationalUnit"})
	add.Attribute("ou", []string{"former"})
	if err := admin.Add(add); err != nil {
		t.Fatal(err)
	}

	const why = "the directory entry is gone or no longer matches user_filter"
	for _, c := range []struct {
		name     string
		ssoFirst bool
		// change takes the entry away from the connector; restore puts it back.
		change, restore func(t *testing.T, dn, uid, uuid string)
	}{
		{"entry deleted", false,
			func(t *testing.T, dn, _, _ string) {
				if err := admin.Del(ldap.NewDelRequest(dn, nil)); err != nil {
					t.Fatal(err)
				}
			},
			// As from a backup: the same entryUUID, which only the Relax
			// Rules control lets the administrator set.
			func(t *testing.T, dn, uid, uuid string) {
				add := ldap.NewAddRequest(dn, []ldap.Control{ldap.NewControlString("1.3.6.1.4.1.4203.666.5.12", true, "")})
				for k, v := range map[string]string{"objectClass": "inetOrgPerson", "uid": uid, "cn": uid, "sn": uid,
					"userPassword": rcPassword, "employeeType": "active", "entryUUID": uuid} {
					add.Attribute(k, []string{v})
				}
				if err := admin.Add(add); err != nil {
					t.Fatalf("restore %s: %v", dn, err)
				}
			}},
		{"moved out of user_filter", true,
			func(t *testing.T, dn, _, _ string) { rcSetEmployeeType(t, admin, dn, "left") },
			func(t *testing.T, dn, _, _ string) { rcSetEmployeeType(t, admin, dn, "active") }},
		{"moved out of user_base", false,
			func(t *testing.T, dn, uid, _ string) { rcMove(t, admin, dn, "uid="+uid, former) },
			func(t *testing.T, _, uid, _ string) {
				rcMove(t, admin, "uid="+uid+","+former, "uid="+uid, dir.UserBase)
			}},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			uid := "rc-" + strings.ReplaceAll(c.name, " ", "-")
			dn := "uid=" + uid + "," + dir.UserBase
			uuid := rcAddEntry(t, admin, dn, uid, "active")
			rcDirectoryRefuses(t, s, adminToken, rcRow{connector: "rc-ldap", username: uid, password: rcPassword,
				ssoFirst: c.ssoFirst, why: why,
				change:  func() { c.change(t, dn, uid, uuid) },
				restore: func() { c.restore(t, dn, uid, uuid) }})
		})
	}

	// An upstream that cannot answer: fail_closed issues nothing and spends
	// nothing; fail_open lets the last yes count for one more interval.
	t.Run("directory unreachable", func(t *testing.T) {
		t.Parallel()
		login := func(kind string) *rcSession { // through rc-closed or rc-open, whose filter selects kind
			uid := "rc-" + kind
			rcAddEntry(t, admin, "uid="+uid+","+dir.UserBase, uid, kind)
			return rcPasswordLogin(t, s, uid, rcPassword)
		}
		closed, open := login("closed"), login("open")
		signedIn := time.Now() // both connectors' last yes is before this
		proxy.down()

		rcSleepPast(signedIn, time.Second) // rc-closed's yes is stale, rc-open's still fresh
		ocWantOAuthError(t, closed.refresh(t, s), http.StatusServiceUnavailable, "temporarily_unavailable")
		rcSleepPast(signedIn, 2*time.Second) // rc-open's yes is stale, but within its grace
		open.wantRefresh(t, s)
		if !s.Logged("fail open") {
			t.Fatalf("the fail-open refresh did not ask the directory:\n%s", s.Output())
		}
		ocWantOAuthError(t, closed.refresh(t, s), http.StatusServiceUnavailable, "temporarily_unavailable")
		rcSleepPast(signedIn, 4*time.Second) // past the grace: fail_open fails too
		ocWantOAuthError(t, open.refresh(t, s), http.StatusServiceUnavailable, "temporarily_unavailable")

		proxy.up(t)
		closed.wantRefresh(t, s) // the refresh tokens the 503s did not spend
		open.wantRefresh(t, s)
		for _, r := range []*rcSession{closed, open} {
			if evs := rcRefusals(t, s, adminToken, r.sub); len(evs) != 0 {
				t.Fatalf("an unreachable directory was taken for a no: %+v", evs)
			}
		}
	})
}

func rcSetEmployeeType(t testing.TB, admin *ldap.Conn, dn, value string) {
	t.Helper()
	mr := ldap.NewModifyRequest(dn, nil)
	mr.Replace("employeeType", []string{value})
	if err := admin.Modify(mr); err != nil {
		t.Fatalf("modify %s: %v", dn, err)
	}
}

func rcMove(t testing.TB, admin *ldap.Conn, dn, rdn, superior string) {
	t.Helper()
	if err := admin.ModifyDN(ldap.NewModifyDNRequest(dn, rdn, true, superior)); err != nil {
		t.Fatalf("move %s under %s: %v", dn, superior, err)
	}
}

// rcProxy is a TCP proxy in front of a server, which a test cuts off (no
// connection, the open ones closed) and restores on the same address.
type rcProxy struct {
	addr, target string
	mu           sync.Mutex
	ln           net.Listener
	conns        map[net.Conn]bool
}

func rcStartProxy(t *testing.T, target string) *rcProxy {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	p := &rcProxy{addr: ln.Addr().String(), target: target, conns: map[net.Conn]bool{}}
	p.serve(ln)
	t.Cleanup(p.down)
	return p
}

func (p *rcProxy) serve(ln net.Listener) {
	p.mu.Lock()
	p.ln = ln
	p.mu.Unlock()
	go func() {
		for {
			in, err := ln.Accept()
			if err != nil {
				return
			}
			out, err := net.Dial("tcp", p.target)
			if err != nil {
				in.Close()
				continue
			}
			if !p.track(in, out) {
				continue
			}
			go func() { io.Copy(out, in); out.Close(); in.Close() }()
			go func() { io.Copy(in, out); in.Close(); out.Close() }()
		}
	}()
}

// track keeps the connections to close them on down; false when it is down already.
func (p *rcProxy) track(conns ...net.Conn) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln == nil {
		for _, c := range conns {
			c.Close()
		}
		return false
	}
	for _, c := range conns {
		p.conns[c] = true
	}
	return true
}

// down closes the listener and every connection through it.
func (p *rcProxy) down() {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.ln != nil {
		p.ln.Close()
		p.ln = nil
	}
	for c := range p.conns {
		c.Close()
		delete(p.conns, c)
	}
}

// up listens again on the same address.
func (p *rcProxy) up(t testing.TB) {
	t.Helper()
	ln, err := peers.Relisten(p.addr)
	if err != nil {
		t.Fatal(err)
	}
	p.serve(ln)
}

// TestRecheckActiveDirectory: an AD account disabled, expired or locked out
// (samba-tool and a wrong password, on the running DC) ends what came through
// it at the next use after the recheck interval; enabled, unexpired or
// unlocked again, the person signs in again.
func TestRecheckActiveDirectory(t *testing.T) {
	t.Parallel()
	ad := peers.SambaAD(t)
	conn := strings.Replace(corpAD(ad), "    ldap:\n", "    recheck_interval: 1s\n    ldap:\n", 1)
	s := Start(t, aaEnv(), WithEnv("AD_BIND="+ad.Users["service"].Password), WithConfig(aaConfig("", "", conn)))
	adminToken := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	tool := func(t *testing.T, args ...string) {
		t.Helper()
		if err := ad.Tool(args...); err != nil {
			t.Fatal(err)
		}
	}
	// toUser is samba-tool with the user's name appended.
	toUser := func(args ...string) func(t *testing.T, user string) {
		return func(t *testing.T, user string) { tool(t, slices.Concat(args, []string{user})...) }
	}
	lockOut := func(t *testing.T, user string) {
		// A lockout policy of the test's own, for this user alone: one wrong password locks.
		pso := "rc-lockout-" + strings.ToLower(rand.Text()[:6])
		tool(t, "domain", "passwordsettings", "pso", "create", pso, "2", "--account-lockout-threshold=1",
			"--account-lockout-duration=600", "--reset-account-lockout-after=600", "--min-pwd-age=0")
		t.Cleanup(func() { _ = ad.Tool("domain", "passwordsettings", "pso", "delete", pso) })
		tool(t, "domain", "passwordsettings", "pso", "apply", pso, user)
		pool := x509.NewCertPool()
		pool.AppendCertsFromPEM(ad.CAPEM)
		l, err := ldap.DialURL(ad.LDAPSURL, ldap.DialWithTLSConfig(&tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}))
		if err != nil {
			t.Fatal(err)
		}
		defer l.Close()
		if err := l.Bind(user+"@"+strings.ToLower(ad.Realm), "wrong-"+rand.Text()); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
			t.Fatalf("a wrong password for %s: %v, want invalid credentials", user, err)
		}
	}
	for _, c := range []struct {
		name, why       string
		change, restore func(t *testing.T, user string)
	}{
		{"disabled", "the directory account is disabled", toUser("user", "disable"), toUser("user", "enable")},
		{"expired", "the directory account is expired", toUser("user", "setexpiry", "--days=0"), toUser("user", "setexpiry", "--noexpiry")},
		{"locked", "the directory account is locked", lockOut, toUser("user", "unlock")},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			// Accounts of our own: the DC is shared by the test binary.
			name := "rc-" + c.name + "-" + strings.ToLower(rand.Text()[:6])
			password := "Aa1!" + rand.Text()[:20]
			tool(t, "user", "create", name, password)
			t.Cleanup(func() { _ = ad.Tool("user", "delete", name) })
			rcDirectoryRefuses(t, s, adminToken, rcRow{connector: "corp-ad", username: name, password: password, why: c.why,
				change:  func() { c.change(t, name) },
				restore: func() { c.restore(t, name) }})
		})
	}
}

// TestRecheckUpstreamOIDC: a fedhub whose upstream is another fedhub keeps
// the upstream's refresh token and refreshes it at each re-check, keeping the
// rotated one; once the upstream ends the person's grants (its administrator
// revokes their sessions, or disables them), the downstream refuses too.
func TestRecheckUpstreamOIDC(t *testing.T) {
	t.Parallel()
	addrB := freeAddr(t)
	upstreamCfg := strings.Replace(aaConfig("", "", ""), "clients:\n", `clients:
  - id: broker
    secret: ${BROKER_SECRET}
    redirect_uris: [http://`+addrB+`/broker/corp/callback]
    grant_types: [authorization_code, refresh_token]
`, 1)
	a := Start(t, aaEnv(), WithConfig(upstreamCfg), WithEnv("BROKER_SECRET="+upstreamSecret))
	b := Start(t, WithAddr(addrB), aaEnv(), WithEnv("CORP_SECRET="+upstreamSecret), WithConfig(aaConfig("", "", `
  - id: corp
    type: oidc
    name: Corp fedhub
    recheck_interval: 1s
    mappers:
      - {type: username_template, template: "corp-{{.Username}}"}
    oidc:
      issuer: `+a.URL+`
      client_id: broker
      client_secret: ${CORP_SECRET}
`)))
	upAdmin := aaClientCredentials(t, a, aaAutomation, aaAdminScope).Access
	downAdmin := aaClientCredentials(t, b, aaAutomation, aaAdminScope).Access
	for _, c := range []struct {
		name, username, password string
		op                       string // what the upstream's administrator does (admin API)
		ssoFirst                 bool
	}{
		{"upstream revokes the sessions", "alice", alicePass, "revoke-sessions", false},
		{"upstream disables the user", "bob", bobPass, "disable", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			br := NewBrowser(t)
			params := AuthParams()
			got := br.finishAt(b, br.upstreamLogin(b, params, "corp", br.fedhubSignInAs(a, c.username, c.password)))
			ts, idt := ocRedeemAndVerify(t, b, ocRP, ocWantCode(t, b, got, params), params)
			down := &rcSession{b: br, c: ocRP, tok: ts, sub: idt.Subject}
			upID := aaUserID(t, a, upAdmin, c.username)

			// Each refresh after the interval refreshes at the upstream, which
			// rotates its refresh token: were the old one kept, the second
			// would be a replay, and the upstream would revoke the family.
			for range 2 {
				rcSleepPast(time.Now(), time.Second)
				down.wantRefresh(t, b)
			}
			if n := rcUpstreamRefreshes(t, a, upID); n != 2 {
				t.Fatalf("the upstream saw %d refreshes of its refresh token, want 2 (one per downstream refresh)", n)
			}
			if !down.sso(t, b) {
				t.Fatal("the SSO session gives no code while the upstream vouches")
			}

			aaWant(t, aaCall(t, a, "POST", "/users/"+upID+"/"+c.op, upAdmin, ""), http.StatusOK, nil, c.op+" at the upstream")
			rcSleepPast(time.Now(), time.Second)
			down.wantEnded(t, b, c.ssoFirst)
			rcWantRefusal(t, b, downAdmin, down.sub, "corp", "refused its refresh token")
		})
	}
}

// rcUpstreamRefreshes counts the refresh tokens of the broker client that a
// fedhub upstream saw used for a user.
func rcUpstreamRefreshes(t testing.TB, up *Server, userID string) int {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+biServerDB(up)+"?mode=ro&_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var n int
	err = db.QueryRowContext(t.Context(), `SELECT COUNT(*) FROM refresh_tokens r JOIN grants g ON g.id = r.grant_id
		WHERE g.client_id = 'broker' AND g.user_id = ? AND r.used_at IS NOT NULL`, userID).Scan(&n)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// rcLocalLogin signs a local user in with the login page's form in a browser
// of their own (code flow, client rp).
func rcLocalLogin(t testing.TB, s *Server, username, password string) *rcSession {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams()
	got := ocAuthorizeAs(t, s, b, params, username, password)
	ts, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, params), params)
	return &rcSession{b: b, c: ocRP, tok: ts, sub: idt.Subject}
}

// TestRevocationAdminAPI: on the real binary, unlink, move, merge and disable
// end at once the refresh tokens, access tokens and SSO sessions that came
// through the identity (or, for merge and disable, all of the user's), and
// nothing that came through another identity of the same user. The directory
// keeps vouching throughout (and is asked at most every 5 minutes): what ends
// is the administrator's doing, not a re-check's.
func TestRevocationAdminAPI(t *testing.T) {
	t.Parallel()
	dir := peers.OpenLDAP(t)
	names := []string{"unlink", "move", "move-to", "merge", "merge-into", "disable"}
	var users strings.Builder
	for _, u := range names {
		users.WriteString("  - username: rc-" + u + "\n    email: rc-" + u + "@example.org\n    password: ${AA_PASSWORD}\n")
	}
	s := Start(t, aaEnv(), WithEnv("LDAP_BIND="+dir.ReaderPassword), WithConfig(aaConfig("", users.String(),
		rcLDAPConnector(dir, "rc-ldap", dir.LDAPSURL, "(objectClass=inetOrgPerson)", ""))))
	admin := dir.Admin(t)
	tok := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	post := func(t *testing.T, path, body string) {
		t.Helper()
		aaWant(t, aaCall(t, s, "POST", path, tok, body), http.StatusOK, nil, path)
	}

	// person is a local user with a directory identity linked by the
	// administrator: signed in through the directory in a browser and by the
	// password grant, and with the local password in another browser.
	type person struct {
		id, dirUser        string
		link               uint
		viaDir, viaDirPass *rcSession // through the directory identity: browser, password grant
		viaLocal           *rcSession // through the local password
	}
	signIn := func(t *testing.T, name string) person {
		t.Helper()
		p := person{id: aaUserID(t, s, tok, "rc-"+name), dirUser: "rc-" + name + "-dir"}
		uuid := rcAddEntry(t, admin, "uid="+p.dirUser+","+dir.UserBase, p.dirUser, "")
		var d aaDetail
		aaWant(t, aaCall(t, s, "POST", "/users/"+p.id+"/links", tok, `{"connector":"rc-ldap","subject":"`+uuid+`"}`),
			http.StatusOK, &d, "link")
		l, _ := d.link("rc-ldap", uuid)
		p.link = l.ID
		p.viaDir = rcBrowserLogin(t, s, "rc-ldap", p.dirUser, rcPassword)
		p.viaDirPass = rcPasswordLogin(t, s, p.dirUser, rcPassword)
		p.viaLocal = rcLocalLogin(t, s, "rc-"+name, aaPassword)
		for _, r := range []*rcSession{p.viaDir, p.viaDirPass, p.viaLocal} {
			if r.sub != p.id {
				t.Fatalf("signed in as %s, want rc-%s (%s)", r.sub, name, p.id)
			}
		}
		return p
	}
	// wantNoRefusal: the tokens ended with the operation, in its transaction;
	// a re-check that found the identity gone would have said so.
	wantNoRefusal := func(t *testing.T, userID string) {
		t.Helper()
		if evs := rcRefusals(t, s, tok, userID); len(evs) != 0 {
			t.Fatalf("ended by a re-check, not by the operation: %+v", evs)
		}
	}

	t.Run("unlink", func(t *testing.T) {
		t.Parallel()
		p := signIn(t, "unlink")
		aaWant(t, aaCall(t, s, "DELETE", fmt.Sprintf("/users/%s/links/%d", p.id, p.link), tok, ""), http.StatusOK, nil, "unlink")
		p.viaDir.wantEnded(t, s, false)
		p.viaDirPass.wantEnded(t, s, false)
		p.viaLocal.wantAlive(t, s) // another identity of the same user
		wantNoRefusal(t, p.id)
	})
	t.Run("move", func(t *testing.T) {
		t.Parallel()
		p := signIn(t, "move")
		to := rcLocalLogin(t, s, "rc-move-to", aaPassword)
		post(t, fmt.Sprintf("/users/%s/links/%d/move", p.id, p.link), `{"to_user_id":"`+to.sub+`"}`)
		p.viaDir.wantEnded(t, s, true)
		p.viaDirPass.wantEnded(t, s, false)
		p.viaLocal.wantAlive(t, s)
		to.wantAlive(t, s)
		wantNoRefusal(t, p.id)
		if r := rcBrowserLogin(t, s, "rc-ldap", p.dirUser, rcPassword); r.sub != to.sub {
			t.Fatalf("after the move the directory identity signs in %s, want %s", r.sub, to.sub)
		}
	})
	t.Run("merge", func(t *testing.T) {
		t.Parallel()
		p := signIn(t, "merge")
		into := rcLocalLogin(t, s, "rc-merge-into", aaPassword)
		post(t, "/users/"+into.sub+"/merge", `{"from_user_id":"`+p.id+`"}`)
		p.viaDir.wantEnded(t, s, false)
		p.viaDirPass.wantEnded(t, s, false)
		p.viaLocal.wantEnded(t, s, true) // everything of the merged user
		into.wantAlive(t, s)
		wantNoRefusal(t, p.id)
		if r := rcBrowserLogin(t, s, "rc-ldap", p.dirUser, rcPassword); r.sub != into.sub {
			t.Fatalf("after the merge the directory identity signs in %s, want %s", r.sub, into.sub)
		}
	})
	t.Run("disable", func(t *testing.T) {
		t.Parallel()
		p := signIn(t, "disable")
		post(t, "/users/"+p.id+"/disable", "")
		p.viaDir.wantEnded(t, s, true)
		p.viaDirPass.wantEnded(t, s, false)
		p.viaLocal.wantEnded(t, s, false)
		wantNoRefusal(t, p.id)
	})
}
