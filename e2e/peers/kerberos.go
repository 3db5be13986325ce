package peers

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jcmturner/gokrb5/v8/client"
	krbconfig "github.com/jcmturner/gokrb5/v8/config"
	"github.com/jcmturner/gokrb5/v8/credentials"
	"github.com/jcmturner/gokrb5/v8/messages"
	"github.com/jcmturner/gokrb5/v8/spnego"
)

// KDC is the Kerberos side of the Samba AD DC: the realm's KDC on
// 127.0.0.1:88, and MIT's client tools (kinit, kvno from krb5-user) set up
// to use it through a private krb5.conf.
type KDC struct {
	ad     *ADServer
	Realm  string // EXAMPLE.TEST
	Config string // the krb5.conf for KRB5_CONFIG

	mu       sync.Mutex
	services map[string]Service // by host
}

// Service is an account that holds the SPN HTTP/Host, with its keys exported.
type Service struct {
	Host      string // fedhub.example.test
	Principal string // HTTP/fedhub.example.test
	Keytab    string // the keytab file samba-tool domain exportkeytab wrote
}

const (
	kinitBin = "/usr/bin/kinit"
	kvnoBin  = "/usr/bin/kvno"
)

// Kerberos returns the KDC of the test binary's Samba AD DC, writing its
// krb5.conf on first use.
func (s *ADServer) Kerberos(t testing.TB) *KDC {
	t.Helper()
	if !isFile(kinitBin) || !isFile(kvnoBin) {
		t.Fatal("MIT Kerberos tools not installed: run the tests with scripts/test, which installs krb5-user")
	}
	kdcOnce.Do(func() {
		conf := filepath.Join(s.Dir, "krb5.conf")
		// The realm block must span several lines: MIT does not parse the one-line form.
		text := "[libdefaults]\n\tdefault_realm = " + s.Realm + "\n\tdns_lookup_kdc = false\n\tdns_lookup_realm = false\n\trdns = false\n" +
			"\tdns_canonicalize_hostname = false\n\n[realms]\n\t" + s.Realm + " = {\n\t\tkdc = 127.0.0.1\n\t}\n"
		kdcErr = os.WriteFile(conf, []byte(text), 0o644)
		kdc = &KDC{ad: s, Realm: s.Realm, Config: conf, services: map[string]Service{}}
	})
	if kdcErr != nil {
		t.Fatalf("peers: krb5.conf: %v", kdcErr)
	}
	return kdc
}

var (
	kdcOnce sync.Once
	kdc     *KDC
	kdcErr  error
)

// Service returns the account holding HTTP/host, creating it (a user
// account named after the host, with the SPN) and exporting its keys to a
// keytab on first use.
func (k *KDC) Service(t testing.TB, host string) Service {
	t.Helper()
	k.mu.Lock()
	defer k.mu.Unlock()
	if svc, ok := k.services[host]; ok {
		return svc
	}
	account := "svc-http-" + strings.ReplaceAll(strings.SplitN(host, ".", 2)[0], "_", "-")
	svc := Service{Host: host, Principal: "HTTP/" + host, Keytab: filepath.Join(k.ad.Dir, account+".keytab")}
	for _, args := range [][]string{
		{"user", "create", account, adPassword()},
		{"spn", "add", svc.Principal, account},
		{"domain", "exportkeytab", svc.Keytab, "--principal=" + svc.Principal},
	} {
		if err := k.ad.Tool(args...); err != nil {
			t.Fatalf("peers: Kerberos service %s: %v", host, err)
		}
	}
	k.services[host] = svc
	return svc
}

// Env is the environment of a Kerberos client (MIT's tools, curl,
// Chromium) that uses the realm and the ticket cache ccache.
func (k *KDC) Env(ccache string) []string {
	return []string{"KRB5_CONFIG=" + k.Config, "KRB5CCNAME=FILE:" + ccache}
}

// Kinit gets a ticket-granting ticket for user (a sAMAccountName) with MIT
// kinit into a new private ticket cache, and returns the cache's path.
// Extra arguments go to kinit (-l 10s: a short lifetime).
func (k *KDC) Kinit(t testing.TB, user, password string, args ...string) string {
	t.Helper()
	ccache := filepath.Join(t.TempDir(), "ccache")
	args = append(args, user+"@"+k.Realm)
	if out, err := k.run(ccache, password+"\n", kinitBin, args...); err != nil {
		t.Fatalf("kinit %s: %v\n%s", user, err, out)
	}
	return ccache
}

// Token returns what a browser would send in "Authorization: Negotiate …"
// to service: an SPNEGO token with a fresh authenticator and the service
// ticket for it in ccache, which MIT kvno gets first when there is none.
// Unlike a browser it sends a cached ticket whatever its lifetime says, so
// that tests can present expired tickets, and replay tokens.
func (k *KDC) Token(t testing.TB, ccache, service string) []byte {
	t.Helper()
	cl, cred := serviceTicket(t, ccache, service)
	if cred == nil {
		if out, err := k.run(ccache, "", kvnoBin, service); err != nil {
			t.Fatalf("kvno %s: %v\n%s", service, err, out)
		}
		if cl, cred = serviceTicket(t, ccache, service); cred == nil {
			t.Fatalf("no ticket for %s in the cache after kvno", service)
		}
	}
	var tkt messages.Ticket
	if err := tkt.Unmarshal(cred.Ticket); err != nil {
		t.Fatalf("service ticket: %v", err)
	}
	init, err := spnego.NewNegTokenInitKRB5(cl, tkt, cred.Key)
	if err != nil {
		t.Fatalf("SPNEGO token: %v", err)
	}
	b, err := (&spnego.SPNEGOToken{Init: true, NegTokenInit: init}).Marshal()
	if err != nil {
		t.Fatalf("SPNEGO token: %v", err)
	}
	return b
}

// serviceTicket reads ccache: its client, and its ticket for service (nil if none).
func serviceTicket(t testing.TB, ccache, service string) (*client.Client, *credentials.Credential) {
	t.Helper()
	cc, err := credentials.LoadCCache(ccache)
	if err != nil {
		t.Fatalf("read ticket cache: %v", err)
	}
	cl, err := client.NewFromCCache(cc, krbconfig.New())
	if err != nil {
		t.Fatalf("ticket cache: %v", err)
	}
	for _, cred := range cc.GetEntries() {
		if cred.Server.PrincipalName.PrincipalNameString() == service {
			return cl, cred
		}
	}
	return cl, nil
}

// run runs a Kerberos client tool with the realm's configuration and ccache.
func (k *KDC) run(ccache, stdin, bin string, args ...string) (string, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, args...)
	cmd.Env = append(os.Environ(), k.Env(ccache)...)
	cmd.Stdin = strings.NewReader(stdin)
	out, err := cmd.CombinedOutput()
	if err != nil {
		return string(out), fmt.Errorf("%s: %w", filepath.Base(bin), err)
	}
	return string(out), nil
}
