package passkey

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

const (
	testRPID   = "login.example.com"
	testOrigin = "https://login.example.com"
)

// t0 is a whole second, so that every database stores it exactly.
var t0 = time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)

// clock is a settable time for a Service.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// fixture is a Service on one database, with a clock and helpers that run ceremonies.
type fixture struct {
	t     *testing.T
	ctx   context.Context
	db    *gorm.DB
	clock *clock
	s     *Service
}

func newFixture(t *testing.T, db *gorm.DB) *fixture {
	t.Helper()
	c := &clock{t: t0}
	s, err := New(db, Config{RPID: testRPID, RPName: "fedhub", Origins: []string{testOrigin}, Now: c.now})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return &fixture{t: t, ctx: context.Background(), db: db, clock: c, s: s}
}

func forEachDB(t *testing.T, fn func(t *testing.T, f *fixture)) {
	storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) { fn(t, newFixture(t, db)) })
}

// user returns a user with a fresh ID (so that cases sharing a database never meet).
func user(name string) User {
	return User{ID: "u-" + secret.Token(16), Username: name, DisplayName: strings.ToUpper(name[:1]) + name[1:]}
}

func binding() string { return secret.Token(32) }

// register runs a whole honest registration of a for u and returns the credential.
func (f *fixture) register(u User, a *authenticator, name string) Credential {
	f.t.Helper()
	b := binding()
	opts, err := f.s.BeginRegistration(f.ctx, b, u)
	if err != nil {
		f.t.Fatalf("BeginRegistration(%s): %v", u.Username, err)
	}
	c, err := f.s.FinishRegistration(f.ctx, b, u, name, a.create(f.t, opts, answer{}))
	if err != nil {
		f.t.Fatalf("FinishRegistration(%s): %v", u.Username, err)
	}
	return c
}

// login runs a second-factor login of userID answered by a.
func (f *fixture) login(userID string, a *authenticator, ans answer) (Credential, error) {
	f.t.Helper()
	b := binding()
	opts, err := f.s.BeginLogin(f.ctx, b, userID)
	if err != nil {
		return Credential{}, err
	}
	return f.s.FinishLogin(f.ctx, b, userID, a.get(f.t, opts, ans))
}

// discover runs a discoverable login answered by a.
func (f *fixture) discover(a *authenticator, ans answer) (string, Credential, error) {
	f.t.Helper()
	b := binding()
	opts, err := f.s.BeginDiscoverableLogin(f.ctx, b)
	if err != nil {
		f.t.Fatalf("BeginDiscoverableLogin: %v", err)
	}
	return f.s.FinishDiscoverableLogin(f.ctx, b, a.get(f.t, opts, ans))
}

// stored reads a credential as the database has it.
func (f *fixture) stored(id string) Credential {
	f.t.Helper()
	var c Credential
	if err := f.db.Take(&c, "id = ?", id).Error; err != nil {
		f.t.Fatalf("read credential %s: %v", id, err)
	}
	return c
}

func (f *fixture) count(userID string) int {
	f.t.Helper()
	cs, err := f.s.Credentials(f.ctx, userID)
	if err != nil {
		f.t.Fatalf("Credentials: %v", err)
	}
	return len(cs)
}

func ptr[T any](v T) *T { return &v }

func TestNewRefusesBadConfig(t *testing.T) {
	db := storetest.Open(t, "sqlite", Models()...)
	for _, tc := range []struct {
		name string
		cfg  Config
	}{
		{"no RP ID", Config{Origins: []string{testOrigin}}},
		{"RP ID is a URL", Config{RPID: "https://login.example.com", Origins: []string{testOrigin}}},
		{"RP ID is an IP address", Config{RPID: "192.0.2.1", Origins: []string{"https://192.0.2.1"}}},
		{"no origins", Config{RPID: testRPID}},
		{"origin outside the RP ID", Config{RPID: testRPID, Origins: []string{"https://evil.example.com"}}},
		{"origin on a suffix that is not a subdomain", Config{RPID: "example.com", Origins: []string{"https://badexample.com"}}},
		{"plain http", Config{RPID: testRPID, Origins: []string{"http://login.example.com"}}},
		{"origin with a path", Config{RPID: testRPID, Origins: []string{testOrigin + "/login"}}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if _, err := New(db, tc.cfg); err == nil {
				t.Errorf("New(%+v) succeeded", tc.cfg)
			}
		})
	}
	for _, cfg := range []Config{
		{RPID: testRPID, Origins: []string{testOrigin}},
		{RPID: "example.com", Origins: []string{"https://login.example.com", "https://example.com:8443"}},
		{RPID: "localhost", Origins: []string{"http://localhost:8080"}},
	} {
		if _, err := New(db, cfg); err != nil {
			t.Errorf("New(%+v): %v", cfg, err)
		}
	}
}

// TestRegistrationOptions: what the browser is asked for.
func TestRegistrationOptions(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		b := binding()
		data, err := f.s.BeginRegistration(f.ctx, b, alice)
		if err != nil {
			t.Fatal(err)
		}
		o := parseOptions(t, data).PublicKey
		if o.RP.ID != testRPID || o.RP.Name != "fedhub" {
			t.Errorf("rp = %+v", o.RP)
		}
		if h, _ := b64.DecodeString(o.User.ID); string(h) != alice.ID || o.User.Name != "alice" || o.User.DisplayName != "Alice" {
			t.Errorf("user = %+v, want the ID %s base64url-encoded", o.User, alice.ID)
		}
		if c, err := b64.DecodeString(o.Challenge); err != nil || len(c) < 16 {
			t.Errorf("challenge %q: %d bytes, %v", o.Challenge, len(c), err)
		}
		sel := o.AuthenticatorSelection
		if sel.ResidentKey != "preferred" || sel.UserVerification != "preferred" || sel.RequireResidentKey == nil || *sel.RequireResidentKey {
			t.Errorf("authenticatorSelection = %+v, want residentKey and userVerification preferred", sel)
		}
		if o.Attestation != "none" {
			t.Errorf("attestation = %q, want none", o.Attestation)
		}
		if o.Timeout != int(ChallengeTTL/time.Millisecond) {
			t.Errorf("timeout = %d", o.Timeout)
		}
		es256 := false
		for _, p := range o.PubKeyCredParams {
			es256 = es256 || p.Type == "public-key" && p.Alg == -7
		}
		if !es256 {
			t.Errorf("pubKeyCredParams %+v lack ES256", o.PubKeyCredParams)
		}
		if o.Extensions["credProps"] != true {
			t.Errorf("extensions = %v, want credProps", o.Extensions)
		}
		if len(o.ExcludeCredentials) != 0 {
			t.Errorf("excludeCredentials = %+v for a user without credentials", o.ExcludeCredentials)
		}

		// The challenge is stored under the binding's hash, never the binding itself.
		var rows []Challenge
		if err := f.db.Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].BindingHash != secret.Hash(b) || rows[0].UserID != alice.ID ||
			!rows[0].ExpiresAt.Equal(t0.Add(5*time.Minute)) || strings.Contains(rows[0].Session, b) {
			t.Errorf("stored challenges = %+v", rows)
		}

		// A second key: the first is excluded, with its transports.
		first := f.register(alice, newAuthenticator(t), "Laptop")
		data, err = f.s.BeginRegistration(f.ctx, binding(), alice)
		if err != nil {
			t.Fatal(err)
		}
		ex := parseOptions(t, data).PublicKey.ExcludeCredentials
		if len(ex) != 1 || ex[0].ID != first.ID || ex[0].Type != "public-key" || strings.Join(ex[0].Transports, ",") != "internal,hybrid" {
			t.Errorf("excludeCredentials = %+v, want %s", ex, first.ID)
		}
	})
}

// TestRegisterAndLogin: the honest ceremonies, and what they store.
func TestRegisterAndLogin(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := user("alice"), user("bob")
		phone := newAuthenticator(t)
		phone.extraFlags = flagBE | flagBS // a synced passkey
		key := newAuthenticator(t)
		key.residentKey = false // a security key without a discoverable credential

		c := f.register(alice, phone, "  My\tphone  ")
		if c.ID != b64.EncodeToString(phone.id) || c.UserID != alice.ID || c.Name != "Myphone" {
			t.Errorf("registered %+v", c)
		}
		f.clock.advance(time.Minute)
		c2 := f.register(alice, key, "")
		bobKey := newAuthenticator(t)
		bobs := f.register(bob, bobKey, "Bob's key")

		got := f.stored(c.ID)
		if !got.CreatedAt.Equal(t0) || got.LastUsedAt != nil || !got.Discoverable || got.CloneWarning ||
			!got.UserVerified || !got.BackupEligible || !got.BackupState || got.SignCount != 0 ||
			string(got.AAGUID) != string(phone.aaguid) || got.Transports != "internal,hybrid" ||
			got.Attachment != "platform" || got.AttestationFormat != "none" || len(got.PublicKey) == 0 {
			t.Errorf("stored %+v", got)
		}
		if got := f.stored(c2.ID); got.Name != DefaultName || got.Discoverable || got.BackupEligible {
			t.Errorf("stored security key %+v, want the default name, not discoverable, not backed up", got)
		}
		list, err := f.s.Credentials(f.ctx, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(list) != 2 || list[0].ID != c.ID || list[1].ID != c2.ID {
			t.Errorf("Credentials(alice) = %+v, want the phone then the key", list)
		}

		// Second factor: the options allow exactly alice's credentials.
		b := binding()
		data, err := f.s.BeginLogin(f.ctx, b, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		o := parseOptions(t, data).PublicKey
		if o.RPID != testRPID || o.UserVerification != "preferred" || len(o.AllowCredentials) != 2 ||
			o.AllowCredentials[0].ID != c.ID || o.AllowCredentials[1].ID != c2.ID {
			t.Errorf("login options = %+v", o)
		}
		f.clock.advance(time.Minute)
		used, err := f.s.FinishLogin(f.ctx, b, alice.ID, key.get(t, data, answer{noUserHandle: true}))
		if err != nil {
			t.Fatalf("FinishLogin: %v", err)
		}
		now := t0.Add(2 * time.Minute)
		if used.ID != c2.ID || used.SignCount != 1 || used.LastUsedAt == nil || !used.LastUsedAt.Equal(now) {
			t.Errorf("FinishLogin returned %+v", used)
		}
		if got := f.stored(c2.ID); got.SignCount != 1 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(now) {
			t.Errorf("after a login, stored %+v: want sign count 1, last used %v", got, now)
		}
		if got := f.stored(c.ID); got.SignCount != 0 || got.LastUsedAt != nil {
			t.Errorf("the credential not used changed: %+v", got)
		}

		// Passwordless: the options ask for user verification and allow any credential.
		b = binding()
		data, err = f.s.BeginDiscoverableLogin(f.ctx, b)
		if err != nil {
			t.Fatal(err)
		}
		o = parseOptions(t, data).PublicKey
		if o.UserVerification != "required" || len(o.AllowCredentials) != 0 || o.RPID != testRPID {
			t.Errorf("discoverable options = %+v", o)
		}
		for i := range 3 {
			f.clock.advance(time.Minute)
			if i > 0 {
				b = binding()
				if data, err = f.s.BeginDiscoverableLogin(f.ctx, b); err != nil {
					t.Fatal(err)
				}
			}
			who, used, err := f.s.FinishDiscoverableLogin(f.ctx, b, phone.get(t, data, answer{}))
			if err != nil {
				t.Fatalf("FinishDiscoverableLogin %d: %v", i, err)
			}
			if who != alice.ID || used.ID != c.ID || used.SignCount != uint32(i+1) || !used.LoginUserVerified {
				t.Errorf("discoverable login %d = %s, %+v; want alice's phone with count %d", i, who, used, i+1)
			}
		}
		if got := f.stored(c.ID); got.SignCount != 3 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0.Add(5*time.Minute)) {
			t.Errorf("after three discoverable logins, stored %+v", got)
		}

		// The security key was not reported discoverable; a passwordless login with it says it is.
		if who, used, err := f.discover(key, answer{}); err != nil || who != alice.ID || used.ID != c2.ID || !used.Discoverable {
			t.Errorf("discoverable login with the security key = %s, %+v, %v", who, used, err)
		}
		if got := f.stored(c2.ID); !got.Discoverable || got.SignCount != 2 {
			t.Errorf("stored security key %+v, want discoverable and sign count 2", got)
		}

		// LoginUserVerified says whether this login verified the user, whatever was stored.
		for _, tc := range []struct {
			flags byte
			want  bool
		}{{flagUP, false}, {flagUP | flagUV, true}, {flagUP, false}} {
			used, err := f.login(alice.ID, key, answer{flags: ptr(tc.flags)})
			if err != nil || used.LoginUserVerified != tc.want || !used.UserVerified {
				t.Errorf("login with flags %#x = %+v, %v; want LoginUserVerified %v (and UserVerified kept)", tc.flags, used, err, tc.want)
			}
		}
		if got := f.stored(c2.ID); !got.UserVerified || got.LoginUserVerified {
			t.Errorf("stored %+v", got)
		}

		// Bob logs in with his own credential; a key that only copies its ID does not.
		if used, err := f.login(bob.ID, bobKey, answer{}); err != nil || used.ID != bobs.ID {
			t.Errorf("bob's login = %+v, %v", used, err)
		}
		if used, err := f.login(bob.ID, impostor(t, bobs), answer{}); !errors.Is(err, ErrVerification) {
			t.Errorf("a login with another key under bob's credential ID = %+v, %v; want ErrVerification", used, err)
		}
	})
}

// impostor returns an authenticator with c's ID but a new key: something that looks like c
// without being it.
func impostor(t *testing.T, c Credential) *authenticator {
	a := newAuthenticator(t)
	id, err := b64.DecodeString(c.ID)
	if err != nil {
		t.Fatal(err)
	}
	a.id = id
	return a
}

// TestCountersAbsent: an authenticator that keeps no counter (always 0) logs in every time.
func TestCountersAbsent(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		a := newAuthenticator(t)
		a.zeroCounter = true
		c := f.register(alice, a, "Passkey")
		for i := range 3 {
			if _, err := f.login(alice.ID, a, answer{}); err != nil {
				t.Fatalf("login %d with a counterless authenticator: %v", i, err)
			}
			if _, _, err := f.discover(a, answer{}); err != nil {
				t.Fatalf("discoverable login %d with a counterless authenticator: %v", i, err)
			}
		}
		if got := f.stored(c.ID); got.SignCount != 0 || got.CloneWarning {
			t.Errorf("stored %+v", got)
		}
	})
}

// TestRefused: every way a ceremony must fail (and a near miss that must not), and that a
// failure changes nothing it must not.
func TestRefused(t *testing.T) {
	type env struct {
		f          *fixture
		alice, bob User
		aliceKey   *authenticator // registered to alice, used once already (count 1)
		bobKey     *authenticator // registered to bob
		aliceCred  Credential
		bobCred    Credential
	}
	cases := []struct {
		name string
		run  func(t *testing.T, e *env) error
		want error
		// check runs after run, for what the failure must (not) have changed.
		check func(t *testing.T, e *env)
	}{
		{
			name: "registration from another origin",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, newAuthenticator(t), answer{origin: "https://evil.example.net"})
			},
			want: ErrVerification,
		},
		{
			name: "registration from a subdomain that is not a configured origin",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, newAuthenticator(t), answer{origin: "https://x.login.example.com"})
			},
			want: ErrVerification,
		},
		{
			name: "registration for another RP ID",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, newAuthenticator(t), answer{rpID: "evil.example.net"})
			},
			want: ErrVerification,
		},
		{
			name: "registration without user presence",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, newAuthenticator(t), answer{flags: ptr[byte](flagUV | flagAT)})
			},
			want: ErrVerification,
		},
		{
			name: "registration answered as a login",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, newAuthenticator(t), answer{typ: "webauthn.get"})
			},
			want: ErrVerification,
		},
		{
			name: "replayed registration",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginRegistration(e.f.ctx, b, e.alice)
				if err != nil {
					return err
				}
				resp := newAuthenticator(t).create(t, opts, answer{})
				if _, err := e.f.s.FinishRegistration(e.f.ctx, b, e.alice, "once", resp); err != nil {
					t.Fatalf("first FinishRegistration: %v", err)
				}
				_, err = e.f.s.FinishRegistration(e.f.ctx, b, e.alice, "twice", resp)
				return err
			},
			want: ErrChallenge,
			check: func(t *testing.T, e *env) {
				if n := e.f.count(e.alice.ID); n != 2 {
					t.Errorf("alice has %d credentials, want 2", n)
				}
			},
		},
		{
			name: "registration finished with another binding",
			run: func(t *testing.T, e *env) error {
				opts, err := e.f.s.BeginRegistration(e.f.ctx, binding(), e.alice)
				if err != nil {
					return err
				}
				_, err = e.f.s.FinishRegistration(e.f.ctx, binding(), e.alice, "", newAuthenticator(t).create(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "registration begun for alice finished for bob",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginRegistration(e.f.ctx, b, e.alice)
				if err != nil {
					return err
				}
				_, err = e.f.s.FinishRegistration(e.f.ctx, b, e.bob, "", newAuthenticator(t).create(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
			check: func(t *testing.T, e *env) {
				if n := e.f.count(e.bob.ID); n != 1 {
					t.Errorf("bob has %d credentials, want 1", n)
				}
			},
		},
		{
			name: "registration of a credential someone already has",
			run: func(t *testing.T, e *env) error {
				return e.f.registerWith(e.alice, e.bobKey, answer{})
			},
			want: ErrExists,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.bobCred.ID); got.UserID != e.bob.ID {
					t.Errorf("bob's credential now belongs to %s", got.UserID)
				}
			},
		},
		{
			name: "registration after the challenge expired",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginRegistration(e.f.ctx, b, e.alice)
				if err != nil {
					return err
				}
				e.f.clock.advance(ChallengeTTL)
				_, err = e.f.s.FinishRegistration(e.f.ctx, b, e.alice, "", newAuthenticator(t).create(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "registration begun before a reset",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginRegistration(e.f.ctx, b, e.alice)
				if err != nil {
					return err
				}
				if err := e.f.s.Reset(e.f.ctx, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				_, err = e.f.s.FinishRegistration(e.f.ctx, b, e.alice, "", newAuthenticator(t).create(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
			check: func(t *testing.T, e *env) {
				if n := e.f.count(e.alice.ID); n != 0 {
					t.Errorf("alice has %d credentials after the reset, want 0", n)
				}
			},
		},
		{
			name: "login from another origin",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{origin: "https://evil.example.net"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login from http on the right host",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{origin: "http://login.example.com"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with another RP ID hash",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{rpID: "evil.example.net"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with the parent domain's RP ID hash",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{rpID: "example.com"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login without user presence",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{flags: ptr[byte](flagUV)})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login signed by another key",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{signer: newAuthenticator(t).key})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login answered as a registration",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{typ: "webauthn.create"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with a registration response",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.create(t, opts, answer{}))
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with a response that is not JSON",
			run: func(t *testing.T, e *env) error {
				b := binding()
				if _, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID); err != nil {
					return err
				}
				_, err := e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, []byte(`{"id":`))
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with a response over 64 KiB",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				resp := e.aliceKey.get(t, opts, answer{})
				resp = append(resp[:len(resp)-1], []byte(`,"pad":"`+strings.Repeat("x", MaxResponseSize)+`"}`)...)
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, resp)
				return err
			},
			want: ErrVerification,
		},
		{
			name: "replayed login",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				resp := e.aliceKey.get(t, opts, answer{})
				if _, err := e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, resp); err != nil {
					t.Fatalf("first FinishLogin: %v", err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, resp)
				return err
			},
			want: ErrChallenge,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.aliceCred.ID); got.SignCount != 2 {
					t.Errorf("sign count %d, want 2 (one more login)", got.SignCount)
				}
			},
		},
		{
			name: "replayed login against a new challenge of the same binding",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				resp := e.aliceKey.get(t, opts, answer{})
				if _, err := e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, resp); err != nil {
					t.Fatalf("first FinishLogin: %v", err)
				}
				if _, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, resp)
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login whose first finish failed cannot be retried",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				bad := e.aliceKey.get(t, opts, answer{origin: "https://evil.example.net"})
				if _, err := e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, bad); !errors.Is(err, ErrVerification) {
					t.Fatalf("first FinishLogin = %v, want ErrVerification", err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login finished with another binding",
			run: func(t *testing.T, e *env) error {
				opts, err := e.f.s.BeginLogin(e.f.ctx, binding(), e.alice.ID)
				if err != nil {
					return err
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, binding(), e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login finished with another binding that has a challenge of its own",
			run: func(t *testing.T, e *env) error {
				mine, theirs := binding(), binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, mine, e.alice.ID)
				if err != nil {
					return err
				}
				if _, err := e.f.s.BeginLogin(e.f.ctx, theirs, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				resp := e.aliceKey.get(t, opts, answer{})
				_, err = e.f.s.FinishLogin(e.f.ctx, theirs, e.alice.ID, resp)
				// The refusal neither used nor spent the right binding's challenge.
				if _, err := e.f.s.FinishLogin(e.f.ctx, mine, e.alice.ID, resp); err != nil {
					t.Errorf("the response at its own binding, afterwards: %v", err)
				}
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login with an empty binding",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.s.FinishLogin(e.f.ctx, "", e.alice.ID, []byte(`{}`))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login begun for alice finished as bob",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.bob.ID, e.bobKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login of alice with bob's credential",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.bobKey, answer{})
				return err
			},
			want: ErrNotFound,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.bobCred.ID); got.SignCount != 0 || got.LastUsedAt != nil {
					t.Errorf("bob's credential changed: %+v", got)
				}
			},
		},
		{
			name: "login of alice with bob's credential claiming alice's user handle",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.bobKey, answer{userHandle: []byte(e.alice.ID)})
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login with a credential ID no one has",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, newAuthenticator(t), answer{})
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login of a user without credentials",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.s.BeginLogin(e.f.ctx, binding(), user("carol").ID)
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login with a user handle that is not the user's",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{userHandle: []byte(e.bob.ID)})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "login with a sign counter that went backwards",
			run: func(t *testing.T, e *env) error {
				if _, err := e.f.login(e.alice.ID, e.aliceKey, answer{count: ptr[uint32](5)}); err != nil {
					t.Fatalf("login with count 5: %v", err)
				}
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{count: ptr[uint32](3)})
				return err
			},
			want: ErrVerification,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.aliceCred.ID); !got.CloneWarning || got.SignCount != 5 {
					t.Errorf("stored %+v, want the clone warning and the count kept at 5", got)
				}
				list, _ := e.f.s.Credentials(e.f.ctx, e.alice.ID)
				if len(list) != 1 || !list[0].CloneWarning {
					t.Errorf("Credentials does not show the clone warning: %+v", list)
				}
			},
		},
		{
			name: "login with a sign counter that did not grow",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{count: ptr[uint32](1)})
				return err
			},
			want: ErrVerification,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.aliceCred.ID); !got.CloneWarning || got.SignCount != 1 || got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0) {
					t.Errorf("stored %+v, want the clone warning and nothing else changed", got)
				}
			},
		},
		{
			name: "login with a sign counter that fell to zero",
			run: func(t *testing.T, e *env) error {
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{count: ptr[uint32](0)})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "discoverable login from another origin",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.aliceKey, answer{origin: "https://evil.example.net"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "discoverable login with another RP ID hash",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.aliceKey, answer{rpID: "evil.example.net"})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "discoverable login without user verification",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.aliceKey, answer{flags: ptr[byte](flagUP)})
				return err
			},
			want: ErrVerification,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.aliceCred.ID); got.SignCount != 1 {
					t.Errorf("sign count %d after a refused login, want 1", got.SignCount)
				}
			},
		},
		{
			name: "discoverable login without a user handle",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.aliceKey, answer{noUserHandle: true})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "discoverable login with bob's credential claiming alice's user handle",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.bobKey, answer{userHandle: []byte(e.alice.ID)})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "discoverable login with a credential ID no one has",
			run: func(t *testing.T, e *env) error {
				a := newAuthenticator(t)
				a.handle = []byte(e.alice.ID)
				_, _, err := e.f.discover(a, answer{})
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "discoverable login signed by another key",
			run: func(t *testing.T, e *env) error {
				_, _, err := e.f.discover(e.aliceKey, answer{signer: newAuthenticator(t).key})
				return err
			},
			want: ErrVerification,
		},
		{
			name: "replayed discoverable login",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginDiscoverableLogin(e.f.ctx, b)
				if err != nil {
					return err
				}
				resp := e.aliceKey.get(t, opts, answer{})
				if _, _, err := e.f.s.FinishDiscoverableLogin(e.f.ctx, b, resp); err != nil {
					t.Fatalf("first FinishDiscoverableLogin: %v", err)
				}
				_, _, err = e.f.s.FinishDiscoverableLogin(e.f.ctx, b, resp)
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "discoverable login finished with another binding",
			run: func(t *testing.T, e *env) error {
				opts, err := e.f.s.BeginDiscoverableLogin(e.f.ctx, binding())
				if err != nil {
					return err
				}
				_, _, err = e.f.s.FinishDiscoverableLogin(e.f.ctx, binding(), e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "discoverable login answering a second-factor challenge of the same binding",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				_, _, err = e.f.s.FinishDiscoverableLogin(e.f.ctx, b, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "discoverable login after the challenge expired",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginDiscoverableLogin(e.f.ctx, b)
				if err != nil {
					return err
				}
				e.f.clock.advance(ChallengeTTL + time.Second)
				_, _, err = e.f.s.FinishDiscoverableLogin(e.f.ctx, b, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login after the challenge expired",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				e.f.clock.advance(ChallengeTTL)
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "login with a removed credential",
			run: func(t *testing.T, e *env) error {
				if err := e.f.s.Remove(e.f.ctx, e.alice.ID, e.aliceCred.ID); err != nil {
					t.Fatal(err)
				}
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{})
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login with a credential removed between Begin and Finish",
			run: func(t *testing.T, e *env) error {
				e.f.register(e.alice, newAuthenticator(t), "spare") // so that alice still has one
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				if err := e.f.s.Remove(e.f.ctx, e.alice.ID, e.aliceCred.ID); err != nil {
					t.Fatal(err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login with a credential removed between Begin and Finish (the other one is fine)",
			run: func(t *testing.T, e *env) error {
				spare := e.f.register(e.alice, newAuthenticator(t), "spare")
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				if err := e.f.s.Remove(e.f.ctx, e.alice.ID, spare.ID); err != nil {
					t.Fatal(err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: nil,
			check: func(t *testing.T, e *env) {
				if got := e.f.stored(e.aliceCred.ID); got.SignCount != 2 {
					t.Errorf("sign count %d, want 2", got.SignCount)
				}
			},
		},
		{
			name: "discoverable login with a removed credential",
			run: func(t *testing.T, e *env) error {
				if err := e.f.s.Remove(e.f.ctx, e.alice.ID, e.aliceCred.ID); err != nil {
					t.Fatal(err)
				}
				_, _, err := e.f.discover(e.aliceKey, answer{})
				return err
			},
			want: ErrNotFound,
		},
		{
			name: "login after a reset",
			run: func(t *testing.T, e *env) error {
				if err := e.f.s.Reset(e.f.ctx, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				_, err := e.f.login(e.alice.ID, e.aliceKey, answer{})
				return err
			},
			want: ErrNotFound,
			check: func(t *testing.T, e *env) {
				if n := e.f.count(e.bob.ID); n != 1 {
					t.Errorf("alice's reset left bob %d credentials, want 1", n)
				}
				if _, err := e.f.login(e.bob.ID, e.bobKey, answer{}); err != nil {
					t.Errorf("bob after alice's reset: %v", err)
				}
			},
		},
		{
			name: "login begun before a reset",
			run: func(t *testing.T, e *env) error {
				b := binding()
				opts, err := e.f.s.BeginLogin(e.f.ctx, b, e.alice.ID)
				if err != nil {
					return err
				}
				if err := e.f.s.Reset(e.f.ctx, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				_, err = e.f.s.FinishLogin(e.f.ctx, b, e.alice.ID, e.aliceKey.get(t, opts, answer{}))
				return err
			},
			want: ErrChallenge,
		},
		{
			name: "discoverable login after a reset",
			run: func(t *testing.T, e *env) error {
				if err := e.f.s.Reset(e.f.ctx, e.alice.ID); err != nil {
					t.Fatal(err)
				}
				_, _, err := e.f.discover(e.aliceKey, answer{})
				return err
			},
			want: ErrNotFound,
		},
	}

	forEachDB(t, func(t *testing.T, f *fixture) {
		for _, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				// A fresh clock and service per case; users and bindings are unique anyway.
				f := newFixture(t, f.db)
				e := &env{f: f, alice: user("alice"), bob: user("bob"), aliceKey: newAuthenticator(t), bobKey: newAuthenticator(t)}
				e.aliceCred = f.register(e.alice, e.aliceKey, "alice's")
				e.bobCred = f.register(e.bob, e.bobKey, "bob's")
				// One honest login first, so that alice's counter is 1 and LastUsedAt t0.
				if _, err := f.login(e.alice.ID, e.aliceKey, answer{}); err != nil {
					t.Fatalf("honest login: %v", err)
				}

				err := tc.run(t, e)
				if !errors.Is(err, tc.want) || (err == nil) != (tc.want == nil) {
					t.Fatalf("err = %v, want %v", err, tc.want)
				}
				for _, other := range []error{ErrNotFound, ErrChallenge, ErrVerification, ErrExists} {
					if other != tc.want && errors.Is(err, other) {
						t.Errorf("err = %v is also %v", err, other)
					}
				}
				if tc.check != nil {
					tc.check(t, e)
				}
			})
		}
	})
}

// registerWith runs a registration of a for u answered with ans and returns Finish's error.
func (f *fixture) registerWith(u User, a *authenticator, ans answer) error {
	f.t.Helper()
	b := binding()
	opts, err := f.s.BeginRegistration(f.ctx, b, u)
	if err != nil {
		return err
	}
	before := f.count(u.ID)
	c, err := f.s.FinishRegistration(f.ctx, b, u, "", a.create(f.t, opts, ans))
	if err != nil && (c.ID != "" || f.count(u.ID) != before) {
		f.t.Errorf("a refused registration stored a credential: %+v", c)
	}
	return err
}

// TestChallengeSingleUseConcurrently: of many Finishes racing with one response, on any
// node, exactly one succeeds.
func TestChallengeSingleUseConcurrently(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		a := newAuthenticator(t)
		f.register(alice, a, "")
		// Two nodes on one database.
		other := newFixture(t, f.db)
		for _, discoverable := range []bool{false, true} {
			b := binding()
			var opts []byte
			var err error
			if discoverable {
				opts, err = f.s.BeginDiscoverableLogin(f.ctx, b)
			} else {
				opts, err = f.s.BeginLogin(f.ctx, b, alice.ID)
			}
			if err != nil {
				t.Fatal(err)
			}
			resp := a.get(t, opts, answer{})
			const n = 12
			errs := make([]error, n)
			var wg sync.WaitGroup
			for i := range n {
				s := f.s
				if i%2 == 1 {
					s = other.s
				}
				wg.Go(func() {
					if discoverable {
						_, _, errs[i] = s.FinishDiscoverableLogin(f.ctx, b, resp)
					} else {
						_, errs[i] = s.FinishLogin(f.ctx, b, alice.ID, resp)
					}
				})
			}
			wg.Wait()
			ok := 0
			for _, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrChallenge):
					t.Errorf("discoverable=%v: a losing Finish: %v, want ErrChallenge", discoverable, err)
				}
			}
			if ok != 1 {
				t.Errorf("discoverable=%v: %d of %d concurrent Finishes succeeded, want 1", discoverable, ok, n)
			}
		}
	})
}

// TestBeginReplacesChallenge: a new Begin of the same kind and binding voids the earlier one.
func TestBeginReplacesChallenge(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		a := newAuthenticator(t)
		f.register(alice, a, "")
		b := binding()
		first, err := f.s.BeginLogin(f.ctx, b, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		second, err := f.s.BeginLogin(f.ctx, b, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.FinishLogin(f.ctx, b, alice.ID, a.get(t, first, answer{})); !errors.Is(err, ErrChallenge) {
			t.Errorf("answer to the replaced challenge: %v, want ErrChallenge", err)
		}
		// That failed Finish spent the binding's challenge.
		if _, err := f.s.FinishLogin(f.ctx, b, alice.ID, a.get(t, second, answer{})); !errors.Is(err, ErrChallenge) {
			t.Errorf("answer to the latest challenge after a failed Finish: %v, want ErrChallenge", err)
		}
		third, err := f.s.BeginLogin(f.ctx, b, alice.ID)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := f.s.FinishLogin(f.ctx, b, alice.ID, a.get(t, third, answer{})); err != nil {
			t.Errorf("answer to a new challenge: %v", err)
		}
		var n int64
		f.db.Model(&Challenge{}).Count(&n)
		if n != 0 {
			t.Errorf("%d challenges left after the Finish, want 0", n)
		}
	})
}

func TestRenameAndRemove(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice, bob := user("alice"), user("bob")
		c := f.register(alice, newAuthenticator(t), "old")
		bobs := f.register(bob, newAuthenticator(t), "bob's")

		for _, tc := range []struct {
			name, userID, id, newName string
			want                      error
			stored                    string
		}{
			{"rename", alice.ID, c.ID, "  Work laptop ", nil, "Work laptop"},
			{"a long name is cut", alice.ID, c.ID, strings.Repeat("é", 100), nil, strings.Repeat("é", MaxNameLength)},
			{"control characters are dropped", alice.ID, c.ID, "a\x00b\nc", nil, "abc"},
			{"an empty name is refused", alice.ID, c.ID, " \t ", ErrName, "abc"},
			{"bob's credential as alice", alice.ID, bobs.ID, "mine", ErrNotFound, "bob's"},
			{"an unknown credential", alice.ID, "nope", "x", ErrNotFound, ""},
		} {
			t.Run(tc.name, func(t *testing.T) {
				err := f.s.Rename(f.ctx, tc.userID, tc.id, tc.newName)
				if !errors.Is(err, tc.want) || (tc.want == nil) != (err == nil) {
					t.Fatalf("Rename = %v, want %v", err, tc.want)
				}
				if tc.stored != "" {
					if got := f.stored(tc.id).Name; got != tc.stored {
						t.Errorf("name = %q, want %q", got, tc.stored)
					}
				}
			})
		}

		if err := f.s.Remove(f.ctx, alice.ID, bobs.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove(bob's credential as alice) = %v, want ErrNotFound", err)
		}
		if n := f.count(bob.ID); n != 1 {
			t.Errorf("bob has %d credentials, want 1", n)
		}
		if err := f.s.Remove(f.ctx, alice.ID, c.ID); err != nil {
			t.Fatalf("Remove: %v", err)
		}
		if err := f.s.Remove(f.ctx, alice.ID, c.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("Remove twice = %v, want ErrNotFound", err)
		}
		if n := f.count(alice.ID); n != 0 {
			t.Errorf("alice has %d credentials, want 0", n)
		}
	})
}

func TestPurge(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		old, fresh := binding(), binding()
		if _, err := f.s.BeginRegistration(f.ctx, old, alice); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(ChallengeTTL - time.Second)
		if _, err := f.s.BeginDiscoverableLogin(f.ctx, fresh); err != nil {
			t.Fatal(err)
		}
		f.clock.advance(2 * time.Second)
		if err := f.s.Purge(f.ctx); err != nil {
			t.Fatal(err)
		}
		var rows []Challenge
		if err := f.db.Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].BindingHash != secret.Hash(fresh) || rows[0].Ceremony != ceremonyDiscoverable {
			t.Errorf("after Purge: %+v, want only the fresh challenge", rows)
		}
	})
}

func TestBeginRefusesBadInput(t *testing.T) {
	f := newFixture(t, storetest.Open(t, "sqlite", Models()...))
	long := strings.Repeat("x", 65)
	for _, tc := range []struct {
		name string
		run  func() error
	}{
		{"registration without a binding", func() error {
			_, err := f.s.BeginRegistration(f.ctx, "", user("alice"))
			return err
		}},
		{"registration with a huge binding", func() error {
			_, err := f.s.BeginRegistration(f.ctx, strings.Repeat("b", 2000), user("alice"))
			return err
		}},
		{"registration without a user ID", func() error {
			_, err := f.s.BeginRegistration(f.ctx, binding(), User{Username: "alice"})
			return err
		}},
		{"registration with a user ID over 64 bytes", func() error {
			_, err := f.s.BeginRegistration(f.ctx, binding(), User{ID: long, Username: "alice"})
			return err
		}},
		{"registration without a username", func() error {
			_, err := f.s.BeginRegistration(f.ctx, binding(), User{ID: "u1"})
			return err
		}},
		{"login without a binding", func() error {
			_, err := f.s.BeginLogin(f.ctx, "", "u1")
			return err
		}},
		{"login with a user ID over 64 bytes", func() error {
			_, err := f.s.BeginLogin(f.ctx, binding(), long)
			return err
		}},
		{"discoverable login without a binding", func() error {
			_, err := f.s.BeginDiscoverableLogin(f.ctx, "")
			return err
		}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := tc.run(); err == nil {
				t.Error("succeeded")
			}
		})
	}
	var n int64
	f.db.Model(&Challenge{}).Count(&n)
	if n != 0 {
		t.Errorf("%d challenges stored by refused Begins", n)
	}
}

// TestErrorsSayWhy: errors carry the operation and the reason, for the log.
func TestErrorsSayWhy(t *testing.T) {
	f := newFixture(t, storetest.Open(t, "sqlite", Models()...))
	alice := user("alice")
	a := newAuthenticator(t)
	f.register(alice, a, "")
	_, err := f.login(alice.ID, a, answer{origin: "https://evil.example.net"})
	for _, want := range []string{"finish passkey login", "verification failed", "origin", "https://evil.example.net"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %q does not say %q", err, want)
		}
	}
	_, err = f.s.FinishLogin(f.ctx, binding(), alice.ID, nil)
	if err == nil || !strings.Contains(err.Error(), fmt.Sprintf("finish passkey login: %v", ErrChallenge)) {
		t.Errorf("error %q", err)
	}
}

// TestClonesRacing: assertions of cloned authenticators (the same counter) finished at the
// same time, at different bindings: one succeeds, however they interleave, because the
// counter is only updated from the value the assertion was checked against.
func TestClonesRacing(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		a := newAuthenticator(t)
		c := f.register(alice, a, "")
		const n = 8
		bindings := make([]string, n)
		responses := make([][]byte, n)
		for i := range n {
			bindings[i] = binding()
			opts, err := f.s.BeginLogin(f.ctx, bindings[i], alice.ID)
			if err != nil {
				t.Fatal(err)
			}
			responses[i] = a.get(t, opts, answer{count: ptr[uint32](7)})
		}
		errs := make([]error, n)
		var wg sync.WaitGroup
		for i := range n {
			wg.Go(func() { _, errs[i] = f.s.FinishLogin(f.ctx, bindings[i], alice.ID, responses[i]) })
		}
		wg.Wait()
		ok := 0
		for _, err := range errs {
			switch {
			case err == nil:
				ok++
			case !errors.Is(err, ErrVerification):
				t.Errorf("a losing clone: %v, want ErrVerification", err)
			}
		}
		if ok != 1 {
			t.Errorf("%d of %d racing clones logged in, want 1", ok, n)
		}
		if got := f.stored(c.ID); got.SignCount != 7 {
			t.Errorf("sign count %d, want 7", got.SignCount)
		}
	})
}

// TestCounterUpdateIsConditional: an assertion checked against a credential record that
// another login has since updated is refused, deterministically (what TestClonesRacing
// relies on); one whose credential was removed meanwhile is ErrNotFound.
func TestCounterUpdateIsConditional(t *testing.T) {
	forEachDB(t, func(t *testing.T, f *fixture) {
		alice := user("alice")
		a := newAuthenticator(t)
		c := f.register(alice, a, "")
		stale := f.stored(c.ID) // sign count 0
		if _, err := f.login(alice.ID, a, answer{}); err != nil {
			t.Fatal(err)
		}
		wc, err := stale.webauthn()
		if err != nil {
			t.Fatal(err)
		}
		wc.Authenticator.SignCount = 1 // what a clone checked against the stale record reports
		if _, err := f.s.used(f.ctx, "test", stale, &wc, true, false); !errors.Is(err, ErrVerification) {
			t.Errorf("update from a stale record: %v, want ErrVerification", err)
		}
		if got := f.stored(c.ID); got.SignCount != 1 || !got.LastUsedAt.Equal(t0) {
			t.Errorf("stored %+v after the refused update", got)
		}
		if err := f.s.Remove(f.ctx, alice.ID, c.ID); err != nil {
			t.Fatal(err)
		}
		wc.Authenticator.SignCount = 2
		stale.SignCount = 1
		if _, err := f.s.used(f.ctx, "test", stale, &wc, true, false); !errors.Is(err, ErrNotFound) {
			t.Errorf("update of a removed credential: %v, want ErrNotFound", err)
		}
	})
}
