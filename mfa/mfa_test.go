package mfa

import (
	"bytes"
	"context"
	"encoding/base32"
	"encoding/base64"
	"errors"
	"fmt"
	"image/png"
	"net/url"
	"os"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/totp"
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

// The RFC 6238 appendix B key ("12345678901234567890") and another one, both fixed so that
// every code below is known and no test depends on chance.
const (
	secretA = "GEZDGNBVGY3TQOJQGEZDGNBVGY3TQOJQ"
	secretB = "JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"
)

// testSecrets seals the TOTP keys of every test, as a configured secrets.key would.
var testSecrets = func() *secret.Keyring {
	k, err := secret.NewKeyring("EgcQ4EShP2Oet9DCccBdOuslW1+i0DPWndBRu67MDZg=")
	if err != nil {
		panic(err)
	}
	return k
}()

// opened is a stored TOTP key opened: sealed, it names the key that sealed it.
func opened(t *testing.T, stored string) string {
	t.Helper()
	key, err := testSecrets.Open([]byte(stored))
	if err != nil {
		t.Fatal(err)
	}
	return string(key)
}

// t0 is ten seconds into a time step.
var t0 = time.Date(2030, 5, 17, 9, 30, 10, 0, time.UTC)

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

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = t
}

func forEachDB(t *testing.T, fn func(t *testing.T, db *gorm.DB)) {
	storetest.ForEachDB(t, Models(), fn)
}

func newService(db *gorm.DB, at time.Time) (*Service, *clock) {
	c := &clock{t: at}
	return New(db, testSecrets, "fedhub", c.now), c
}

// code is the TOTP code of secret at time at, as an authenticator app computes it.
func code(t *testing.T, secret string, at time.Time) string {
	t.Helper()
	c, err := totp.GenerateCodeCustom(secret, at, totp.ValidateOpts{Period: 30, Digits: otp.DigitsSix, Algorithm: otp.AlgorithmSHA1})
	if err != nil {
		t.Fatalf("GenerateCodeCustom: %v", err)
	}
	return c
}

// confirm adds secret as a factor of user, confirmed with its code at the service's time.
func confirm(t *testing.T, s *Service, user, name, secret string) (Factor, []string) {
	t.Helper()
	f, codes, err := s.ConfirmTOTP(context.Background(), user, name, secret, code(t, secret, s.now()))
	if err != nil {
		t.Fatalf("ConfirmTOTP(%s, %s): %v", user, name, err)
	}
	return f, codes
}

// dump is every row of the package's tables, in a stable order.
func dump(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var factors []Factor
	var steps []UsedStep
	var codes []RecoveryCode
	if err := db.Order("id").Find(&factors).Error; err != nil {
		t.Fatalf("read factors: %v", err)
	}
	if err := db.Order("factor_id, step").Find(&steps).Error; err != nil {
		t.Fatalf("read steps: %v", err)
	}
	if err := db.Order("user_id, code_hash").Find(&codes).Error; err != nil {
		t.Fatalf("read recovery codes: %v", err)
	}
	var b strings.Builder
	for _, f := range factors {
		last := "never"
		if f.LastUsedAt != nil {
			last = f.LastUsedAt.UTC().Format(time.RFC3339Nano)
		}
		fmt.Fprintf(&b, "factor %s %s %s %q %s %s %s\n", f.ID, f.UserID, f.Kind, f.Name, f.Secret, f.CreatedAt.UTC().Format(time.RFC3339Nano), last)
	}
	for _, s := range steps {
		fmt.Fprintf(&b, "step %s %d\n", s.FactorID, s.Step)
	}
	for _, c := range codes {
		fmt.Fprintf(&b, "code %s %s %s\n", c.UserID, c.CodeHash, c.CreatedAt.UTC().Format(time.RFC3339Nano))
	}
	return b.String()
}

func count(t *testing.T, db *gorm.DB, model any, where string, args ...any) int64 {
	t.Helper()
	var n int64
	if err := db.Model(model).Where(where, args...).Count(&n).Error; err != nil {
		t.Fatalf("count %T: %v", model, err)
	}
	return n
}

// countStatements counts every statement the database is sent from now on.
func countStatements(t *testing.T, db *gorm.DB) *atomic.Int64 {
	t.Helper()
	var n atomic.Int64
	inc := func(*gorm.DB) { n.Add(1) }
	cb := db.Callback()
	for _, err := range []error{
		cb.Create().Before("gorm:create").Register("mfa_test:create", inc),
		cb.Query().Before("gorm:query").Register("mfa_test:query", inc),
		cb.Update().Before("gorm:update").Register("mfa_test:update", inc),
		cb.Delete().Before("gorm:delete").Register("mfa_test:delete", inc),
		cb.Row().Before("gorm:row").Register("mfa_test:row", inc),
		cb.Raw().Before("gorm:raw").Register("mfa_test:raw", inc),
	} {
		if err != nil {
			t.Fatalf("register callback: %v", err)
		}
	}
	return &n
}

func TestNewTOTPKey(t *testing.T) {
	s := New(nil, nil, "fedhub", func() time.Time { return t0 })
	k, err := s.NewTOTPKey("alice@example.com")
	if err != nil {
		t.Fatalf("NewTOTPKey: %v", err)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(k.Secret)
	if err != nil || len(raw) != 20 {
		t.Errorf("secret %q: %d bytes, %v; want 20 bytes of base32", k.Secret, len(raw), err)
	}
	u, err := url.Parse(k.URL)
	if err != nil {
		t.Fatalf("URL %q: %v", k.URL, err)
	}
	q := u.Query()
	if u.Scheme != "otpauth" || u.Host != "totp" || u.Path != "/fedhub:alice@example.com" {
		t.Errorf("URL %q: want otpauth://totp/fedhub:alice@example.com", k.URL)
	}
	for name, want := range map[string]string{"secret": k.Secret, "issuer": "fedhub", "period": "30", "digits": "6", "algorithm": "SHA1"} {
		if got := q.Get(name); got != want {
			t.Errorf("URL %s = %q, want %q", name, got, want)
		}
	}
	img, err := png.Decode(bytes.NewReader(k.QRPNG))
	if err != nil {
		t.Fatalf("QR code is no PNG: %v", err)
	}
	if b := img.Bounds(); b.Dx() != 200 || b.Dy() != 200 {
		t.Errorf("QR code is %dx%d, want 200x200", b.Dx(), b.Dy())
	}
	k2, err := s.NewTOTPKey("alice@example.com")
	if err != nil {
		t.Fatalf("NewTOTPKey again: %v", err)
	}
	if k2.Secret == k.Secret {
		t.Errorf("two keys share the secret %s", k.Secret)
	}

	for _, name := range []string{"", "a:b", strings.Repeat("a", 256), "bad\x00name"} {
		if _, err := s.NewTOTPKey(name); err == nil {
			t.Errorf("NewTOTPKey(%q) succeeded, want an error", name)
		}
	}
	for _, issuer := range []string{"", "fed:hub"} {
		if _, err := New(nil, nil, issuer, s.now).NewTOTPKey("alice"); err == nil {
			t.Errorf("NewTOTPKey with issuer %q succeeded, want an error", issuer)
		}
	}
}

// TestConfirmTOTP: a key is saved only with a code valid for it; nothing is written otherwise.
func TestConfirmTOTP(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name   string
		at     time.Time // the service's clock
		secret string
		code   func(t *testing.T) string
		label  string
		want   error // nil: confirmed
	}{
		{"code of now", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0) }, "Phone", nil},
		{"code of the step before", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0.Add(-30*time.Second)) }, "Phone", nil},
		{"code with a space", t0, secretA, func(t *testing.T) string { c := code(t, secretA, t0); return c[:3] + " " + c[3:] }, "Phone", nil},
		{"lower-case key", t0, strings.ToLower(secretA), func(t *testing.T) string { return code(t, secretA, t0) }, "Phone", nil},
		// RFC 6238 appendix B (SHA-1; its 8-digit codes end in these 6 digits).
		{"RFC 6238 at 59", time.Unix(59, 0), secretA, func(*testing.T) string { return "287082" }, "Phone", nil},
		{"RFC 6238 at 1111111109", time.Unix(1111111109, 0), secretA, func(*testing.T) string { return "081804" }, "Phone", nil},
		{"RFC 6238 at 2000000000", time.Unix(2000000000, 0), secretA, func(*testing.T) string { return "279037" }, "Phone", nil},
		{"code of another key", t0, secretA, func(t *testing.T) string { return code(t, secretB, t0) }, "Phone", ErrInvalidCode},
		{"code of two steps ago", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0.Add(-60*time.Second)) }, "Phone", ErrInvalidCode},
		{"wrong digit", t0, secretA, func(t *testing.T) string {
			c := []byte(code(t, secretA, t0))
			c[5] = '0' + (c[5]-'0'+1)%10
			return string(c)
		}, "Phone", ErrInvalidCode},
		{"five digits", t0, secretA, func(*testing.T) string { return "12345" }, "Phone", ErrInvalidCode},
		{"seven digits", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0) + "0" }, "Phone", ErrInvalidCode},
		{"letters", t0, secretA, func(*testing.T) string { return "12a456" }, "Phone", ErrInvalidCode},
		{"empty", t0, secretA, func(*testing.T) string { return "" }, "Phone", ErrInvalidCode},
		{"very long", t0, secretA, func(*testing.T) string { return strings.Repeat("1", 10000) }, "Phone", ErrInvalidCode},
		{"key not base32", t0, "not base32!", func(t *testing.T) string { return code(t, secretA, t0) }, "Phone", ErrInvalidKey},
		{"key too short", t0, "JBSWY3DPEHPK3PXP", func(t *testing.T) string { return code(t, "JBSWY3DPEHPK3PXP", t0) }, "Phone", ErrInvalidKey},
		{"no name", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0) }, "  ", ErrInvalidName},
		{"name too long", t0, secretA, func(t *testing.T) string { return code(t, secretA, t0) }, strings.Repeat("x", 65), ErrInvalidName},
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		statements := countStatements(t, db)
		for i, tc := range cases {
			t.Run(tc.name, func(t *testing.T) {
				user := fmt.Sprintf("user-%d", i)
				s, _ := newService(db, tc.at)
				before := dump(t, db)
				statements.Store(0)
				f, codes, err := s.ConfirmTOTP(ctx, user, tc.label, tc.secret, tc.code(t))
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Fatalf("ConfirmTOTP: %v, want %v", err, tc.want)
					}
					if n := statements.Load(); n != 0 {
						t.Errorf("a refused confirmation sent %d statements to the database, want none", n)
					}
					if after := dump(t, db); after != before {
						t.Errorf("a refused confirmation changed the database:\nbefore\n%s\nafter\n%s", before, after)
					}
					return
				}
				if err != nil {
					t.Fatalf("ConfirmTOTP: %v", err)
				}
				if f.ID == "" || f.UserID != user || f.Kind != KindTOTP || f.Name != strings.TrimSpace(tc.label) ||
					opened(t, f.Secret) != secretA || strings.Contains(f.Secret, secretA) || !f.CreatedAt.Equal(tc.at) || f.LastUsedAt != nil {
					t.Errorf("factor = %+v", f)
				}
				if len(codes) != RecoveryCodeCount {
					t.Errorf("%d recovery codes with the first factor, want %d", len(codes), RecoveryCodeCount)
				}
				got, err := s.Factors(ctx, user)
				if err != nil || len(got) != 1 || got[0].ID != f.ID || opened(t, got[0].Secret) != secretA || got[0].Name != f.Name {
					t.Errorf("Factors = %+v, %v; want the confirmed one", got, err)
				}
				if n := count(t, db, &UsedStep{}, "factor_id = ?", f.ID); n != 1 {
					t.Errorf("%d spent steps after the confirmation, want 1", n)
				}
			})
		}
	})
}

// TestConfirmSecondFactor: a second key keeps the recovery codes; the same key twice is refused.
func TestConfirmSecondFactor(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0)
		first, codes := confirm(t, s, "user-1", "Phone", secretA)
		if len(codes) != RecoveryCodeCount {
			t.Fatalf("%d recovery codes with the first factor", len(codes))
		}
		before := dump(t, db)
		c.set(t0.Add(time.Minute))
		if _, _, err := s.ConfirmTOTP(ctx, "user-1", "Phone again", secretA, code(t, secretA, s.now())); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("confirming the same key again: %v, want ErrCodeUsed", err)
		}
		if after := dump(t, db); after != before {
			t.Errorf("a refused second confirmation changed the database:\nbefore\n%s\nafter\n%s", before, after)
		}

		second, codes2 := confirm(t, s, "user-1", "Tablet", secretB)
		if codes2 != nil {
			t.Errorf("a second factor made new recovery codes %v, want nil", codes2)
		}
		if n, err := s.RecoveryCodesLeft(ctx, "user-1"); err != nil || n != RecoveryCodeCount {
			t.Errorf("RecoveryCodesLeft = %d, %v; want %d", n, err, RecoveryCodeCount)
		}
		if err := s.UseRecoveryCode(ctx, "user-1", codes[0]); err != nil {
			t.Errorf("a first recovery code after the second factor: %v", err)
		}
		got, err := s.Factors(ctx, "user-1")
		if err != nil || len(got) != 2 || got[0].ID != first.ID || got[1].ID != second.ID {
			t.Errorf("Factors = %+v, %v; want the phone then the tablet", got, err)
		}

		// The same key is another user's factor independently.
		if _, codes := confirm(t, s, "user-2", "Phone", secretA); len(codes) != RecoveryCodeCount {
			t.Errorf("another user's first factor: %d recovery codes", len(codes))
		}
	})
}

// TestConfirmConcurrent: two keys confirmed at once make one set of recovery codes.
func TestConfirmConcurrent(t *testing.T) {
	const keys = 4
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, _ := newService(db, t0)
		secrets := make([]string, keys)
		for i := range secrets {
			k, err := s.NewTOTPKey("alice")
			if err != nil {
				t.Fatalf("NewTOTPKey: %v", err)
			}
			secrets[i] = k.Secret
		}
		for round := range 20 { // a race: the more rounds, the likelier a missing lock shows
			user := fmt.Sprintf("user-%d", round)
			var wg sync.WaitGroup
			start := make(chan struct{})
			got := make([][]string, keys)
			for i, sec := range secrets {
				node := New(db, s.secrets, "fedhub", s.now)
				cd := code(t, sec, t0)
				wg.Go(func() {
					<-start
					var err error
					if _, got[i], err = node.ConfirmTOTP(ctx, user, "Key", sec, cd); err != nil {
						t.Errorf("ConfirmTOTP: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			sets := 0
			for _, codes := range got {
				if codes != nil {
					sets++
				}
			}
			if sets != 1 {
				t.Errorf("round %d: %d confirmations returned recovery codes, want 1", round, sets)
			}
			if n, err := s.RecoveryCodesLeft(ctx, user); err != nil || n != RecoveryCodeCount {
				t.Errorf("round %d: %d recovery codes stored, %v; want %d", round, n, err, RecoveryCodeCount)
			}
			if fs, err := s.Factors(ctx, user); err != nil || len(fs) != keys {
				t.Errorf("round %d: %d factors, %v; want %d", round, len(fs), err, keys)
			}
		}
	})
}

func TestConfirmAtMostMaxFactors(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, _ := newService(db, t0)
		for i := range MaxFactors + 1 {
			k, err := s.NewTOTPKey("alice")
			if err != nil {
				t.Fatalf("NewTOTPKey: %v", err)
			}
			_, _, err = s.ConfirmTOTP(context.Background(), "user-1", fmt.Sprintf("Key %d", i), k.Secret, code(t, k.Secret, t0))
			if i < MaxFactors && err != nil {
				t.Fatalf("factor %d: %v", i+1, err)
			}
			if i == MaxFactors && !errors.Is(err, ErrTooManyFactors) {
				t.Errorf("factor %d: %v, want ErrTooManyFactors", i+1, err)
			}
		}
		if n := count(t, db, &Factor{}, "user_id = ?", "user-1"); n != MaxFactors {
			t.Errorf("%d factors, want %d", n, MaxFactors)
		}
	})
}

// TestVerifyTOTPWindow: codes one step either side of now are accepted, two steps are not.
func TestVerifyTOTPWindow(t *testing.T) {
	ctx := context.Background()
	// The test's premise: with this key the codes of these steps all differ, so a refused
	// code cannot be refused by chance, nor an accepted one accepted by chance.
	seen := map[string]time.Duration{}
	for d := -3; d <= 3; d++ {
		off := time.Duration(d) * 30 * time.Second
		c := code(t, secretA, t0.Add(off))
		if other, ok := seen[c]; ok {
			t.Fatalf("premise: codes at %v and %v are both %s", other, off, c)
		}
		seen[c] = off
	}

	cases := []struct {
		offset time.Duration // of the code's time from the server's
		want   error
	}{
		{-90 * time.Second, ErrInvalidCode},
		{-60 * time.Second, ErrInvalidCode},
		{-31 * time.Second, nil}, // t0 is 10 s into its step: still the step before
		{-30 * time.Second, nil},
		{0, nil},
		{19 * time.Second, nil}, // the last second of t0's step
		{30 * time.Second, nil},
		{60 * time.Second, ErrInvalidCode},
		{90 * time.Second, ErrInvalidCode},
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		for i, tc := range cases {
			t.Run(fmt.Sprint(tc.offset), func(t *testing.T) {
				user := fmt.Sprintf("user-%d", i)
				s, c := newService(db, t0.Add(-time.Hour))
				f, _ := confirm(t, s, user, "Phone", secretA)
				c.set(t0)
				got, err := s.VerifyTOTP(ctx, user, code(t, secretA, t0.Add(tc.offset)))
				var stored Factor
				if err := db.Take(&stored, "id = ?", f.ID).Error; err != nil {
					t.Fatalf("read factor: %v", err)
				}
				if tc.want != nil {
					if !errors.Is(err, tc.want) {
						t.Errorf("VerifyTOTP: %v, want %v", err, tc.want)
					}
					if stored.LastUsedAt != nil {
						t.Errorf("a refused code set LastUsedAt to %v", stored.LastUsedAt)
					}
					if n := count(t, db, &UsedStep{}, "factor_id = ?", f.ID); n != 1 {
						t.Errorf("%d spent steps, want only the confirmation's", n)
					}
					return
				}
				if err != nil {
					t.Fatalf("VerifyTOTP: %v", err)
				}
				if got.ID != f.ID || got.LastUsedAt == nil || !got.LastUsedAt.Equal(t0) {
					t.Errorf("VerifyTOTP = %+v, want factor %s used at %v", got, f.ID, t0)
				}
				if stored.LastUsedAt == nil || !stored.LastUsedAt.Equal(t0) {
					t.Errorf("stored LastUsedAt = %v, want %v", stored.LastUsedAt, t0)
				}
				want := stepAt(t0.Add(tc.offset))
				if n := count(t, db, &UsedStep{}, "factor_id = ? AND step = ?", f.ID, want); n != 1 {
					t.Errorf("step %d not recorded as spent", want)
				}
			})
		}
	})
}

// TestVerifyTOTPOnce: a code is accepted once; the second try changes nothing.
func TestVerifyTOTPOnce(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0.Add(-time.Hour))
		f, _ := confirm(t, s, "user-1", "Phone", secretA)
		c.set(t0)
		now := code(t, secretA, t0)
		if _, err := s.VerifyTOTP(ctx, "user-1", now); err != nil {
			t.Fatalf("first use: %v", err)
		}
		before := dump(t, db)
		for _, later := range []time.Duration{0, 5 * time.Second, 19 * time.Second, 40 * time.Second, 49 * time.Second} {
			c.set(t0.Add(later)) // a later time, so that a second acceptance would show in LastUsedAt
			if _, err := s.VerifyTOTP(ctx, "user-1", now); !errors.Is(err, ErrCodeUsed) {
				t.Errorf("the same code %v later: %v, want ErrCodeUsed", later, err)
			}
			// Another node, same database.
			other := New(db, testSecrets, "fedhub", c.now)
			if _, err := other.VerifyTOTP(ctx, "user-1", now); !errors.Is(err, ErrCodeUsed) {
				t.Errorf("the same code %v later on another node: %v, want ErrCodeUsed", later, err)
			}
			if after := dump(t, db); after != before {
				t.Errorf("refusing a used code changed the database:\nbefore\n%s\nafter\n%s", before, after)
			}
		}
		// The next step's code is another code.
		c.set(t0.Add(30 * time.Second))
		if got, err := s.VerifyTOTP(ctx, "user-1", code(t, secretA, t0.Add(30*time.Second))); err != nil || got.ID != f.ID {
			t.Errorf("the next step's code: %+v, %v", got, err)
		}
	})
}

// TestVerifyTOTPConcurrent: nodes checking the same code at the same time: exactly one accepts it.
func TestVerifyTOTPConcurrent(t *testing.T) {
	const nodes = 4
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0.Add(-time.Hour))
		confirm(t, s, "user-1", "Phone", secretA)
		for round := range 5 {
			at := t0.Add(time.Duration(round) * time.Minute)
			c.set(at)
			cd := code(t, secretA, at)
			var wg sync.WaitGroup
			start := make(chan struct{})
			errs := make([]error, nodes)
			for i := range nodes {
				node := New(db, testSecrets, "fedhub", c.now)
				wg.Go(func() {
					<-start
					_, errs[i] = node.VerifyTOTP(ctx, "user-1", cd)
				})
			}
			close(start)
			wg.Wait()
			ok := 0
			for i, err := range errs {
				switch {
				case err == nil:
					ok++
				case !errors.Is(err, ErrCodeUsed):
					t.Errorf("round %d, node %d: %v, want success or ErrCodeUsed", round, i, err)
				}
			}
			if ok != 1 {
				t.Errorf("round %d: %d nodes accepted the code, want exactly 1 (%v)", round, ok, errs)
			}
		}
	})
}

// TestConfirmationCodeRefusedAtLogin: the code that confirmed a key cannot log in.
func TestConfirmationCodeRefusedAtLogin(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0)
		cd := code(t, secretA, t0)
		if _, _, err := s.ConfirmTOTP(ctx, "user-1", "Phone", secretA, cd); err != nil {
			t.Fatalf("ConfirmTOTP: %v", err)
		}
		for _, later := range []time.Duration{0, 10 * time.Second, 45 * time.Second} {
			c.set(t0.Add(later))
			if _, err := s.VerifyTOTP(ctx, "user-1", cd); !errors.Is(err, ErrCodeUsed) {
				t.Errorf("the confirmation code %v later at login: %v, want ErrCodeUsed", later, err)
			}
		}
	})
}

// TestVerifyRacingRemove: a factor removed while its code is being checked does not let the
// code in, and leaves no spent step behind.
func TestVerifyRacingRemove(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0.Add(-time.Hour))
		a, _ := confirm(t, s, "user-1", "Phone", secretA)
		b, _ := confirm(t, s, "user-1", "Tablet", secretB)
		c.set(t0)
		// Another node removes factor a right after this one spent the step of a's code.
		var removed atomic.Bool
		err := db.Callback().Create().After("gorm:create").Register("mfa_test:remove", func(tx *gorm.DB) {
			if tx.Statement.Table == "mfa_used_steps" && removed.CompareAndSwap(false, true) {
				if err := New(db.Session(&gorm.Session{NewDB: true}), testSecrets, "fedhub", c.now).Remove(ctx, "user-1", a.ID); err != nil {
					t.Errorf("Remove: %v", err)
				}
			}
		})
		if err != nil {
			t.Fatalf("register callback: %v", err)
		}
		if f, err := s.VerifyTOTP(ctx, "user-1", code(t, secretA, t0)); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("code of a factor removed meanwhile: %+v, %v; want ErrInvalidCode", f, err)
		}
		if !removed.Load() {
			t.Fatalf("the factor was not removed during the check")
		}
		if n := count(t, db, &UsedStep{}, "factor_id = ?", a.ID); n != 0 {
			t.Errorf("%d spent steps of the removed factor left", n)
		}
		if got, err := s.VerifyTOTP(ctx, "user-1", code(t, secretB, t0)); err != nil || got.ID != b.ID {
			t.Errorf("the remaining factor: %+v, %v", got, err)
		}
	})
}

// TestRemove: a removed factor's codes are refused; the last one takes the recovery codes along.
func TestRemove(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0.Add(-time.Hour))
		a, _ := confirm(t, s, "user-1", "Phone", secretA)
		b, _ := confirm(t, s, "user-1", "Tablet", secretB)
		other, _ := confirm(t, s, "user-2", "Phone", secretA)
		c.set(t0)
		if _, err := s.VerifyTOTP(ctx, "user-1", code(t, secretA, t0.Add(-30*time.Second))); err != nil {
			t.Fatalf("factor a before removal: %v", err)
		}

		// Not the user's, or no such factor: nothing happens.
		before := dump(t, db)
		for _, id := range []string{other.ID, "no-such-factor", "", strings.Repeat("x", 1000)} {
			if err := s.Remove(ctx, "user-1", id); !errors.Is(err, ErrNotFound) {
				t.Errorf("Remove(user-1, %q): %v, want ErrNotFound", id, err)
			}
		}
		if after := dump(t, db); after != before {
			t.Errorf("refused removals changed the database:\nbefore\n%s\nafter\n%s", before, after)
		}

		if err := s.Remove(ctx, "user-1", a.ID); err != nil {
			t.Fatalf("Remove(a): %v", err)
		}
		if _, err := s.VerifyTOTP(ctx, "user-1", code(t, secretA, t0)); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("a removed factor's code: %v, want ErrInvalidCode", err)
		}
		if n := count(t, db, &UsedStep{}, "factor_id = ?", a.ID); n != 0 {
			t.Errorf("%d spent steps of the removed factor left", n)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, "user-1"); n != RecoveryCodeCount {
			t.Errorf("recovery codes after removing one of two factors: %d, want %d", n, RecoveryCodeCount)
		}
		if got, err := s.VerifyTOTP(ctx, "user-1", code(t, secretB, t0)); err != nil || got.ID != b.ID {
			t.Errorf("the remaining factor's code: %+v, %v", got, err)
		}
		// The other user's factor with the same key is not touched.
		if got, err := s.VerifyTOTP(ctx, "user-2", code(t, secretA, t0)); err != nil || got.ID != other.ID {
			t.Errorf("user-2's factor: %+v, %v", got, err)
		}

		if err := s.Remove(ctx, "user-1", b.ID); err != nil {
			t.Fatalf("Remove(b): %v", err)
		}
		if n, err := s.RecoveryCodesLeft(ctx, "user-1"); err != nil || n != 0 {
			t.Errorf("recovery codes after removing the last factor: %d, %v; want 0", n, err)
		}
		if _, err := s.VerifyTOTP(ctx, "user-1", code(t, secretB, t0.Add(30*time.Second))); !errors.Is(err, ErrNotFound) {
			t.Errorf("code of a user without factors: %v, want ErrNotFound", err)
		}
		if err := s.Remove(ctx, "user-1", b.ID); !errors.Is(err, ErrNotFound) {
			t.Errorf("removing it again: %v, want ErrNotFound", err)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, "user-2"); n != RecoveryCodeCount {
			t.Errorf("user-2's recovery codes: %d, want %d", n, RecoveryCodeCount)
		}
	})
}

var recoveryCodeFormat = regexp.MustCompile(`^[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}-[0-9a-hjkmnp-tv-z]{4}$`)

func TestRecoveryCodes(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, _ := newService(db, t0)
		_, codes := confirm(t, s, "user-1", "Phone", secretA)
		_, otherCodes := confirm(t, s, "user-2", "Phone", secretA)

		if len(codes) != 10 {
			t.Fatalf("%d codes, want 10", len(codes))
		}
		distinct := map[string]bool{}
		for _, c := range append(append([]string{}, codes...), otherCodes...) {
			if !recoveryCodeFormat.MatchString(c) {
				t.Errorf("code %q is not xxxx-xxxx-xxxx in Crockford base32", c)
			}
			distinct[c] = true
		}
		if len(distinct) != 2*RecoveryCodeCount {
			t.Errorf("%d distinct codes among %d", len(distinct), 2*RecoveryCodeCount)
		}

		// Stored only hashed: no row holds a code in any spelling, each hash is there.
		rows := dump(t, db)
		for _, c := range codes {
			norm, _ := normaliseRecoveryCode(c)
			for _, plain := range []string{c, norm, strings.ToUpper(c), strings.ToUpper(norm)} {
				if strings.Contains(rows, plain) {
					t.Errorf("the database holds the recovery code %q", plain)
				}
			}
			if n := count(t, db, &RecoveryCode{}, "user_id = ? AND code_hash = ?", "user-1", secret.Hash(norm)); n != 1 {
				t.Errorf("hash of %q stored %d times, want once", c, n)
			}
		}

		// Another user's code, a made-up one and malformed ones are refused.
		for _, c := range []string{otherCodes[0], "0000-0000-0000", "", "abcd-efgh-jkm", "abcd-efgh-jkmnp", "abcd-efgh-jkmu", strings.Repeat("a", 100000)} {
			if err := s.UseRecoveryCode(ctx, "user-1", c); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("UseRecoveryCode(%.20q): %v, want ErrInvalidCode", c, err)
			}
		}
		if n, _ := s.RecoveryCodesLeft(ctx, "user-2"); n != RecoveryCodeCount {
			t.Errorf("user-2 has %d codes left after user-1 tried one of them", n)
		}

		// Each works once, however typed.
		spell := []func(string) string{
			func(c string) string { return c },
			strings.ToUpper,
			func(c string) string { return strings.ReplaceAll(c, "-", "") },
			func(c string) string { return " " + strings.ReplaceAll(c, "-", " ") + " " },
			func(c string) string { return strings.ToUpper(strings.ReplaceAll(c, "-", "")) },
		}
		for i, c := range codes {
			typed := spell[i%len(spell)](c)
			if err := s.UseRecoveryCode(ctx, "user-1", typed); err != nil {
				t.Errorf("code %d (%q): %v", i, typed, err)
			}
			if n, err := s.RecoveryCodesLeft(ctx, "user-1"); err != nil || n != RecoveryCodeCount-i-1 {
				t.Errorf("after %d codes: %d left, %v; want %d", i+1, n, err, RecoveryCodeCount-i-1)
			}
			if err := s.UseRecoveryCode(ctx, "user-1", c); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("code %d a second time: %v, want ErrInvalidCode", i, err)
			}
		}

		// New codes replace the old ones.
		fresh, err := s.NewRecoveryCodes(ctx, "user-2")
		if err != nil || len(fresh) != RecoveryCodeCount {
			t.Fatalf("NewRecoveryCodes = %d codes, %v", len(fresh), err)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, "user-2"); n != RecoveryCodeCount {
			t.Errorf("%d codes left after NewRecoveryCodes, want %d", n, RecoveryCodeCount)
		}
		if err := s.UseRecoveryCode(ctx, "user-2", otherCodes[1]); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("a replaced code: %v, want ErrInvalidCode", err)
		}
		if err := s.UseRecoveryCode(ctx, "user-2", fresh[0]); err != nil {
			t.Errorf("a new code: %v", err)
		}

		// No factor, no recovery codes.
		if _, err := s.NewRecoveryCodes(ctx, "user-3"); !errors.Is(err, ErrNotFound) {
			t.Errorf("NewRecoveryCodes for a user without factors: %v, want ErrNotFound", err)
		}
		if n := count(t, db, &RecoveryCode{}, "user_id = ?", "user-3"); n != 0 {
			t.Errorf("user-3 got %d recovery codes", n)
		}
	})
}

// TestRecoveryCodeOnceConcurrent: the same code tried on several nodes at once works once.
func TestRecoveryCodeOnceConcurrent(t *testing.T) {
	const nodes = 4
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, _ := newService(db, t0)
		_, codes := confirm(t, s, "user-1", "Phone", secretA)
		for _, c := range codes[:3] {
			var wg sync.WaitGroup
			var ok atomic.Int32
			start := make(chan struct{})
			for range nodes {
				node := New(db, s.secrets, "fedhub", s.now)
				wg.Go(func() {
					<-start
					err := node.UseRecoveryCode(ctx, "user-1", c)
					switch {
					case err == nil:
						ok.Add(1)
					case !errors.Is(err, ErrInvalidCode):
						t.Errorf("UseRecoveryCode: %v", err)
					}
				})
			}
			close(start)
			wg.Wait()
			if n := ok.Load(); n != 1 {
				t.Errorf("code %s accepted %d times, want once", c, n)
			}
		}
	})
}

// TestRecoveryCodeEntropy: every character of the alphabet turns up at every position, so a
// code carries 12 × 5 = 60 bits (a generator of fewer characters would miss some: with
// 2000 codes, a fair one misses one with a chance of about 384 × (31/32)^2000 < 10^-25).
func TestRecoveryCodeEntropy(t *testing.T) {
	if len(recoveryAlphabet) != 32 || recoveryCodeLen*5 < 60 {
		t.Fatalf("alphabet of %d characters, %d characters a code: fewer than 60 bits", len(recoveryAlphabet), recoveryCodeLen)
	}
	seen := make([]map[byte]bool, recoveryCodeLen)
	for i := range seen {
		seen[i] = map[byte]bool{}
	}
	for range 2000 {
		c := newRecoveryCode()
		if !recoveryCodeFormat.MatchString(c) {
			t.Fatalf("code %q is not xxxx-xxxx-xxxx", c)
		}
		norm, ok := normaliseRecoveryCode(c)
		if !ok {
			t.Fatalf("code %q does not normalise", c)
		}
		for i := range norm {
			seen[i][norm[i]] = true
		}
	}
	for i, chars := range seen {
		if len(chars) != 32 {
			t.Errorf("position %d: %d distinct characters, want 32", i, len(chars))
		}
	}
}

func TestNormaliseRecoveryCode(t *testing.T) {
	cases := []struct {
		in, want string // want "": refused
	}{
		{"abcd-efgh-jkmn", "abcdefghjkmn"},
		{"ABCD-EFGH-JKMN", "abcdefghjkmn"},
		{" abcd efgh jkmn ", "abcdefghjkmn"},
		{"abcdefghjkmn", "abcdefghjkmn"},
		{"a-b-c-d-e-f-g-h-j-k-m-n", "abcdefghjkmn"},
		{"oOiI-lL00-1111", "001111001111"}, // Crockford: o is 0, i and l are 1
		{"abcd-efgh-jkmu", ""},             // u is no Crockford digit
		{"abcd-efgh-jkm", ""},
		{"abcd-efgh-jkmnp", ""},
		{"abcd_efgh_jkmn", ""},
		{"abcd-efgh-jkm\u00e9", ""},
		{"", ""},
		{strings.Repeat(" ", 60) + "abcdefghjkmn", ""}, // longer than anything typed
	}
	for _, tc := range cases {
		got, ok := normaliseRecoveryCode(tc.in)
		if ok != (tc.want != "") || got != tc.want {
			t.Errorf("normaliseRecoveryCode(%q) = %q, %v; want %q", tc.in, got, ok, tc.want)
		}
	}
}

// TestMalformedInputAsksNoDatabase: malformed codes and IDs are refused before any statement.
func TestMalformedInputAsksNoDatabase(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, _ := newService(db, t0)
		confirm(t, s, "user-1", "Phone", secretA)
		before := dump(t, db)
		statements := countStatements(t, db)
		for _, c := range []string{"", "12345", "1234567", "12345a", "１２３４５６", "-12345", "12345\n", strings.Repeat("1", 1<<16)} {
			if _, err := s.VerifyTOTP(ctx, "user-1", c); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("VerifyTOTP(%.20q): %v, want ErrInvalidCode", c, err)
			}
			if err := s.UseRecoveryCode(ctx, "user-1", c); !errors.Is(err, ErrInvalidCode) {
				t.Errorf("UseRecoveryCode(%.20q): %v, want ErrInvalidCode", c, err)
			}
		}
		for _, user := range []string{"", strings.Repeat("u", 37)} {
			if _, err := s.VerifyTOTP(ctx, user, code(t, secretA, t0)); !errors.Is(err, ErrNotFound) {
				t.Errorf("VerifyTOTP for user %.20q: %v, want ErrNotFound", user, err)
			}
			if err := s.Remove(ctx, user, "x"); !errors.Is(err, ErrNotFound) {
				t.Errorf("Remove for user %.20q: %v, want ErrNotFound", user, err)
			}
		}
		if n := statements.Load(); n != 0 {
			t.Errorf("malformed input sent %d statements to the database, want none", n)
		}
		if after := dump(t, db); after != before {
			t.Errorf("malformed input changed the database:\nbefore\n%s\nafter\n%s", before, after)
		}
	})
}

// TestReset removes every factor, spent step and recovery code of the user, and nobody else's.
func TestReset(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0.Add(-time.Hour))
		a, _ := confirm(t, s, "user-1", "Phone", secretA)
		b, _ := confirm(t, s, "user-1", "Tablet", secretB)
		other, _ := confirm(t, s, "user-2", "Phone", secretA)
		c.set(t0)
		if _, err := s.VerifyTOTP(ctx, "user-1", code(t, secretA, t0)); err != nil {
			t.Fatalf("VerifyTOTP: %v", err)
		}
		if _, err := s.VerifyTOTP(ctx, "user-2", code(t, secretA, t0)); err != nil {
			t.Fatalf("VerifyTOTP user-2: %v", err)
		}
		otherBefore := count(t, db, &UsedStep{}, "factor_id = ?", other.ID)

		if err := s.Reset(ctx, "user-1"); err != nil {
			t.Fatalf("Reset: %v", err)
		}
		if fs, err := s.Factors(ctx, "user-1"); err != nil || len(fs) != 0 {
			t.Errorf("Factors after Reset = %+v, %v; want none", fs, err)
		}
		if n := count(t, db, &UsedStep{}, "factor_id IN ?", []string{a.ID, b.ID}); n != 0 {
			t.Errorf("%d spent steps of reset factors left", n)
		}
		if n, err := s.RecoveryCodesLeft(ctx, "user-1"); err != nil || n != 0 {
			t.Errorf("recovery codes after Reset: %d, %v", n, err)
		}
		if _, err := s.VerifyTOTP(ctx, "user-1", code(t, secretB, t0)); !errors.Is(err, ErrNotFound) {
			t.Errorf("a reset factor's code: %v, want ErrNotFound", err)
		}

		if fs, _ := s.Factors(ctx, "user-2"); len(fs) != 1 || fs[0].ID != other.ID {
			t.Errorf("user-2's factors after user-1's reset: %+v", fs)
		}
		if n := count(t, db, &UsedStep{}, "factor_id = ?", other.ID); n != otherBefore || n == 0 {
			t.Errorf("user-2's spent steps: %d, want %d", n, otherBefore)
		}
		if n, _ := s.RecoveryCodesLeft(ctx, "user-2"); n != RecoveryCodeCount {
			t.Errorf("user-2's recovery codes: %d", n)
		}
		if err := s.Reset(ctx, "user-1"); err != nil {
			t.Errorf("Reset again: %v", err)
		}

		// A new factor after a reset starts afresh, with new recovery codes.
		if _, codes := confirm(t, s, "user-1", "New phone", secretA); len(codes) != RecoveryCodeCount {
			t.Errorf("first factor after a reset: %d recovery codes", len(codes))
		}
	})
}

// TestPurge deletes spent steps more than three steps old, and only those.
func TestPurge(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		s, c := newService(db, t0)
		cur := stepAt(t0)
		var rows []UsedStep
		for _, d := range []int64{-100, -5, -4, -3, -2, -1, 0, 1} {
			rows = append(rows, UsedStep{FactorID: "f1", Step: cur + d}, UsedStep{FactorID: "f2", Step: cur + d})
		}
		if err := db.Create(&rows).Error; err != nil {
			t.Fatalf("insert steps: %v", err)
		}
		if err := s.Purge(ctx); err != nil {
			t.Fatalf("Purge: %v", err)
		}
		var left []UsedStep
		if err := db.Order("factor_id, step").Find(&left).Error; err != nil {
			t.Fatalf("read steps: %v", err)
		}
		var got []string
		for _, r := range left {
			got = append(got, fmt.Sprintf("%s%+d", r.FactorID, r.Step-cur))
		}
		want := []string{"f1-3", "f1-2", "f1-1", "f1+0", "f1+1", "f2-3", "f2-2", "f2-1", "f2+0", "f2+1"}
		if fmt.Sprint(got) != fmt.Sprint(want) {
			t.Errorf("steps after Purge = %v, want %v", got, want)
		}

		// Once purged, an old code is still refused: it is too old.
		c.set(t0.Add(-time.Hour))
		confirm(t, s, "user-1", "Phone", secretA)
		c.set(t0)
		old := code(t, secretA, t0)
		if _, err := s.VerifyTOTP(ctx, "user-1", old); err != nil {
			t.Fatalf("VerifyTOTP: %v", err)
		}
		c.set(t0.Add(5 * time.Minute))
		if err := s.Purge(ctx); err != nil {
			t.Fatalf("Purge: %v", err)
		}
		if n := count(t, db, &UsedStep{}, "1 = 1"); n != 0 {
			t.Errorf("%d steps left 5 minutes later, want 0", n)
		}
		if _, err := s.VerifyTOTP(ctx, "user-1", old); !errors.Is(err, ErrInvalidCode) {
			t.Errorf("a purged old code: %v, want ErrInvalidCode", err)
		}
	})
}

// TOTP keys are sealed at rest once a key is set: keys stored before stay usable, CheckSecrets
// refuses a database whose keys cannot be opened, and Reseal seals them all, once.
func TestSecretsAtRest(t *testing.T) {
	ctx := context.Background()
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		c := &clock{t: t0}
		plain := New(db, nil, "fedhub", c.now) // before a key was set
		confirm(t, plain, "user-1", "Phone", secretA)
		sealed := New(db, testSecrets, "fedhub", c.now)
		confirm(t, sealed, "user-2", "Phone", secretB)

		var stored []Factor
		if err := db.Order("user_id").Find(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if stored[0].Secret != secretA || strings.Contains(stored[1].Secret, secretB) || !testSecrets.Sealed([]byte(stored[1].Secret)) {
			t.Fatalf("stored keys %q, %q: want the first as it was, the second sealed", stored[0].Secret, stored[1].Secret)
		}
		if err := sealed.CheckSecrets(ctx); err != nil {
			t.Fatalf("CheckSecrets with the key: %v", err)
		}
		for name, s := range map[string]*Service{"no key": plain, "another key": New(db, otherSecrets(t), "fedhub", c.now)} {
			if err := s.CheckSecrets(ctx); err == nil || !strings.Contains(err.Error(), testSecrets.CurrentID()) {
				t.Errorf("CheckSecrets with %s: %v, want an error naming key %s", name, err, testSecrets.CurrentID())
			}
			c.set(c.now().Add(time.Minute))
			if _, err := s.VerifyTOTP(ctx, "user-2", code(t, secretB, c.now())); err == nil || errors.Is(err, ErrInvalidCode) {
				t.Errorf("VerifyTOTP with %s: %v, want the sealing key named", name, err)
			}
		}

		if changed, total, err := sealed.Reseal(ctx); err != nil || changed != 1 || total != 2 {
			t.Fatalf("Reseal = %d of %d, %v; want 1 of 2", changed, total, err)
		}
		if changed, total, err := sealed.Reseal(ctx); err != nil || changed != 0 || total != 2 {
			t.Fatalf("Reseal again = %d of %d, %v; want 0 of 2", changed, total, err)
		}
		if err := db.Order("user_id").Find(&stored).Error; err != nil {
			t.Fatal(err)
		}
		if !testSecrets.Sealed([]byte(stored[0].Secret)) || strings.Contains(stored[0].Secret, secretA) {
			t.Fatalf("after Reseal the first key is stored as %q", stored[0].Secret)
		}
		for user, key := range map[string]string{"user-1": secretA, "user-2": secretB} {
			c.set(c.now().Add(time.Minute))
			if _, err := sealed.VerifyTOTP(ctx, user, code(t, key, c.now())); err != nil {
				t.Errorf("%s after Reseal: %v", user, err)
			}
		}
		// A key already confirmed is still refused, sealed as it is.
		c.set(c.now().Add(time.Minute))
		if _, _, err := sealed.ConfirmTOTP(ctx, "user-1", "Again", secretA, code(t, secretA, c.now())); !errors.Is(err, ErrCodeUsed) {
			t.Errorf("confirming a sealed key again: %v, want ErrCodeUsed", err)
		}
	})
}

func otherSecrets(t *testing.T) *secret.Keyring {
	t.Helper()
	k, err := secret.NewKeyring(base64.StdEncoding.EncodeToString([]byte("0123456789abcdefghijklmnopqrstuv")))
	if err != nil {
		t.Fatal(err)
	}
	return k
}
