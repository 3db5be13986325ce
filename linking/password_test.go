package linking_test

import (
	"encoding/base64"
	"regexp"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/linking"
)

// phc is the exact form of the hashes fedhub makes: argon2id v1.3 with OWASP's minimum
// parameters, a 16-byte salt and a 32-byte key, both in unpadded standard base64.
var phc = regexp.MustCompile(`^\$argon2id\$v=19\$m=19456,t=2,p=1\$([A-Za-z0-9+/]{22})\$([A-Za-z0-9+/]{43})$`)

func TestHashPasswordFormat(t *testing.T) {
	for _, pw := range []string{"correct horse battery staple", "", "ünïcødé 🔑", strings.Repeat("x", 1000)} {
		h, err := linking.HashPassword(pw)
		if err != nil {
			t.Fatalf("HashPassword(%q): %v", pw, err)
		}
		m := phc.FindStringSubmatch(h)
		if m == nil {
			t.Fatalf("HashPassword(%q) = %q, want $argon2id$v=19$m=19456,t=2,p=1$<salt>$<key>", pw, h)
		}
		for i, want := range []int{16, 32} {
			b, err := base64.RawStdEncoding.DecodeString(m[i+1])
			if err != nil || len(b) != want {
				t.Errorf("part %q decodes to %d bytes (%v), want %d", m[i+1], len(b), err, want)
			}
		}
		if !linking.ValidPasswordHash(h) {
			t.Errorf("ValidPasswordHash(%q) = false for a hash HashPassword made", h)
		}
	}
}

func TestHashPasswordIsSalted(t *testing.T) {
	a, err := linking.HashPassword("same password")
	if err != nil {
		t.Fatal(err)
	}
	b, err := linking.HashPassword("same password")
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatalf("two hashes of the same password are equal: %s", a)
	}
	ma, mb := phc.FindStringSubmatch(a), phc.FindStringSubmatch(b)
	if ma == nil || mb == nil {
		t.Fatalf("unexpected hash form: %q, %q", a, b)
	}
	if ma[1] == mb[1] {
		t.Errorf("two hashes share the salt %s", ma[1])
	}
	if ma[2] == mb[2] {
		t.Errorf("two hashes share the key %s", ma[2])
	}
}

func TestValidPasswordHash(t *testing.T) {
	good, err := linking.HashPassword("pw")
	if err != nil {
		t.Fatal(err)
	}
	parts := strings.Split(good, "$") // "", argon2id, v=19, m=…,t=…,p=…, salt, key
	salt, key := parts[4], parts[5]
	with := func(i int, v string) string {
		p := append([]string(nil), parts...)
		p[i] = v
		return strings.Join(p, "$")
	}

	valid := []struct{ name, hash string }{
		{"made by HashPassword", good},
		{"other parameters", "$argon2id$v=19$m=8192,t=3,p=2$" + salt + "$" + key},
		{"shorter key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt + "$" + key[:22]},
	}
	for _, c := range valid {
		if !linking.ValidPasswordHash(c.hash) {
			t.Errorf("%s: ValidPasswordHash(%q) = false, want true", c.name, c.hash)
		}
	}

	invalid := []struct{ name, hash string }{
		{"empty", ""},
		{"plain text", "hunter2"},
		{"only the prefix", "$argon2id$"},
		{"bcrypt", "$2a$10$N9qo8uLOickgx2ZMRZoMyeIjZAgcfl7p92ldGxad68LJZdL17lhWy"},
		{"argon2i", with(1, "argon2i")},
		{"argon2d", with(1, "argon2d")},
		{"upper-case variant", with(1, "ARGON2ID")},
		{"no leading $", strings.TrimPrefix(good, "$")},
		{"missing version", "$argon2id$m=19456,t=2,p=1$" + salt + "$" + key},
		{"missing key", "$argon2id$v=19$m=19456,t=2,p=1$" + salt},
		{"extra part", good + "$extra"},
		{"trailing $", good + "$"},
		{"version 16", with(2, "v=16")},
		{"version not a number", with(2, "v=x")},
		{"version with trailing junk", with(2, "v=19junk")},
		{"version key misspelt", with(2, "ver=19")},
		{"m=0", with(3, "m=0,t=2,p=1")},
		{"t=0", with(3, "m=19456,t=0,p=1")},
		{"p=0", with(3, "m=19456,t=2,p=0")},
		{"negative memory", with(3, "m=-1,t=2,p=1")},
		{"p overflows uint8", with(3, "m=19456,t=2,p=256")},
		{"parameters out of order", with(3, "t=2,m=19456,p=1")},
		{"missing parallelism", with(3, "m=19456,t=2")},
		{"parameters with trailing junk", with(3, "m=19456,t=2,p=1,x=1")},
		{"parameters not numbers", with(3, "m=a,t=b,p=c")},
		{"empty salt", with(4, "")},
		{"salt shorter than 8 bytes", with(4, "AAAAAA")}, // libargon2's ARGON2_MIN_SALT_LENGTH
		{"salt not base64", with(4, "!!!not-base64!!!")},
		{"padded salt", with(4, salt+"==")},
		{"url-safe base64 key", with(5, strings.NewReplacer("+", "-", "/", "_").Replace(key)+"-_")},
		{"empty key", with(5, "")},
		{"key not base64", with(5, "%%%%")},
		{"padded key", with(5, key+"=")},
	}
	for _, c := range invalid {
		t.Run(c.name, func(t *testing.T) {
			if linking.ValidPasswordHash(c.hash) {
				t.Errorf("ValidPasswordHash(%q) = true, want false", c.hash)
			}
		})
	}
}

// New is called inside first-login transactions: it must not hash a password
// (argon2id takes 19 MiB and tens of milliseconds each time).
func TestNewIsCheap(t *testing.T) {
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	for range 10 {
		linking.New(nil, time.Now)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 {
		t.Errorf("10 calls of New allocated %d bytes; New must not compute an argon2id hash", grew)
	}
}
