package secret_test

import (
	"bytes"
	"crypto/rand"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/secret"
)

func newKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func keyring(t *testing.T, current string, previous ...string) *secret.Keyring {
	t.Helper()
	k, err := secret.NewKeyring(current, previous...)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func TestNewKeyringRefusesBadKeys(t *testing.T) {
	good := newKey(t)
	for _, tc := range []struct {
		name     string
		current  string
		previous []string
		want     string
	}{
		{"a passphrase", "correct horse battery staple", nil, "secrets.key: is not base64"},
		{"too short", base64.StdEncoding.EncodeToString(make([]byte, 16)), nil, "secrets.key: is 16 bytes"},
		{"too long", base64.StdEncoding.EncodeToString(make([]byte, 64)), nil, "secrets.key: is 64 bytes"},
		{"all zero", base64.StdEncoding.EncodeToString(make([]byte, 32)), nil, "secrets.key: is not random"},
		{"a repeated word", base64.StdEncoding.EncodeToString([]byte(strings.Repeat("password", 4))), nil, "is not random"},
		{"a bad previous key", good, []string{"short"}, "secrets.previous_keys[0]: "},
		{"the same key twice", good, []string{good}, "is given twice"},
		{"previous keys without a key", "", []string{good}, "no key"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			k, err := secret.NewKeyring(tc.current, tc.previous...)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("NewKeyring: %v, %v; want an error containing %q", k, err, tc.want)
			}
			if strings.Contains(err.Error(), good) {
				t.Fatalf("the error shows the key: %v", err)
			}
		})
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		raw, _ := base64.StdEncoding.DecodeString(good)
		if _, err := secret.NewKeyring(enc.EncodeToString(raw) + "\n"); err != nil {
			t.Errorf("a key in another base64 alphabet: %v", err)
		}
	}
	if k, err := secret.NewKeyring(""); k != nil || err != nil {
		t.Fatalf(`NewKeyring("") = %v, %v; want no keyring and no error`, k, err)
	}
}

func TestSealOpen(t *testing.T) {
	k := keyring(t, newKey(t))
	plain := []byte("-----BEGIN PRIVATE KEY-----\nMIIE…")
	sealed, err := k.Seal(plain)
	if err != nil {
		t.Fatal(err)
	}
	if bytes.Contains(sealed, plain[:20]) || !strings.HasPrefix(string(sealed), "fhs1:"+k.CurrentID()+":") {
		t.Fatalf("sealed value %q", sealed)
	}
	again, _ := k.Seal(plain)
	if bytes.Equal(sealed, again) {
		t.Fatal("two seals of the same value are equal: the nonce is not random")
	}
	got, err := k.Open(sealed)
	if err != nil || !bytes.Equal(got, plain) {
		t.Fatalf("Open = %q, %v", got, err)
	}
	if !k.Sealed(sealed) || k.Sealed(plain) {
		t.Fatalf("Sealed(sealed) = %v, Sealed(plain) = %v", k.Sealed(sealed), k.Sealed(plain))
	}
	if err := k.Readable(sealed); err != nil {
		t.Fatal(err)
	}
}

func TestOpenRefusesTampering(t *testing.T) {
	k := keyring(t, newKey(t))
	sealed, _ := k.Seal([]byte("JBSWY3DPEHPK3PXPJBSWY3DPEHPK3PXP"))
	flip := func(i int) []byte {
		b := bytes.Clone(sealed)
		b[i] ^= 1
		return b
	}
	for name, bad := range map[string][]byte{
		"ciphertext":   flip(secret.HeaderLen + 20),
		"tag":          flip(len(sealed) - 2),
		"nonce":        flip(secret.HeaderLen + 1),
		"truncated":    sealed[:len(sealed)-4],
		"header only":  sealed[:secret.HeaderLen],
		"header cut":   sealed[:secret.HeaderLen-2],
		"not base64":   append(bytes.Clone(sealed[:secret.HeaderLen]), "!!!!"...),
		"key ID moved": append([]byte("fhs1:0"), sealed[5:]...),
	} {
		if got, err := k.Open(bad); err == nil {
			t.Errorf("%s: a tampered value opened as %q", name, got)
		}
	}
}

func TestOpenWithPreviousAndWrongKeys(t *testing.T) {
	old, cur := newKey(t), newKey(t)
	oldRing := keyring(t, old)
	sealed, _ := oldRing.Seal([]byte("the signing key"))

	rotated := keyring(t, cur, old)
	if got, err := rotated.Open(sealed); err != nil || string(got) != "the signing key" {
		t.Fatalf("opening with a previous key: %q, %v", got, err)
	}
	if rotated.Sealed(sealed) {
		t.Fatal("a value sealed with a previous key counts as sealed with the current one")
	}
	resealed, changed, err := rotated.Reseal(sealed)
	if err != nil || !changed || !rotated.Sealed(resealed) {
		t.Fatalf("Reseal: changed=%v err=%v", changed, err)
	}
	if same, changed, err := rotated.Reseal(resealed); err != nil || changed || !bytes.Equal(same, resealed) {
		t.Fatalf("Reseal of a current value: changed=%v err=%v", changed, err)
	}
	// The old key is gone once everything is resealed; what it sealed is not readable.
	onlyNew := keyring(t, cur)
	if got, err := onlyNew.Open(resealed); err != nil || string(got) != "the signing key" {
		t.Fatalf("the resealed value with the new key alone: %q, %v", got, err)
	}
	oldID := oldRing.CurrentID()
	for name, k := range map[string]*secret.Keyring{"an unknown key": onlyNew, "no key": nil} {
		if _, err := k.Open(sealed); err == nil || !strings.Contains(err.Error(), oldID) {
			t.Errorf("%s: Open = %v, want an error naming key %s", name, err, oldID)
		}
		if err := k.Readable(sealed); err == nil || !strings.Contains(err.Error(), oldID) {
			t.Errorf("%s: Readable = %v, want an error naming key %s", name, err, oldID)
		}
	}
	// Same key ID, another key: cannot happen by chance, but must not open.
	if _, err := keyring(t, newKey(t)).Open(sealed); err == nil {
		t.Fatal("opened with a key that did not seal it")
	}
}

func TestPlaintextPassesThrough(t *testing.T) {
	for _, plain := range [][]byte{[]byte("JBSWY3DPEHPK3PXP"), {0x30, 0x82, 0x04, 0xbd}, nil} {
		for name, k := range map[string]*secret.Keyring{"a keyring": keyring(t, newKey(t)), "no keyring": nil} {
			if got, err := k.Open(plain); err != nil || !bytes.Equal(got, plain) {
				t.Errorf("%s: Open(%q) = %q, %v; want it as it is", name, plain, got, err)
			}
		}
	}
	var none *secret.Keyring
	if got, err := none.Seal([]byte("x")); err != nil || string(got) != "x" {
		t.Fatalf("Seal without a keyring = %q, %v; want the value as it is", got, err)
	}
	if _, _, err := none.Reseal([]byte("x")); err == nil {
		t.Fatal("Reseal without a keyring succeeded")
	}
}
