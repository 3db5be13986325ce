package peers

import (
	"bytes"
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha1"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// LDAPServer is a private OpenLDAP server (slapd) on loopback, with a test directory:
//
//	dc=example,dc=test
//	├── cn=admin      the root DN (AdminDN), may write
//	├── cn=reader     a read-only service account (ReaderDN): reads everything
//	│                 (anyone else reads only their own entry)
//	├── ou=people     UserBase: Users, each with a random password
//	├── ou=groups     GroupBase: groupOfNames, their members also in the users' memberOf
//	└── ou=policies   PolicyBase: password policies (ldapPolicies)
//
// The password policy overlay (ppolicy) is loaded: an entry follows the policy its
// pwdPolicySubentry names, or else the default one, which locks nobody. A locked account's
// failed bind says so (olcPPolicyUseLockout).
//
// Users, by key: "alice" (mail, displayName, in engineering and staff), "bob" (in staff),
// "mallory" (uid "*)(uid=*", made of filter metacharacters), "jdoe1" and "jdoe2" (both with
// sn "Doe", for searches that find two entries).
type LDAPServer struct {
	URL      string // ldap://127.0.0.1:PORT (plain, StartTLS offered)
	LDAPSURL string // ldaps://127.0.0.1:PORT
	CAFile   string // PEM of the CA that signed the server's certificate (SAN IP:127.0.0.1)
	CAPEM    []byte

	BaseDN, UserBase, GroupBase string
	PolicyBase                  string
	AdminDN, AdminPassword      string
	ReaderDN, ReaderPassword    string
	Users                       map[string]LDAPUser
	Dir                         string // the server's temporary folder

	d        *daemon
	stopOnce sync.Once
}

// LDAPUser is one person in a test directory.
type LDAPUser struct {
	Username string // the login name (uid, or sAMAccountName on AD)
	DN       string
	Password string
	Email    string
	Name     string   // displayName
	Groups   []string // cn of the groups it is a direct member of
	ID       string   // the stable ID as the server shows it: entryUUID, or AD's objectGUID
}

// OpenLDAP starts a fresh OpenLDAP server for t; it is stopped in t.Cleanup, or earlier by
// Stop. Starting takes well under a second. All the servers of one test binary have the same
// passwords and certificate authority, so that two of them can stand for a server and its
// replica.
func OpenLDAP(t testing.TB) *LDAPServer {
	t.Helper()
	SkipShort(t)
	var s *LDAPServer
	var err error
	for attempt := 0; attempt < 3; attempt++ {
		// The free ports may be taken again before slapd binds them: then try new ones.
		if s, err = startOpenLDAP(); err == nil || !errors.Is(err, errPortTaken) {
			break
		}
	}
	if err != nil {
		t.Fatalf("peers: start OpenLDAP: %v", err)
	}
	t.Cleanup(s.Stop)
	return s
}

// Stop stops the server (idempotent) and removes its folder.
func (s *LDAPServer) Stop() {
	s.stopOnce.Do(func() {
		s.d.stop(syscall.SIGTERM)
		os.RemoveAll(s.Dir)
	})
}

var errPortTaken = errors.New("port taken")

// ldapPasswords are random, made once per test binary: every OpenLDAP server of the binary
// has the same accounts with the same passwords, like replicas (their entryUUIDs differ).
var ldapPasswords struct {
	sync.Mutex
	m map[string]string
}

func ldapPassword(account string) string {
	ldapPasswords.Lock()
	defer ldapPasswords.Unlock()
	if ldapPasswords.m == nil {
		ldapPasswords.m = map[string]string{}
	}
	if _, ok := ldapPasswords.m[account]; !ok {
		ldapPasswords.m[account] = rand.Text()
	}
	return ldapPasswords.m[account]
}

const slapdBin = "/usr/sbin/slapd"

func startOpenLDAP() (_ *LDAPServer, err error) {
	slapadd, err := exec.LookPath("slapadd")
	if err != nil {
		slapadd = "/usr/sbin/slapadd"
	}
	if !isFile(slapdBin) || !isFile(slapadd) || !isFile("/usr/lib/ldap/back_mdb.so") {
		return nil, errors.New("OpenLDAP (slapd, slapadd) not installed: " +
			"run the tests with scripts/test, which installs slapd and ldap-utils")
	}
	dir, err := os.MkdirTemp("", "fedhub-openldap-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	ca, err := writeTestPKI(dir)
	if err != nil {
		return nil, err
	}
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	tlsPort, err := freePort()
	if err != nil {
		return nil, err
	}

	base := "dc=example,dc=test"
	s := &LDAPServer{
		URL:            fmt.Sprintf("ldap://127.0.0.1:%d", port),
		LDAPSURL:       fmt.Sprintf("ldaps://127.0.0.1:%d", tlsPort),
		CAFile:         ca.caFile,
		CAPEM:          ca.caPEM,
		BaseDN:         base,
		UserBase:       "ou=people," + base,
		GroupBase:      "ou=groups," + base,
		PolicyBase:     "ou=policies," + base,
		AdminDN:        "cn=admin," + base,
		AdminPassword:  ldapPassword("admin"),
		ReaderDN:       "cn=reader," + base,
		ReaderPassword: ldapPassword("reader"),
		Dir:            dir,
	}
	s.Users = map[string]LDAPUser{
		"alice":   {Username: "alice", Email: "alice@example.test", Name: "Alice Liddell", Groups: []string{"engineering", "staff"}},
		"bob":     {Username: "bob", Email: "bob@example.test", Name: "Bob Builder", Groups: []string{"staff"}},
		"mallory": {Username: "*)(uid=*", Email: "mallory@example.test", Name: "Mallory"},
		"jdoe1":   {Username: "jdoe1", Name: "Jane Doe"},
		"jdoe2":   {Username: "jdoe2", Name: "John Doe"},
	}
	for key, u := range s.Users {
		u.Password = ldapPassword(key)
		if key == "mallory" {
			u.DN = "cn=mallory," + s.UserBase // its uid would need escaping in a DN
		} else {
			u.DN = "uid=" + u.Username + "," + s.UserBase
		}
		s.Users[key] = u
	}

	if err := os.MkdirAll(filepath.Join(dir, "slapd.d"), 0o700); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(filepath.Join(dir, "data"), 0o700); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "config.ldif"), []byte(s.configLDIF(ca)), 0o600); err != nil {
		return nil, err
	}
	if err := os.WriteFile(filepath.Join(dir, "data.ldif"), []byte(s.dataLDIF()), 0o600); err != nil {
		return nil, err
	}
	for _, args := range [][]string{
		{"-n0", "-F", filepath.Join(dir, "slapd.d"), "-l", filepath.Join(dir, "config.ldif")},
		{"-q", "-n1", "-F", filepath.Join(dir, "slapd.d"), "-l", filepath.Join(dir, "data.ldif")},
	} {
		if out, err := exec.Command(slapadd, args...).CombinedOutput(); err != nil {
			return nil, fmt.Errorf("slapadd %s: %w\n%s", strings.Join(args, " "), err, out)
		}
	}

	logPath := filepath.Join(dir, "slapd.log")
	// -d 0: stay in the foreground (our child, killed with us), log nothing but errors.
	cmd := exec.Command(slapdBin, "-d", "0", "-F", filepath.Join(dir, "slapd.d"),
		"-h", s.URL+"/ "+s.LDAPSURL+"/")
	cmd.Dir = dir
	if s.d, err = startDaemon(cmd, logPath, syscall.SIGTERM); err != nil {
		return nil, err
	}
	if err := s.waitReady(15 * time.Second); err != nil {
		exited := s.d.exited()
		s.d.stop(syscall.SIGTERM)
		log, _ := os.ReadFile(logPath)
		// slapd run with -d 0 may exit on a taken port without saying so; on
		// a loaded machine another test can take a freed port first.
		if bytes.Contains(log, []byte("Address already in use")) || exited {
			err = fmt.Errorf("%w: %v", errPortTaken, err)
		}
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return s, nil
}

// waitReady waits until the admin can bind over LDAPS, which proves TLS and the data are up,
// then reads the users' entryUUIDs.
func (s *LDAPServer) waitReady(timeout time.Duration) error {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(caTLS(s.CAPEM)),
			ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err == nil {
			conn.SetTimeout(10 * time.Second)
			err = conn.Bind(s.AdminDN, s.AdminPassword)
			if err == nil {
				err = s.readIDs(conn)
				conn.Close()
				return err
			}
			conn.Close()
		}
		if s.d.exited() {
			return fmt.Errorf("slapd exited while starting: %v", err)
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("slapd not ready after %v: %w", timeout, err)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

func (s *LDAPServer) readIDs(conn *ldap.Conn) error {
	for key, u := range s.Users {
		res, err := conn.Search(ldap.NewSearchRequest(u.DN, ldap.ScopeBaseObject, ldap.NeverDerefAliases,
			0, 0, false, "(objectClass=*)", []string{"entryUUID"}, nil))
		if err != nil {
			return fmt.Errorf("read %s: %w", u.DN, err)
		}
		u.ID = res.Entries[0].GetAttributeValue("entryUUID")
		s.Users[key] = u
	}
	return nil
}

// configLDIF is the cn=config database: modules, schemas, one mdb database with the
// memberof and refint overlays, TLS.
func (s *LDAPServer) configLDIF(ca *testPKI) string {
	dir := s.Dir
	return `dn: cn=config
objectClass: olcGlobal
cn: config
olcPidFile: ` + filepath.Join(dir, "slapd.pid") + `
olcArgsFile: ` + filepath.Join(dir, "slapd.args") + `
olcTLSCACertificateFile: ` + ca.caFile + `
olcTLSCertificateFile: ` + ca.certFile + `
olcTLSCertificateKeyFile: ` + ca.keyFile + `

dn: cn=module{0},cn=config
objectClass: olcModuleList
cn: module{0}
olcModulePath: /usr/lib/ldap
olcModuleLoad: back_mdb
olcModuleLoad: memberof
olcModuleLoad: refint
olcModuleLoad: ppolicy

dn: cn=schema,cn=config
objectClass: olcSchemaConfig
cn: schema

include: file:///etc/ldap/schema/core.ldif

include: file:///etc/ldap/schema/cosine.ldif

include: file:///etc/ldap/schema/nis.ldif

include: file:///etc/ldap/schema/inetorgperson.ldif

dn: olcDatabase={-1}frontend,cn=config
objectClass: olcDatabaseConfig
objectClass: olcFrontendConfig
olcDatabase: {-1}frontend
olcSizeLimit: 500

dn: olcDatabase={0}config,cn=config
objectClass: olcDatabaseConfig
olcDatabase: {0}config
olcAccess: {0}to * by * none

dn: olcDatabase={1}mdb,cn=config
objectClass: olcDatabaseConfig
objectClass: olcMdbConfig
olcDatabase: {1}mdb
olcSuffix: ` + s.BaseDN + `
olcRootDN: ` + s.AdminDN + `
olcRootPW: ` + ssha(s.AdminPassword) + `
olcDbDirectory: ` + filepath.Join(dir, "data") + `
olcDbMaxSize: 104857600
olcDbNoSync: TRUE
olcDbIndex: objectClass eq
olcDbIndex: uid,mail,cn,sn eq
olcDbIndex: member,memberOf eq
olcDbIndex: entryUUID eq
olcAccess: {0}to attrs=userPassword by self =xw by anonymous auth by * none
olcAccess: {1}to * by dn.exact="` + s.ReaderDN + `" read by self read by * none
olcLimits: {0}dn.exact="` + s.ReaderDN + `" size.pr=1000 size.prtotal=unlimited

dn: olcOverlay={0}memberof,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcMemberOf
olcOverlay: {0}memberof
olcMemberOfRefInt: TRUE

dn: olcOverlay={1}refint,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcRefintConfig
olcOverlay: {1}refint
olcRefintAttribute: memberof
olcRefintAttribute: member

dn: olcOverlay={2}ppolicy,olcDatabase={1}mdb,cn=config
objectClass: olcOverlayConfig
objectClass: olcPPolicyConfig
olcOverlay: {2}ppolicy
olcPPolicyDefault: cn=default,` + s.PolicyBase + `
olcPPolicyUseLockout: TRUE
`
}

// dataLDIF is the directory's content, for slapadd (which does not run the memberof
// overlay: the memberOf values are written out).
func (s *LDAPServer) dataLDIF() string {
	var b strings.Builder
	entry := func(lines ...string) {
		for _, l := range lines {
			b.WriteString(l + "\n")
		}
		b.WriteString("\n")
	}
	entry("dn: "+s.BaseDN, "objectClass: dcObject", "objectClass: organization", "dc: example", "o: Example")
	entry("dn: "+s.ReaderDN, "objectClass: organizationalRole", "objectClass: simpleSecurityObject",
		"cn: reader", "description: read-only service account", "userPassword: "+ssha(s.ReaderPassword))
	entry("dn: "+s.UserBase, "objectClass: organizationalUnit", "ou: people")
	entry("dn: "+s.GroupBase, "objectClass: organizationalUnit", "ou: groups")
	entry("dn: "+s.PolicyBase, "objectClass: organizationalUnit", "ou: policies")
	for name, attrs := range ldapPolicies {
		entry(append([]string{"dn: cn=" + name + "," + s.PolicyBase, "objectClass: device", "objectClass: pwdPolicy",
			"cn: " + name, "pwdAttribute: userPassword"}, attrs...)...)
	}

	members := map[string][]string{}
	for _, key := range []string{"alice", "bob", "mallory", "jdoe1", "jdoe2"} {
		u := s.Users[key]
		given, sn, _ := strings.Cut(u.Name, " ")
		if sn == "" {
			sn = given
		}
		lines := []string{"dn: " + u.DN, "objectClass: inetOrgPerson",
			// base64 (::) because the value starts with a character LDIF reserves
			"uid:: " + base64.StdEncoding.EncodeToString([]byte(u.Username)),
			"cn: " + u.Name, "sn: " + sn, "givenName: " + given, "displayName: " + u.Name,
			"userPassword: " + ssha(u.Password)}
		if u.Email != "" {
			lines = append(lines, "mail: "+u.Email)
		}
		for _, g := range u.Groups {
			lines = append(lines, "memberOf: cn="+g+","+s.GroupBase)
			members[g] = append(members[g], u.DN)
		}
		entry(lines...)
	}
	for _, g := range []string{"engineering", "staff"} {
		lines := []string{"dn: cn=" + g + "," + s.GroupBase, "objectClass: groupOfNames", "cn: " + g}
		for _, m := range members[g] {
			lines = append(lines, "member: "+m)
		}
		entry(lines...)
	}
	return b.String()
}

// Admin is a connection bound as the root DN (AdminDN), over LDAPS, closed when t ends.
func (s *LDAPServer) Admin(t testing.TB) *ldap.Conn {
	t.Helper()
	conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(caTLS(s.CAPEM)))
	if err != nil {
		t.Fatalf("peers: dial OpenLDAP as its admin: %v", err)
	}
	t.Cleanup(func() { conn.Close() })
	if err := conn.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatalf("peers: bind as OpenLDAP's admin: %v", err)
	}
	return conn
}

// ldapPolicies are the test directory's password policies, by cn under PolicyBase, for tests
// to give an entry (pwdPolicySubentry); "default" applies to every other entry. "lockout" keeps
// an account an administrator locked (pwdAccountLockedTime) locked; "mustchange" makes a
// password that an administrator reset (pwdReset) good only for changing it; under "expiring"
// a password expires a day after it was set (pwdChangedTime), without grace sign-ins.
var ldapPolicies = map[string][]string{
	"default":    nil,
	"lockout":    {"pwdLockout: TRUE"},
	"mustchange": {"pwdMustChange: TRUE"},
	"expiring":   {"pwdMaxAge: 86400"},
}

// caTLS trusts only the CA in caPEM.
func caTLS(caPEM []byte) *tls.Config {
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(caPEM)
	return &tls.Config{RootCAs: pool, MinVersion: tls.VersionTLS12}
}

// ssha hashes a password the way slapd's {SSHA} scheme checks it.
func ssha(password string) string {
	salt := make([]byte, 8)
	rand.Read(salt)
	sum := sha1.Sum(append([]byte(password), salt...))
	return "{SSHA}" + base64.StdEncoding.EncodeToString(append(sum[:], salt...))
}

// testCA is the test binary's certificate authority: every peer's server certificate is
// signed by it, so one CA file trusts them all.
var testCA struct {
	once sync.Once
	key  *ecdsa.PrivateKey
	cert *x509.Certificate
	pem  []byte
	err  error
}

func loadTestCA() error {
	testCA.once.Do(func() {
		key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
		if err != nil {
			testCA.err = err
			return
		}
		now := time.Now()
		tmpl := &x509.Certificate{
			SerialNumber:          big.NewInt(1),
			Subject:               pkix.Name{CommonName: "fedhub test CA " + rand.Text()[:8]},
			NotBefore:             now.Add(-time.Hour),
			NotAfter:              now.Add(7 * 24 * time.Hour),
			KeyUsage:              x509.KeyUsageCertSign | x509.KeyUsageCRLSign,
			BasicConstraintsValid: true,
			IsCA:                  true,
		}
		der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
		if err != nil {
			testCA.err = err
			return
		}
		testCA.cert, testCA.err = x509.ParseCertificate(der)
		testCA.key = key
		testCA.pem = pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	})
	return testCA.err
}

// testPKI is a server's certificate files.
type testPKI struct {
	caFile, certFile, keyFile string
	caPEM                     []byte
}

// writeTestPKI writes, in dir, the test CA (ca.pem) and a server certificate it signed for
// 127.0.0.1, localhost and dnsNames (server.pem, server.key with mode 0600).
func writeTestPKI(dir string, dnsNames ...string) (*testPKI, error) {
	if err := loadTestCA(); err != nil {
		return nil, err
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 62))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial.Add(serial, big.NewInt(2)), // positive: Go refuses negative serials
		Subject:      pkix.Name{CommonName: "127.0.0.1"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.Add(7 * 24 * time.Hour),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IPAddresses:  []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:     append([]string{"localhost"}, dnsNames...),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, testCA.cert, &key.PublicKey, testCA.key)
	if err != nil {
		return nil, err
	}
	keyDER, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	p := &testPKI{
		caFile:   filepath.Join(dir, "ca.pem"),
		certFile: filepath.Join(dir, "server.pem"),
		keyFile:  filepath.Join(dir, "server.key"),
		caPEM:    testCA.pem,
	}
	for _, f := range []struct {
		path string
		data []byte
		mode os.FileMode
	}{
		{p.caFile, p.caPEM, 0o644},
		{p.certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644},
		{p.keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: keyDER}), 0o600},
	} {
		if err := os.WriteFile(f.path, f.data, f.mode); err != nil {
			return nil, err
		}
	}
	return p, nil
}

// daemon is a server process that is our child: it gets a parent-death signal, so that it
// does not outlive a test process that dies without cleaning up.
type daemon struct {
	proc *os.Process
	done chan struct{}
	err  error // the exit status, once done is closed
}

// startDaemon starts cmd with its output going to logPath. The parent-death signal fires when
// the thread that started the child exits (go.dev/issue/27505): the goroutine that starts it
// keeps its thread to itself, waiting, for as long as the child runs.
func startDaemon(cmd *exec.Cmd, logPath string, deathSignal syscall.Signal) (*daemon, error) {
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd.Stdout, cmd.Stderr = logFile, logFile
	if cmd.SysProcAttr == nil {
		cmd.SysProcAttr = &syscall.SysProcAttr{}
	}
	cmd.SysProcAttr.Pdeathsig = deathSignal
	d := &daemon{done: make(chan struct{})}
	started := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		d.err = cmd.Wait()
		close(d.done)
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start %s: %w", cmd.Path, err)
	}
	d.proc = cmd.Process
	return d, nil
}

func (d *daemon) exited() bool {
	select {
	case <-d.done:
		return true
	default:
		return false
	}
}

// stop sends sig, then SIGKILL if the process has not ended within 10 s, and waits for it.
func (d *daemon) stop(sig syscall.Signal) {
	if d.exited() {
		return
	}
	_ = d.proc.Signal(sig)
	select {
	case <-d.done:
	case <-time.After(10 * time.Second):
		_ = d.proc.Kill()
		<-d.done
	}
}

// waitPortFree waits until nobody listens on 127.0.0.1:port any more.
func waitPortFree(ctx context.Context, port int) error {
	for {
		c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), 200*time.Millisecond)
		if err != nil {
			return nil
		}
		c.Close()
		select {
		case <-ctx.Done():
			return fmt.Errorf("something still listens on 127.0.0.1:%d", port)
		case <-time.After(50 * time.Millisecond):
		}
	}
}
