package peers

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/go-ldap/ldap/v3"
)

// ADServer is a Samba Active Directory domain controller on 127.0.0.1, ports 389 and 636:
// realm EXAMPLE.TEST, NetBIOS domain EXAMPLE, base DN DC=example,DC=test.
//
// Users (in CN=Users), by key, each with a random password:
//   - "alice": mail alice@example.test, display name Alice Liddell (so her DN is
//     CN=Alice Liddell,CN=Users,…), member of Engineering, which is a member of AllStaff;
//   - "disabled": a disabled account (userAccountControl bit 2);
//   - "mustchange": must change the password at next logon (pwdLastSet 0, bind gives data 773);
//   - "locked": locked out (a password settings object with a lockout threshold of 1 applies
//     to it alone, and one wrong password was tried; bind gives data 775);
//   - "expired": an expired account (accountExpires in the past; bind gives data 701);
//   - "service": svc-fedhub, an ordinary account to search the directory with.
//
// LDAPUser.ID is the objectGUID as the server itself formats it (extended DN control).
// The domain's own lockout policy is left at Samba's default (no lockout), so tests may try
// wrong passwords. The server is shared by the whole test binary: do not change it.
type ADServer struct {
	URL      string // ldap://127.0.0.1:389 (simple binds allowed: "ldap server require strong auth = no")
	LDAPSURL string // ldaps://127.0.0.1:636
	CAFile   string // PEM of the CA that signed the server's certificate (SAN IP:127.0.0.1)
	CAPEM    []byte

	Realm         string // EXAMPLE.TEST
	Domain        string // EXAMPLE
	BaseDN        string // DC=example,DC=test
	UserBase      string // CN=Users,DC=example,DC=test
	AdminDN       string
	AdminPassword string
	Users         map[string]LDAPUser
	Groups        map[string]string // group name → DN
	Dir           string

	d    *daemon
	lock *os.File // flock: one Samba on ports 389/636 per machine
}

// The server is also the realm's KDC on 127.0.0.1:88 (see [ADServer.Kerberos]).
//
// SambaAD returns the test binary's Samba AD DC, provisioning and starting it on first use
// (about 10 s). [StopAll] stops it. Samba's ports are fixed: test binaries that want one
// at the same time wait for each other (a lock file in the temporary folder).
func SambaAD(t testing.TB) *ADServer {
	t.Helper()
	SkipShort(t)
	sambaAD.once.Do(func() { sambaAD.srv, sambaAD.err = startSambaAD() })
	if sambaAD.err != nil {
		t.Fatalf("peers: start Samba AD DC: %v", sambaAD.err)
	}
	return sambaAD.srv
}

var sambaAD struct {
	once sync.Once
	srv  *ADServer
	err  error
}

func stopSambaAD() {
	if sambaAD.srv != nil {
		sambaAD.srv.stop()
		sambaAD.srv = nil
	}
}

const (
	sambaBin     = "/usr/sbin/samba"
	sambaToolBin = "/usr/bin/samba-tool"
	// The domain controller's lock: held while a Samba of ours runs on the fixed ports.
	sambaLockName = "fedhub-samba-ad.lock"
)

func startSambaAD() (_ *ADServer, err error) {
	if !isFile(sambaBin) || !isFile(sambaToolBin) || !isDir("/usr/share/samba/setup/ad-schema") {
		return nil, errors.New("Samba AD DC not installed (samba, samba-tool, the AD schema): " +
			"run the tests with scripts/test, which installs samba samba-ad-dc winbind samba-ad-provision")
	}
	if os.Geteuid() != 0 {
		return nil, errors.New("Samba AD DC listens on ports 389 and 636: the tests must run as root")
	}
	lock, err := lockSambaPorts(10 * time.Minute)
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			lock.Close()
		}
	}()
	for _, port := range []int{389, 636} {
		if c, err := net.DialTimeout("tcp", fmt.Sprintf("127.0.0.1:%d", port), time.Second); err == nil {
			c.Close()
			return nil, fmt.Errorf("port %d on 127.0.0.1 is in use by another program, "+
				"perhaps the system's slapd or samba-ad-dc (stop it: systemctl stop slapd samba-ad-dc)", port)
		}
	}

	dir, err := os.MkdirTemp("", "fedhub-samba-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	s := &ADServer{
		URL:           "ldap://127.0.0.1:389",
		LDAPSURL:      "ldaps://127.0.0.1:636",
		Realm:         "EXAMPLE.TEST",
		Domain:        "EXAMPLE",
		BaseDN:        "DC=example,DC=test",
		UserBase:      "CN=Users,DC=example,DC=test",
		AdminDN:       "CN=Administrator,CN=Users,DC=example,DC=test",
		AdminPassword: adPassword(),
		Dir:           dir,
		lock:          lock,
	}
	// Samba's own certificate has a negative serial number, which Go refuses.
	pki, err := writeTestPKI(dir, "dc.example.test", "example.test")
	if err != nil {
		return nil, err
	}
	s.CAFile, s.CAPEM = pki.caFile, pki.caPEM

	target := filepath.Join(dir, "dc")
	conf := filepath.Join(target, "etc", "smb.conf")
	if err := runSamba(dir, sambaToolBin, "domain", "provision", "--targetdir="+target,
		"--realm="+s.Realm, "--domain="+s.Domain, "--server-role=dc", "--dns-backend=NONE",
		"--adminpass="+s.AdminPassword, "--host-ip=127.0.0.1",
		"--option=interfaces=lo", "--option=bind interfaces only=yes",
		"--option=server services=ldap,kdc"); err != nil { // kdc: the KDC of the Kerberos tests (port 88)
		return nil, err
	}
	run := filepath.Join(dir, "run")
	if err := os.MkdirAll(run, 0o755); err != nil {
		return nil, err
	}
	if err := editSmbConf(conf, map[string]string{
		// Provision drops this one when given as --option.
		"ldap server require strong auth": "no",
		"tls enabled":                     "yes",
		"tls keyfile":                     pki.keyFile,
		"tls certfile":                    pki.certFile,
		"tls cafile":                      "",
		"log file":                        filepath.Join(dir, "log.%m"),
		"panic action":                    "",
		// Keep everything in our folder, nothing in /run/samba.
		"pid directory":              run,
		"ncalrpc dir":                filepath.Join(run, "ncalrpc"),
		"winbindd socket directory":  filepath.Join(run, "winbindd"),
		"ntp signd socket directory": filepath.Join(run, "ntp_signd"),
	}); err != nil {
		return nil, err
	}

	// The directory's content, written while the server is stopped.
	tool := func(args ...string) error {
		return runSamba(dir, sambaToolBin, append(args, "-s", conf)...)
	}
	s.Users = map[string]LDAPUser{
		"alice":      {Username: "alice", Email: "alice@example.test", Name: "Alice Liddell", Groups: []string{"Engineering"}},
		"disabled":   {Username: "disabled", Name: "disabled"},
		"mustchange": {Username: "mustchange", Name: "mustchange"},
		"locked":     {Username: "locked", Name: "locked"},
		"expired":    {Username: "expired", Name: "expired"},
		"service":    {Username: "svc-fedhub", Name: "svc-fedhub"},
	}
	for _, key := range []string{"alice", "disabled", "mustchange", "locked", "expired", "service"} {
		u := s.Users[key]
		u.Password = adPassword()
		args := []string{"user", "create", u.Username, u.Password}
		switch key {
		case "alice":
			args = append(args, "--given-name=Alice", "--surname=Liddell", "--mail-address="+u.Email)
		case "mustchange":
			args = append(args, "--must-change-at-next-login")
		}
		if err := tool(args...); err != nil {
			return nil, err
		}
		s.Users[key] = u
	}
	for _, args := range [][]string{
		{"user", "disable", "disabled"},
		{"user", "setexpiry", "expired", "--days=0"},
		{"group", "add", "Engineering"},
		{"group", "add", "AllStaff"},
		{"group", "addmembers", "Engineering", "alice"},
		{"group", "addmembers", "AllStaff", "Engineering"},
		// A lockout policy for "locked" alone, not for the whole domain.
		{"domain", "passwordsettings", "pso", "create", "lockout", "1", "--account-lockout-threshold=1",
			"--account-lockout-duration=600", "--reset-account-lockout-after=600", "--min-pwd-age=0"},
		{"domain", "passwordsettings", "pso", "apply", "lockout", "locked"},
	} {
		if err := tool(args...); err != nil {
			return nil, err
		}
	}

	logPath := filepath.Join(dir, "samba.log")
	cmd := exec.Command(sambaBin, "--foreground", "--no-process-group", "-M", "single",
		"--debug-stdout", "-s", conf)
	cmd.Dir = dir
	if s.d, err = startDaemon(cmd, logPath, syscall.SIGTERM); err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			s.d.stop(syscall.SIGTERM)
		}
	}()
	conn, err := s.waitReady(60 * time.Second)
	if err != nil {
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	defer conn.Close()
	if err := s.finish(conn); err != nil {
		return nil, err
	}
	return s, nil
}

// waitReady waits until the Administrator can bind over LDAPS and returns that connection.
func (s *ADServer) waitReady(timeout time.Duration) (*ldap.Conn, error) {
	deadline := time.Now().Add(timeout)
	for {
		conn, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(caTLS(s.CAPEM)),
			ldap.DialWithDialer(&net.Dialer{Timeout: time.Second}))
		if err == nil {
			conn.SetTimeout(10 * time.Second)
			if err = conn.Bind(s.AdminDN, s.AdminPassword); err == nil {
				return conn, nil
			}
			conn.Close()
		}
		if s.d.exited() {
			return nil, fmt.Errorf("samba exited while starting: %v (%v)", s.d.err, err)
		}
		if time.Now().After(deadline) {
			return nil, fmt.Errorf("samba not ready after %v: %w", timeout, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// finish reads what the server made (DNs, GUIDs) and locks "locked" out.
func (s *ADServer) finish(conn *ldap.Conn) error {
	// The extended DN control (value: SEQUENCE { INTEGER 1 }, the string form) makes the
	// server itself format the objectGUID: <GUID=…>;<SID=…>;CN=….
	extDN := &ldap.ControlString{ControlType: "1.2.840.113556.1.4.529", ControlValue: "\x30\x03\x02\x01\x01"}
	guidRe := regexp.MustCompile(`^<GUID=([0-9a-fA-F-]{36})>;`)
	find := func(filter string) (dn, guid string, err error) {
		res, err := conn.Search(ldap.NewSearchRequest(s.BaseDN, ldap.ScopeWholeSubtree, ldap.NeverDerefAliases,
			0, 0, false, filter, []string{"cn"}, []ldap.Control{extDN}))
		if err != nil {
			return "", "", fmt.Errorf("search %s: %w", filter, err)
		}
		if len(res.Entries) != 1 {
			return "", "", fmt.Errorf("search %s: %d entries", filter, len(res.Entries))
		}
		ext := res.Entries[0].DN
		m := guidRe.FindStringSubmatch(ext)
		if m == nil {
			return "", "", fmt.Errorf("search %s: no GUID in extended DN %q", filter, ext)
		}
		parts := strings.SplitN(ext, ";", 3)
		return parts[len(parts)-1], strings.ToLower(m[1]), nil
	}
	for key, u := range s.Users {
		dn, guid, err := find("(sAMAccountName=" + ldap.EscapeFilter(u.Username) + ")")
		if err != nil {
			return err
		}
		u.DN, u.ID = dn, guid
		s.Users[key] = u
	}
	s.Groups = map[string]string{}
	for _, g := range []string{"Engineering", "AllStaff"} {
		dn, _, err := find("(&(objectClass=group)(sAMAccountName=" + g + "))")
		if err != nil {
			return err
		}
		s.Groups[g] = dn
	}

	// One wrong password locks "locked" out (its lockout threshold is 1).
	l, err := ldap.DialURL(s.LDAPSURL, ldap.DialWithTLSConfig(caTLS(s.CAPEM)))
	if err != nil {
		return err
	}
	defer l.Close()
	if err := l.Bind(s.Users["locked"].DN, "wrong-"+rand.Text()); !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return fmt.Errorf("locking out %q: want invalid credentials, got %v", s.Users["locked"].Username, err)
	}
	return nil
}

// Tool runs samba-tool on the server's own database while it runs (user
// create, disable, enable…): for tests that add accounts of their own, since
// the fixture's are shared.
func (s *ADServer) Tool(args ...string) error {
	return runSamba(s.Dir, sambaToolBin, append(args, "-s", filepath.Join(s.Dir, "dc", "etc", "smb.conf"))...)
}

// stop stops Samba, removes its folder and lets another test binary have the ports.
func (s *ADServer) stop() {
	s.d.stop(syscall.SIGTERM)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	_ = waitPortFree(ctx, 389)
	os.RemoveAll(s.Dir)
	s.lock.Close() // releases the flock
}

// lockSambaPorts takes the machine-wide lock on Samba's fixed ports, waiting up to timeout
// for another test binary to release it. The kernel releases it when the process dies.
func lockSambaPorts(timeout time.Duration) (*os.File, error) {
	path := filepath.Join(os.TempDir(), sambaLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, err
	}
	deadline := time.Now().Add(timeout)
	for {
		err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		if err == nil {
			return f, nil
		}
		if !errors.Is(err, syscall.EWOULDBLOCK) || time.Now().After(deadline) {
			f.Close()
			return nil, fmt.Errorf("lock %s (another test binary runs Samba on ports 389/636): %w", path, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// editSmbConf sets parameters in the [global] section of an smb.conf.
func editSmbConf(path string, params map[string]string) error {
	data, err := os.ReadFile(path)
	if err != nil {
		return err
	}
	var out []string
	inGlobal := false
	for _, line := range strings.Split(string(data), "\n") {
		trimmed := strings.TrimSpace(line)
		if strings.HasPrefix(trimmed, "[") {
			inGlobal = strings.EqualFold(trimmed, "[global]")
			out = append(out, line)
			if inGlobal {
				for k, v := range params {
					out = append(out, "\t"+k+" = "+v)
				}
			}
			continue
		}
		if inGlobal {
			if k, _, ok := strings.Cut(trimmed, "="); ok {
				if _, set := params[strings.ToLower(strings.TrimSpace(k))]; set {
					continue // replaced by ours
				}
			}
		}
		out = append(out, line)
	}
	return os.WriteFile(path, []byte(strings.Join(out, "\n")), 0o644)
}

// runSamba runs a Samba tool, with its output in the error.
func runSamba(dir, bin string, args ...string) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		// Passwords are arguments: keep them out of the message.
		return fmt.Errorf("%s %s: %w\n%s", filepath.Base(bin), strings.Join(args[:min(len(args), 2)], " "), err, out)
	}
	return nil
}

// adPassword is a random password that meets Samba's default complexity rules.
func adPassword() string { return "Aa1!" + rand.Text()[:20] }

func isDir(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.IsDir()
}
