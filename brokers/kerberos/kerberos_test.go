package kerberos

import (
	"context"
	"errors"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// TestVerify checks the verification of real tickets: Samba AD DC is the
// KDC, MIT kinit and kvno get the tickets, the keytab is samba-tool's export.
func TestVerify(t *testing.T) {
	ad := peers.SambaAD(t)
	kdc := ad.Kerberos(t)
	svc := kdc.Service(t, "fedhub.example.test")
	other := kdc.Service(t, "other.example.test")
	alice := ad.Users["alice"]
	ccache := kdc.Kinit(t, alice.Username, alice.Password)

	cases := []struct {
		name    string
		service string        // the SPN the token is for
		shift   time.Duration // the connector's clock against the real one
		realm   string        // the connector's realm, when not the KDC's
		twice   bool          // the same token is presented a second time
		want    error         // nil: accepted
	}{
		{name: "good ticket", service: svc.Principal},
		{name: "ticket for another service", service: other.Principal, want: errOtherService},
		{name: "expired ticket", service: svc.Principal, shift: 11 * time.Hour, want: errExpired},
		{name: "ticket not valid yet", service: svc.Principal, shift: -time.Hour, want: errNotYetValid},
		{name: "authenticator outside the clock skew", service: svc.Principal, shift: 6 * time.Minute, want: errSkew},
		{name: "wrong realm", service: svc.Principal, realm: "OTHER.TEST", want: errOtherRealm},
		{name: "replayed authenticator", service: svc.Principal, twice: true, want: errReplay},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c, err := New(Config{KeytabFile: svc.Keytab, ServicePrincipal: svc.Principal, Realm: kdc.Realm},
				Options{Replays: brokers.NewConnectorStore(storetest.Open(t, "sqlite", brokers.Models()...), "krb", nil),
					Now: func() time.Time { return time.Now().Add(tc.shift) }})
			if err != nil {
				t.Fatal(err)
			}
			if tc.realm != "" {
				c.cfg.Realm = tc.realm
			}
			token := kdc.Token(t, ccache, tc.service)
			id, err := c.Negotiate(t.Context(), token)
			if tc.twice {
				if err != nil {
					t.Fatalf("first use: %v", err)
				}
				_, err = c.Negotiate(t.Context(), token)
			}
			if !errors.Is(err, tc.want) {
				t.Fatalf("Negotiate: %v, want %v", err, tc.want)
			}
			if tc.want == nil && !tc.twice && (id.Subject != "alice@"+kdc.Realm || id.Username != "alice" || id.AuthTime.IsZero()) {
				t.Fatalf("identity = %+v", id)
			}
		})
	}

	t.Run("not Kerberos (NTLM)", func(t *testing.T) {
		c, err := New(Config{KeytabFile: svc.Keytab, ServicePrincipal: svc.Principal, Realm: kdc.Realm},
			Options{Replays: brokers.NewConnectorStore(storetest.Open(t, "sqlite", brokers.Models()...), "krb", nil)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.Negotiate(t.Context(), []byte("NTLMSSP\x00\x01\x00\x00\x00")); !errors.Is(err, brokers.ErrNoNegotiation) {
			t.Fatalf("Negotiate(NTLM) = %v, want ErrNoNegotiation", err)
		}
	})

	t.Run("resolve_with", func(t *testing.T) {
		r := &resolverFunc{}
		c, err := New(Config{KeytabFile: svc.Keytab, ServicePrincipal: svc.Principal, Realm: kdc.Realm, ResolveWith: "corp-ad"},
			Options{Replays: brokers.NewConnectorStore(storetest.Open(t, "sqlite", brokers.Models()...), "krb", nil), Resolver: r})
		if err != nil {
			t.Fatal(err)
		}
		id, err := c.Negotiate(t.Context(), kdc.Token(t, ccache, svc.Principal))
		if err != nil || r.asked != "alice@"+kdc.Realm || id.Connector != "corp-ad" || id.Subject != "guid-of-alice" {
			t.Fatalf("Negotiate = %+v, %v (asked %q)", id, err, r.asked)
		}
	})
}

// resolverFunc resolves every principal to one directory identity.
type resolverFunc struct{ asked string }

func (r *resolverFunc) ResolvePrincipal(_ context.Context, principal string) (login.Identity, error) {
	r.asked = principal
	return login.Identity{Subject: "guid-of-alice", Username: "alice"}, nil
}

func TestConfigValidate(t *testing.T) {
	good := Config{KeytabFile: "k", ServicePrincipal: "HTTP/sso.example.com", Realm: "EXAMPLE.COM", AutoFor: []string{"10.0.0.0/8"}}
	cases := []struct {
		name string
		edit func(*Config)
		want string // "" valid; otherwise the key the error names
	}{
		{"valid", func(*Config) {}, ""},
		{"no keytab", func(c *Config) { c.KeytabFile = "" }, "keytab_file"},
		{"no SPN", func(c *Config) { c.ServicePrincipal = "" }, "service_principal"},
		{"SPN with realm", func(c *Config) { c.ServicePrincipal = "HTTP/sso.example.com@EXAMPLE.COM" }, "service_principal"},
		{"SPN without host", func(c *Config) { c.ServicePrincipal = "HTTP" }, "service_principal"},
		{"no realm", func(c *Config) { c.Realm = "" }, "realm"},
		{"negative skew", func(c *Config) { c.ClockSkew = -time.Second }, "clock_skew"},
		{"bad CIDR", func(c *Config) { c.AutoFor = []string{"10.0.0.0"} }, "auto_for"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			tc.edit(&c)
			err := c.Validate()
			if (tc.want == "") != (err == nil) || (err != nil && !strings.HasPrefix(err.Error(), tc.want+":")) {
				t.Fatalf("Validate() = %v, want an error naming %q", err, tc.want)
			}
		})
	}
}

func TestAutomatic(t *testing.T) {
	c := &Connector{}
	c.networks, _ = Config{AutoFor: []string{"10.0.0.0/8", "2001:db8::/32"}}.networks()
	for ip, want := range map[string]bool{"10.1.2.3": true, "::ffff:10.1.2.3": true, "2001:db8::1": true,
		"192.168.1.1": false, "": false, "not an address": false} {
		if got := c.Automatic(ip); got != want {
			t.Errorf("Automatic(%q) = %v, want %v", ip, got, want)
		}
	}
}
