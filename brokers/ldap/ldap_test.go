package ldap_test

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedhub/fedhub/login"

	goldap "github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/e2e/peers"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// logBuffer collects what a connector logs, for tests that check what is logged.
type logBuffer struct {
	mu  sync.Mutex
	buf bytes.Buffer
}

func (b *logBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.Write(p)
}

func (b *logBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.buf.String()
}

// connector makes a connector that logs into the returned buffer and is closed with the test.
func connector(t *testing.T, cfg ldap.Config) (*ldap.Connector, *logBuffer) {
	t.Helper()
	logs := &logBuffer{}
	c, err := ldap.New(cfg, slog.New(slog.NewTextHandler(logs, &slog.HandlerOptions{Level: slog.LevelDebug})))
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Errorf("Close: %v", err)
		}
		if t.Failed() {
			t.Logf("connector log:\n%s", logs)
		}
	})
	return c, logs
}

// openLDAPConfig is the configuration for s over LDAPS, trusting its CA.
func openLDAPConfig(s *peers.LDAPServer) ldap.Config {
	return ldap.Config{
		URLs:         []string{s.LDAPSURL},
		CAFile:       s.CAFile,
		BindDN:       s.ReaderDN,
		BindPassword: s.ReaderPassword,
		UserBase:     s.UserBase,
		GroupBase:    s.GroupBase,
		Timeout:      5 * time.Second,
	}
}

func ctx(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// countingListener accepts TCP connections on loopback, counts them and never answers.
type countingListener struct {
	net.Listener
	accepted atomic.Int32
}

func listen(t *testing.T) *countingListener {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	cl := &countingListener{Listener: l}
	var conns []net.Conn
	var mu sync.Mutex
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			cl.accepted.Add(1)
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
		}
	}()
	t.Cleanup(func() {
		l.Close()
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			c.Close()
		}
	})
	return cl
}

func (l *countingListener) port() int { return l.Addr().(*net.TCPAddr).Port }

// closedPort is a loopback port nobody listens on.
func closedPort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	port := l.Addr().(*net.TCPAddr).Port
	l.Close()
	return port
}

func TestLoginOpenLDAP(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, _ := connector(t, openLDAPConfig(s))
	alice := s.Users["alice"]

	id, err := c.Login(ctx(t), "alice", alice.Password, nil)
	if err != nil {
		t.Fatalf("Login: %v", err)
	}
	if id.Subject != alice.ID || alice.ID == "" {
		t.Errorf("Subject = %q, want the entryUUID %q", id.Subject, alice.ID)
	}
	if id.Username != "alice" || id.Email != alice.Email || id.Name != alice.Name {
		t.Errorf("got username %q, email %q, name %q; want alice, %s, %s", id.Username, id.Email, id.Name, alice.Email, alice.Name)
	}
	if want := []string{"engineering", "staff"}; !slices.Equal(id.Groups, want) {
		t.Errorf("Groups = %v, want %v", id.Groups, want)
	}
	if id.Raw["dn"] != alice.DN || id.Raw["mail"] != alice.Email || id.Raw["entryUUID"] != alice.ID {
		t.Errorf("Raw = %v, want dn, mail and entryUUID among them", id.Raw)
	}
	if id.EmailVerified {
		t.Error("EmailVerified = true: a directory's mail attribute is not verified")
	}

	// A user in no group, and the same login twice. With one pooled connection, each search
	// reuses it: had a user's bind been made on it, the next search would run as that user,
	// who may read only their own entry, and find nobody else and no group.
	cfg := openLDAPConfig(s)
	cfg.PoolSize = 1
	c, _ = connector(t, cfg)
	for range 2 {
		id, err = c.Login(ctx(t), "jdoe1", s.Users["jdoe1"].Password, nil)
		if err != nil || id.Username != "jdoe1" || len(id.Groups) != 0 {
			t.Errorf("Login jdoe1 = %+v, %v; want jdoe1 without groups", id, err)
		}
	}
	// Leading and trailing spaces typed by a person do not matter.
	if id, err := c.Login(ctx(t), " alice ", alice.Password, nil); err != nil || id.Subject != alice.ID || len(id.Groups) != 2 {
		t.Errorf("Login with spaces = %+v, %v", id, err)
	}
}

func TestWrongPassword(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, logs := connector(t, openLDAPConfig(s))
	for _, tc := range []struct{ user, password string }{
		{"alice", "wrong"},
		{"alice", s.Users["bob"].Password},
		{"nobody", s.Users["alice"].Password},
		{"", s.Users["alice"].Password},
	} {
		_, err := c.Login(ctx(t), tc.user, tc.password, nil)
		if !errors.Is(err, login.ErrInvalidCredentials) {
			t.Errorf("Login(%q, …) = %v, want ErrInvalidCredentials", tc.user, err)
		}
	}
	if strings.Contains(logs.String(), s.Users["bob"].Password) || strings.Contains(logs.String(), "wrong") {
		t.Errorf("a password reached the log:\n%s", logs)
	}
}

// RFC 4513 §5.1.2: a DN with an empty password is an unauthenticated bind, which servers
// accept. It must be refused before anything is sent.
func TestEmptyPasswordNoNetwork(t *testing.T) {
	l := listen(t)
	closed := closedPort(t)
	cfg := ldap.Config{
		URLs:     []string{fmt.Sprintf("ldap://127.0.0.1:%d", l.port()), fmt.Sprintf("ldap://127.0.0.1:%d", closed)},
		Insecure: true,
		UserBase: "dc=example,dc=test",
		Timeout:  300 * time.Millisecond,
	}
	c, _ := connector(t, cfg)
	for _, user := range []string{"alice", "", "cn=admin,dc=example,dc=test"} {
		if _, err := c.Login(ctx(t), user, "", nil); !errors.Is(err, login.ErrInvalidCredentials) {
			t.Errorf("Login(%q, \"\") = %v, want ErrInvalidCredentials", user, err)
		}
	}
	// Counted connections, not elapsed time: a loaded CI machine is slow, never wrong.
	if n := l.accepted.Load(); n != 0 {
		t.Fatalf("the server got %d connections for empty passwords, want none", n)
	}
	// The counting works: a real password does reach the server (which never answers).
	if _, err := c.Login(ctx(t), "alice", "x", nil); err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login against a silent server = %v, want a failure that is not invalid credentials", err)
	}
	if n := l.accepted.Load(); n == 0 {
		t.Error("a login with a password made no connection: the check above proves nothing")
	}
}

// A server that accepts connections and never answers must not hang a login.
func TestTimeout(t *testing.T) {
	l := listen(t)
	c, _ := connector(t, ldap.Config{
		URLs:     []string{fmt.Sprintf("ldap://127.0.0.1:%d", l.port())},
		Insecure: true,
		UserBase: "dc=example,dc=test",
		Timeout:  300 * time.Millisecond,
	})
	start := time.Now()
	_, err := c.Login(ctx(t), "alice", "secret", nil)
	if err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login = %v, want a failure", err)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Login took %v with a 300ms timeout", d)
	}
	// The caller's context is honoured too.
	short, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
	defer cancel()
	c2, _ := connector(t, ldap.Config{
		URLs:     []string{fmt.Sprintf("ldap://127.0.0.1:%d", l.port())},
		Insecure: true,
		UserBase: "dc=example,dc=test",
		Timeout:  time.Minute,
	})
	start = time.Now()
	if _, err := c2.Login(short, "alice", "secret", nil); err == nil {
		t.Error("Login with an expired context succeeded")
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("Login took %v with a 100ms context", d)
	}
	if err := c.Health(ctx(t)); err == nil {
		t.Error("Health against a silent server = nil")
	}
}

func TestFilterMetacharacters(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, _ := connector(t, openLDAPConfig(s))
	mallory, alice := s.Users["mallory"], s.Users["alice"]

	// The username made of metacharacters finds exactly its own entry.
	id, err := c.Login(ctx(t), mallory.Username, mallory.Password, nil)
	if err != nil {
		t.Fatalf("Login(%q): %v", mallory.Username, err)
	}
	if id.Subject != mallory.ID || id.Username != mallory.Username || id.Raw["dn"] != mallory.DN {
		t.Errorf("Login(%q) = %+v, want mallory's entry", mallory.Username, id)
	}
	// Injections that would match alice (or everyone) unescaped match no one.
	for _, user := range []string{"*", "al*", "alice)(uid=*", "*)(|(uid=*", `alice\`, "alice)(objectClass=*"} {
		if _, err := c.Login(ctx(t), user, alice.Password, nil); !errors.Is(err, login.ErrInvalidCredentials) {
			t.Errorf("Login(%q, alice's password) = %v, want ErrInvalidCredentials", user, err)
		}
	}
	// mallory's name does not log in as anyone else.
	if _, err := c.Login(ctx(t), mallory.Username, alice.Password, nil); !errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login(%q, alice's password) = %v, want ErrInvalidCredentials", mallory.Username, err)
	}
}

func TestMoreThanOneEntry(t *testing.T) {
	s := peers.OpenLDAP(t)
	cfg := openLDAPConfig(s)
	cfg.UsernameAttr = "sn" // jdoe1 and jdoe2 are both "Doe"
	c, logs := connector(t, cfg)
	_, err := c.Login(ctx(t), "Doe", s.Users["jdoe1"].Password, nil)
	if err == nil || errors.Is(err, login.ErrInvalidCredentials) || errors.As(err, new(*login.UserError)) {
		t.Fatalf("Login = %v, want a generic failure", err)
	}
	if !strings.Contains(logs.String(), "level=ERROR") || !strings.Contains(logs.String(), "more than one") {
		t.Errorf("the ambiguous search was not logged as an error:\n%s", logs)
	}
	// A filter that leaves one of them out makes the search unambiguous again.
	cfg.UserFilter = "(&(objectClass=person)(!(uid=jdoe2)))"
	c2, _ := connector(t, cfg)
	if id, err := c2.Login(ctx(t), "Doe", s.Users["jdoe1"].Password, nil); err != nil || id.Username != "Doe" {
		t.Errorf("Login with a narrower filter = %+v, %v", id, err)
	}
}

func TestTLS(t *testing.T) {
	s := peers.OpenLDAP(t)
	alice := s.Users["alice"]
	tryLogin := func(t *testing.T, cfg ldap.Config) error {
		c, _ := connector(t, cfg)
		id, err := c.Login(ctx(t), "alice", alice.Password, nil)
		if err == nil && id.Subject != alice.ID {
			t.Errorf("Subject = %q, want %q", id.Subject, alice.ID)
		}
		return err
	}

	t.Run("LDAPS with the CA", func(t *testing.T) {
		if err := tryLogin(t, openLDAPConfig(s)); err != nil {
			t.Errorf("Login: %v", err)
		}
	})
	t.Run("LDAPS without the CA", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.CAFile = "" // the system pool does not know the test CA
		err := tryLogin(t, cfg)
		if err == nil || errors.Is(err, login.ErrInvalidCredentials) || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Login = %v, want a certificate error", err)
		}
		c, _ := connector(t, cfg)
		if err := c.Health(ctx(t)); err == nil {
			t.Error("Health = nil, want a certificate error")
		}
	})
	t.Run("LDAPS with the wrong server name", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.ServerName = "ldap.example.com"
		if err := tryLogin(t, cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Login = %v, want a certificate error", err)
		}
	})
	t.Run("LDAPS insecure", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.CAFile, cfg.Insecure = "", true
		if err := tryLogin(t, cfg); err != nil {
			t.Errorf("Login: %v", err)
		}
	})
	t.Run("StartTLS", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.URLs, cfg.StartTLS = []string{s.URL}, true
		if err := tryLogin(t, cfg); err != nil {
			t.Errorf("Login: %v", err)
		}
	})
	t.Run("StartTLS without the CA", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.URLs, cfg.StartTLS, cfg.CAFile = []string{s.URL}, true, ""
		if err := tryLogin(t, cfg); err == nil || !strings.Contains(err.Error(), "certificate") {
			t.Errorf("Login = %v, want a certificate error", err)
		}
	})
	t.Run("plain LDAP needs insecure", func(t *testing.T) {
		cfg := openLDAPConfig(s)
		cfg.URLs = []string{s.URL}
		if _, err := ldap.New(cfg, nil); err == nil || !strings.Contains(err.Error(), "insecure") {
			t.Errorf("New with ldap:// = %v, want an error naming insecure", err)
		}
		cfg.Insecure = true
		if err := tryLogin(t, cfg); err != nil {
			t.Errorf("Login with insecure: %v", err)
		}
	})
}

func TestFailover(t *testing.T) {
	first, second := peers.OpenLDAP(t), peers.OpenLDAP(t)
	cfg := openLDAPConfig(first) // both servers have the same passwords and CA
	cfg.URLs = []string{
		fmt.Sprintf("ldaps://127.0.0.1:%d", closedPort(t)), // never up
		first.LDAPSURL,
		second.LDAPSURL,
	}
	cfg.PoolSize = 1
	c, _ := connector(t, cfg)
	password := first.Users["alice"].Password

	// The entryUUIDs differ between the two servers: the subject tells which one answered.
	id, err := c.Login(ctx(t), "alice", password, nil)
	if err != nil || id.Subject != first.Users["alice"].ID {
		t.Fatalf("Login = %+v, %v; want alice from the first live server", id, err)
	}
	if err := c.Health(ctx(t)); err != nil {
		t.Errorf("Health: %v", err)
	}

	// The first live server goes down: the pooled connection breaks, the next login goes to
	// the second server.
	first.Stop()
	id, err = c.Login(ctx(t), "alice", password, nil)
	if err != nil || id.Subject != second.Users["alice"].ID {
		t.Fatalf("Login after a server stopped = %+v, %v; want alice from the second server", id, err)
	}
	if err := c.Health(ctx(t)); err != nil {
		t.Errorf("Health: %v", err)
	}

	second.Stop()
	if _, err := c.Login(ctx(t), "alice", password, nil); err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login with every server down = %v, want a failure", err)
	}
	if err := c.Health(ctx(t)); err == nil {
		t.Error("Health with every server down = nil")
	}
}

func TestSRVDiscovery(t *testing.T) {
	s := peers.OpenLDAP(t)
	u, _ := url.Parse(s.URL)
	port, _ := strconv.Atoi(u.Port())
	cfg := openLDAPConfig(s)
	cfg.URLs, cfg.SRV, cfg.StartTLS = nil, "example.test", true
	c, _ := connector(t, cfg)
	var asked string
	var lookups atomic.Int32
	c.SetLookupSRV(func(_ context.Context, service, proto, name string) (string, []*net.SRV, error) {
		lookups.Add(1)
		asked = "_" + service + "._" + proto + "." + name
		return asked, []*net.SRV{
			{Target: "127.0.0.1.", Port: uint16(port), Priority: 10, Weight: 100},
			{Target: "127.0.0.1.", Port: uint16(closedPort(t)), Priority: 0, Weight: 100}, // down
			{Target: ".", Port: 389, Priority: 0},                                         // "not here"
		}, nil
	})
	id, err := c.Login(ctx(t), "alice", s.Users["alice"].Password, nil)
	if err != nil || id.Subject != s.Users["alice"].ID {
		t.Errorf("Login = %+v, %v", id, err)
	}
	if asked != "_ldap._tcp.example.test" {
		t.Errorf("looked up %q, want _ldap._tcp.example.test", asked)
	}
	// The search and the bind dial separately; the records are looked up once.
	if n := lookups.Load(); n != 1 {
		t.Errorf("%d SRV lookups for one login, want 1 (cached)", n)
	}

	cfg.StartTLS = false
	if _, err := ldap.New(cfg, nil); err == nil {
		t.Error("New with srv and neither start_tls nor insecure = nil error")
	}
}

// Referrals in a search answer are never followed, with the service account's or the
// user's credentials.
func TestReferralsNotFollowed(t *testing.T) {
	s := peers.OpenLDAP(t)
	elsewhere := listen(t)
	admin, err := goldap.DialURL(s.LDAPSURL, goldap.DialWithTLSConfig(tlsTrusting(t, s.CAFile)))
	if err != nil {
		t.Fatal(err)
	}
	defer admin.Close()
	if err := admin.Bind(s.AdminDN, s.AdminPassword); err != nil {
		t.Fatal(err)
	}
	add := goldap.NewAddRequest("ou=partners,"+s.UserBase, []goldap.Control{goldap.NewControlManageDsaIT(true)})
	add.Attribute("objectClass", []string{"referral", "extensibleObject"})
	add.Attribute("ou", []string{"partners"})
	add.Attribute("ref", []string{fmt.Sprintf("ldap://127.0.0.1:%d/ou=partners,dc=example,dc=test", elsewhere.port())})
	if err := admin.Add(add); err != nil {
		t.Fatalf("add referral: %v", err)
	}

	c, logs := connector(t, openLDAPConfig(s))
	if _, err := c.Login(ctx(t), "partner", "secret", nil); !errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login of someone only the referral could know = %v, want ErrInvalidCredentials", err)
	}
	if id, err := c.Login(ctx(t), "alice", s.Users["alice"].Password, nil); err != nil || id.Subject != s.Users["alice"].ID {
		t.Errorf("Login alice = %+v, %v", id, err)
	}
	if n := elsewhere.accepted.Load(); n != 0 {
		t.Errorf("the referred server got %d connections, want none", n)
	}
	if !strings.Contains(logs.String(), "referrals") {
		t.Errorf("the referral was not seen in the answer (test setup?):\n%s", logs)
	}
}

func tlsTrusting(t *testing.T, caFile string) *tls.Config {
	t.Helper()
	pem, err := os.ReadFile(caFile)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AppendCertsFromPEM(pem)
	return &tls.Config{RootCAs: pool}
}

func TestHealth(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, _ := connector(t, openLDAPConfig(s))
	if err := c.Health(ctx(t)); err != nil {
		t.Errorf("Health: %v", err)
	}

	cfg := openLDAPConfig(s)
	cfg.BindPassword = "wrong"
	bad, _ := connector(t, cfg)
	if err := bad.Health(ctx(t)); err == nil || !strings.Contains(err.Error(), "service account") {
		t.Errorf("Health with a wrong service password = %v, want an error naming the service account", err)
	}
	if _, err := bad.Login(ctx(t), "alice", s.Users["alice"].Password, nil); err == nil || errors.Is(err, login.ErrInvalidCredentials) {
		t.Errorf("Login with a wrong service password = %v, want a generic failure", err)
	}

	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := c.Login(ctx(t), "alice", s.Users["alice"].Password, nil); err == nil {
		t.Error("Login after Close succeeded")
	}
}

func TestNew(t *testing.T) {
	dir := t.TempDir()
	notPEM := filepath.Join(dir, "not.pem")
	os.WriteFile(notPEM, []byte("hello"), 0o600)
	good := ldap.Config{
		URLs:         []string{"ldaps://ldap.example.test"},
		BindDN:       "cn=reader,dc=example,dc=test",
		BindPassword: "secret",
		UserBase:     "ou=people,dc=example,dc=test",
	}
	// New does not connect: nothing listens at ldap.example.test, and that is fine.
	if _, err := ldap.New(good, nil); err != nil {
		t.Fatalf("New(good) = %v", err)
	}
	for _, tc := range []struct {
		name   string
		change func(*ldap.Config)
		want   string
	}{
		{"no server", func(c *ldap.Config) { c.URLs = nil }, "urls: give the servers"},
		{"both", func(c *ldap.Config) { c.SRV = "example.test" }, "srv: give either urls or srv"},
		{"srv without TLS", func(c *ldap.Config) { c.URLs, c.SRV = nil, "example.test" }, "srv: servers found through DNS"},
		{"user and path in URL", func(c *ldap.Config) { c.URLs = []string{"ldaps://user@ldap.example.test/ou=people"} }, "urls[0]: must be"},
		{"second URL bad", func(c *ldap.Config) { c.URLs = append(c.URLs, "ldaps://ldap2.example.test?x") }, "urls[1]: must be"},
		{"password without dn", func(c *ldap.Config) { c.BindDN = "" }, "bind_dn: is required with bind_password"},
		{"bad bind dn", func(c *ldap.Config) { c.BindDN = "reader" }, "bind_dn:"},
		{"bad group base", func(c *ldap.Config) { c.GroupBase = "nope" }, "group_base:"},
		{"bad group filter", func(c *ldap.Config) { c.GroupFilter = "objectClass=group)(" }, "group_filter:"},
		{"pool too large", func(c *ldap.Config) { c.PoolSize = 101 }, "pool_size: must be between 0 (default) and 100"},
		{"negative pool", func(c *ldap.Config) { c.PoolSize = -1 }, "pool_size:"},
		{"domain with a backslash", func(c *ldap.Config) { c.Domain = `EXAMPLE\` }, "domain:"},
		{"plain", func(c *ldap.Config) { c.URLs = []string{"ldap://ldap.example.test"} }, "insecure"},
		{"starttls on ldaps", func(c *ldap.Config) { c.StartTLS = true }, "start_tls"},
		{"bad scheme", func(c *ldap.Config) { c.URLs = []string{"http://ldap.example.test"} }, "scheme"},
		{"no host", func(c *ldap.Config) { c.URLs = []string{"ldaps://"} }, "url"},
		{"no user base", func(c *ldap.Config) { c.UserBase = "" }, "user_base"},
		{"bad user base", func(c *ldap.Config) { c.UserBase = "not a dn" }, "user_base"},
		{"dn without password", func(c *ldap.Config) { c.BindPassword = "" }, "bind_password"},
		{"bad filter", func(c *ldap.Config) { c.UserFilter = "(&(objectClass=person)" }, "user_filter"},
		{"bad attribute", func(c *ldap.Config) { c.UsernameAttr = "uid)(x" }, "username_attribute"},
		{"missing CA file", func(c *ldap.Config) { c.CAFile = filepath.Join(dir, "missing.pem") }, "ca_file"},
		{"CA file without PEM", func(c *ldap.Config) { c.CAFile = notPEM }, "ca_file"},
		{"negative timeout", func(c *ldap.Config) { c.Timeout = -time.Second }, "timeout"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := good
			cfg.URLs = slices.Clone(good.URLs)
			tc.change(&cfg)
			_, err := ldap.New(cfg, nil)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("New = %v, want an error about %q", err, tc.want)
			}
			if err != nil && strings.Contains(err.Error(), "secret") {
				t.Errorf("the error shows the bind password: %v", err)
			}
		})
	}
	// Both empty: anonymous search is allowed.
	anon := good
	anon.BindDN, anon.BindPassword = "", ""
	if _, err := ldap.New(anon, nil); err != nil {
		t.Errorf("New without service account = %v", err)
	}
}

// Active Directory, on a real Samba AD DC.

func adConfig(s *peers.ADServer) ldap.Config {
	return ldap.Config{
		URLs:            []string{s.LDAPSURL},
		CAFile:          s.CAFile,
		ActiveDirectory: true,
		Domain:          s.Domain,
		UPNSuffix:       strings.ToLower(s.Realm),
		BindDN:          s.Users["service"].DN,
		BindPassword:    s.Users["service"].Password,
		UserBase:        s.UserBase,
		Timeout:         10 * time.Second,
	}
}

func TestADLogin(t *testing.T) {
	s := peers.SambaAD(t)
	c, _ := connector(t, adConfig(s))
	alice := s.Users["alice"]
	for _, user := range []string{"alice", `EXAMPLE\alice`, `example\ALICE`, "alice@example.test", "ALICE@EXAMPLE.TEST"} {
		t.Run(user, func(t *testing.T) {
			id, err := c.Login(ctx(t), user, alice.Password, nil)
			if err != nil {
				t.Fatalf("Login: %v", err)
			}
			// The server's own formatting of objectGUID (extended DN control).
			if id.Subject != alice.ID || alice.ID == "" {
				t.Errorf("Subject = %q, want the objectGUID %q", id.Subject, alice.ID)
			}
			if id.Username != "alice" || id.Email != alice.Email || id.Name != alice.Name {
				t.Errorf("got username %q, email %q, name %q", id.Username, id.Email, id.Name)
			}
			// alice ∈ Engineering ∈ AllStaff.
			if want := []string{"AllStaff", "Engineering"}; !slices.Equal(id.Groups, want) {
				t.Errorf("Groups = %v, want %v", id.Groups, want)
			}
			if id.Raw["dn"] != alice.DN || id.Raw["objectGUID"] != alice.ID || id.Raw["userPrincipalName"] != "alice@example.test" {
				t.Errorf("Raw = %v", id.Raw)
			}
		})
	}
	for _, user := range []string{`OTHER\alice`, `EXAMPLE\`, "alice@other.test", `EXAMPLE\*`, "*"} {
		if _, err := c.Login(ctx(t), user, alice.Password, nil); !errors.Is(err, login.ErrInvalidCredentials) {
			t.Errorf("Login(%q) = %v, want ErrInvalidCredentials", user, err)
		}
	}

	// The subject is stable: another connector, over StartTLS, finds the same.
	cfg := adConfig(s)
	cfg.URLs, cfg.StartTLS = []string{s.URL}, true
	c2, _ := connector(t, cfg)
	id, err := c2.Login(ctx(t), "alice", alice.Password, nil)
	if err != nil || id.Subject != alice.ID {
		t.Errorf("Login over StartTLS = %+v, %v; want subject %q", id, err, alice.ID)
	}
	if err := c2.Health(ctx(t)); err != nil {
		t.Errorf("Health: %v", err)
	}
}

func TestADRefusals(t *testing.T) {
	s := peers.SambaAD(t)
	c, logs := connector(t, adConfig(s))
	loginOutcomes(t, c, logs, []loginOutcome{
		{user: "alice", password: "wrong", want: login.ErrInvalidCredentials, logged: "ad_code=52e"},
		{user: "alice", password: "", want: login.ErrInvalidCredentials},
		// Disabled accounts are left out by the search itself (userAccountControl bit 2).
		{user: "disabled", password: s.Users["disabled"].Password, want: login.ErrInvalidCredentials, logged: "no such user"},
		{user: "mustchange", password: s.Users["mustchange"].Password, message: "must change your password", logged: "ad_code=773"},
		{user: "locked", password: s.Users["locked"].Password, message: "locked", logged: "ad_code=775"},
		{user: "expired", password: s.Users["expired"].Password, message: "account has expired", logged: "ad_code=701"},
		// A wrong password does not tell the states apart.
		{user: "mustchange", password: "wrong", want: login.ErrInvalidCredentials},
	})
	if strings.Contains(logs.String(), "80090308") {
		t.Errorf("the server's raw message reached the log (only its code should):\n%s", logs)
	}
}

func TestClassifyBind(t *testing.T) {
	adErr := func(code string) error {
		return goldap.NewError(goldap.LDAPResultInvalidCredentials,
			fmt.Errorf("80090308: LdapErr: DSID-0C09041C, comment: AcceptSecurityContext error, data %s, v4563", code))
	}
	userError := func(substr string) func(error) bool {
		return func(err error) bool {
			var ue *login.UserError
			return errors.As(err, &ue) && strings.Contains(ue.Message, substr)
		}
	}
	is := func(target error) func(error) bool { return func(err error) bool { return errors.Is(err, target) } }
	for _, tc := range []struct {
		name string
		err  error
		ok   func(error) bool
	}{
		{"525 user not found", adErr("525"), is(login.ErrInvalidCredentials)},
		{"52e invalid credentials", adErr("52e"), is(login.ErrInvalidCredentials)},
		{"530 logon hours", adErr("530"), is(login.ErrInvalidCredentials)},
		{"531 workstation", adErr("531"), is(login.ErrInvalidCredentials)},
		{"532 password expired", adErr("532"), userError("password has expired")},
		{"533 disabled", adErr("533"), is(login.ErrAccountDisabled)},
		{"701 account expired", adErr("701"), userError("account has expired")},
		{"773 must reset", adErr("773"), userError("must change your password")},
		{"775 locked", adErr("775"), userError("locked")},
		{"upper case", adErr("52E"), is(login.ErrInvalidCredentials)},
		{"OpenLDAP 49", goldap.NewError(goldap.LDAPResultInvalidCredentials, errors.New("")), is(login.ErrInvalidCredentials)},
		{"unknown code", adErr("999"), is(login.ErrInvalidCredentials)},
		{"not 49", goldap.NewError(goldap.LDAPResultUnwillingToPerform, errors.New("data 775")), func(err error) bool { return err == nil }},
		{"network", goldap.NewError(goldap.ErrorNetwork, errors.New("reset")), func(err error) bool { return err == nil }},
	} {
		if got := ldap.ClassifyBind(tc.err); !tc.ok(got) {
			t.Errorf("%s: got %#v", tc.name, got)
		}
	}
}

func TestFormatGUID(t *testing.T) {
	// Samba showed objectGUID:: CyOQVLmZUUqWSHLeiBwp8g== as 5490230b-99b9-4a51-9648-72de881c29f2.
	fromSamba, _ := base64.StdEncoding.DecodeString("CyOQVLmZUUqWSHLeiBwp8g==")
	for _, tc := range []struct {
		in   []byte
		want string
		ok   bool
	}{
		{fromSamba, "5490230b-99b9-4a51-9648-72de881c29f2", true},
		{[]byte{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15}, "03020100-0504-0706-0809-0a0b0c0d0e0f", true},
		{bytes.Repeat([]byte{0xff}, 16), "ffffffff-ffff-ffff-ffff-ffffffffffff", true},
		{make([]byte, 15), "", false},
		{nil, "", false},
	} {
		got, ok := ldap.FormatGUID(tc.in)
		if got != tc.want || ok != tc.ok {
			t.Errorf("FormatGUID(%x) = %q, %v; want %q, %v", tc.in, got, ok, tc.want, tc.ok)
		}
	}
}

func TestOrderSRV(t *testing.T) {
	srv := func(target string, priority, weight uint16) *net.SRV {
		return &net.SRV{Target: target, Port: 389, Priority: priority, Weight: weight}
	}
	const runs = 10000
	for _, tc := range []struct {
		name    string
		records []*net.SRV
		// check gets every order produced and how often each target came first.
		check func(t *testing.T, orders [][]string, first map[string]int)
	}{
		{
			name:    "lowest priority first",
			records: []*net.SRV{srv("c.", 20, 5), srv("a.", 0, 5), srv("b.", 10, 5)},
			check: func(t *testing.T, orders [][]string, _ map[string]int) {
				for _, o := range orders {
					if !slices.Equal(o, []string{"a.", "b.", "c."}) {
						t.Fatalf("order %v, want a. b. c.", o)
					}
				}
			},
		},
		{
			name:    "weights within a priority",
			records: []*net.SRV{srv("light.", 1, 10), srv("heavy.", 1, 90), srv("backup.", 2, 100)},
			check: func(t *testing.T, orders [][]string, first map[string]int) {
				if share := float64(first["heavy."]) / runs; share < 0.87 || share > 0.93 {
					t.Errorf("heavy first %.3f of the time, want about 0.9", share)
				}
				for _, o := range orders {
					if o[2] != "backup." {
						t.Fatalf("order %v: the higher priority value must come last", o)
					}
				}
			},
		},
		{
			name:    "weight 0 is a last resort among weighted records",
			records: []*net.SRV{srv("zero.", 0, 0), srv("w.", 0, 100)},
			check: func(t *testing.T, _ [][]string, first map[string]int) {
				// RFC 2782: the running sum includes zero.'s 0, so it wins when the random
				// number is 0: once in 101.
				if share := float64(first["zero."]) / runs; share > 0.02 || share == 0 {
					t.Errorf("zero first %.4f of the time, want about 1/101", share)
				}
			},
		},
		{
			name:    "all weights 0 share the load",
			records: []*net.SRV{srv("a.", 0, 0), srv("b.", 0, 0), srv("c.", 0, 0)},
			check: func(t *testing.T, _ [][]string, first map[string]int) {
				for _, target := range []string{"a.", "b.", "c."} {
					if share := float64(first[target]) / runs; share < 0.3 || share > 0.37 {
						t.Errorf("%s first %.3f of the time, want about 1/3", target, share)
					}
				}
			},
		},
		{
			name:    "target . means no service",
			records: []*net.SRV{srv(".", 0, 0), srv("a.", 5, 1)},
			check: func(t *testing.T, orders [][]string, _ map[string]int) {
				if !slices.Equal(orders[0], []string{"a."}) {
					t.Errorf("order %v, want a. alone", orders[0])
				}
			},
		},
		{
			name:    "empty",
			records: nil,
			check: func(t *testing.T, orders [][]string, _ map[string]int) {
				if len(orders[0]) != 0 {
					t.Errorf("order %v, want none", orders[0])
				}
			},
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := rand.New(rand.NewPCG(1, 2)) // seeded: the test is deterministic
			before := slices.Clone(tc.records)
			var orders [][]string
			first := map[string]int{}
			for range runs {
				var order []string
				for _, rec := range ldap.OrderSRV(tc.records, r) {
					order = append(order, rec.Target)
				}
				// Every usable record exactly once.
				want := 0
				for _, rec := range tc.records {
					if rec.Target != "." {
						want++
					}
				}
				if len(order) != want {
					t.Fatalf("order %v has %d records, want %d", order, len(order), want)
				}
				if len(order) > 0 {
					first[order[0]]++
				}
				orders = append(orders, order)
			}
			if !slices.Equal(before, tc.records) {
				t.Error("OrderSRV changed its argument")
			}
			tc.check(t, orders, first)
		})
	}
}

// TestPasswordPolicyOpenLDAP: OpenLDAP's password policy (ppolicy) answers
// a bind with what stops it; a locked account, an expired password and one an
// administrator reset, which is good only for changing it, each get their
// message; a reset password never signs anyone in.
func TestPasswordPolicyOpenLDAP(t *testing.T) {
	s := peers.OpenLDAP(t)
	admin := s.Admin(t)
	// The Relax Rules control lets the administrator set what the directory keeps itself.
	relax := goldap.NewControlString("1.3.6.1.4.1.4203.666.5.12", true, "")
	set := func(key string, attrs map[string]string) {
		t.Helper()
		m := goldap.NewModifyRequest(s.Users[key].DN, []goldap.Control{relax})
		for a, v := range attrs {
			m.Replace(a, []string{v})
		}
		if err := admin.Modify(m); err != nil {
			t.Fatalf("set %v on %s: %v", attrs, key, err)
		}
	}
	// Locked by the administrator (ppolicy's "for good" time) under a policy that locks.
	set("bob", map[string]string{"pwdPolicySubentry": "cn=lockout," + s.PolicyBase, "pwdAccountLockedTime": "000001010000Z"})
	// Reset by the administrator under a policy that wants it changed.
	set("alice", map[string]string{"pwdPolicySubentry": "cn=mustchange," + s.PolicyBase, "pwdReset": "TRUE"})
	// Set long ago under a policy whose passwords last a day.
	set("jdoe1", map[string]string{"pwdPolicySubentry": "cn=expiring," + s.PolicyBase, "pwdChangedTime": "20000101000000Z"})

	c, logs := connector(t, openLDAPConfig(s))
	loginOutcomes(t, c, logs, []loginOutcome{
		{user: "bob", password: s.Users["bob"].Password, message: "locked", logged: "password_policy=accountLocked"},
		// The directory says locked whatever the password (olcPPolicyUseLockout).
		{user: "bob", password: "wrong", message: "locked"},
		{user: "alice", password: s.Users["alice"].Password, message: "must change your password", logged: "password_policy=changeAfterReset"},
		{user: "alice", password: "wrong", want: login.ErrInvalidCredentials},
		{user: "jdoe1", password: s.Users["jdoe1"].Password, message: "password has expired", logged: "password_policy=passwordExpired"},
		{user: "jdoe1", password: "wrong", want: login.ErrInvalidCredentials},
		{user: "jdoe2", password: s.Users["jdoe2"].Password, signsIn: true},
	})

	// A re-check sees the lock too.
	if _, err := refreshed(t, c, s.Users["bob"].ID); !errors.Is(err, login.ErrUpstreamRefused) || !strings.Contains(err.Error(), "locked") {
		t.Errorf("re-check of the locked bob: %v, want refused as locked", err)
	}
}

// loginOutcome is what a login should end in: signed in, an error (errors.Is), or a
// *login.UserError whose message says message; and what the log should then hold.
type loginOutcome struct {
	user, password string
	signsIn        bool
	want           error
	message        string
	logged         string
}

// loginOutcomes logs in at c as each outcome says, in turn, and checks what it ends in.
func loginOutcomes(t *testing.T, c *ldap.Connector, logs *logBuffer, outcomes []loginOutcome) {
	t.Helper()
	for i, o := range outcomes {
		t.Run(fmt.Sprint(i, "-", o.user), func(t *testing.T) {
			id, err := c.Login(ctx(t), o.user, o.password, nil)
			var ue *login.UserError
			switch {
			case o.signsIn:
				if err != nil || id.Username != o.user {
					t.Errorf("Login = %+v, %v; want %s signed in", id, err, o.user)
				}
			case o.want != nil:
				if !errors.Is(err, o.want) {
					t.Errorf("Login = %v, want %v", err, o.want)
				}
			case !errors.As(err, &ue) || !strings.Contains(ue.Message, o.message):
				t.Errorf("Login = %+v, %#v; want a UserError saying %q", id, err, o.message)
			}
			if o.logged != "" && !strings.Contains(logs.String(), o.logged) {
				t.Errorf("log lacks %q:\n%s", o.logged, logs)
			}
		})
	}
}
