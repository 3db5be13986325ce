package e2e

import (
	"bytes"
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"

	"github.com/fedhub/fedhub/secret"
)

const seUnsealedWarning = "secrets are stored unencrypted: set secrets.key"

// TestSecretsAtRest follows an operator through README's "Secrets at rest":
// a database made without a key gets one, is re-keyed (its files then hold
// no secret as it was), the key is rotated and the old one removed; a
// person's TOTP factor and the issuer's tokens keep working throughout, and
// fedhub refuses to start with the wrong key or none.
func TestSecretsAtRest(t *testing.T) {
	s := Start(t)
	if !strings.Contains(s.Output(), seUnsealedWarning) {
		t.Errorf("serve without secrets.key did not warn %q:\n%s", seUnsealedWarning, s.Output())
	}
	b := NewBrowser(t)
	b.Authorize(s, AuthParams(), "alice", alicePass)
	totpKey, _, enrolled, _ := mfaEnrol(t, s, b, "alice", alicePass)
	steps := &seSteps{used: map[int64]bool{enrolled.Unix() / 30: true}}
	before := seClientToken(t, s)

	dbFile := filepath.Join(filepath.Dir(s.Config), "fedhub.db")
	plain := seStored(t, dbFile)
	if len(plain) != 2 || !bytes.Contains(plain[1], []byte(totpKey)) {
		t.Fatalf("before a key is set the database holds %d secrets, want a signing key and alice's TOTP key as they are", len(plain))
	}
	base, err := os.ReadFile(s.Config)
	if err != nil {
		t.Fatal(err)
	}
	key1, key2, key3 := seNewKey(t), seNewKey(t), seNewKey(t)
	withKeys := func(current string, previous ...string) {
		t.Helper()
		cfg := string(base) + "secrets:\n  key: ${SE_KEY}\n"
		env := []string{"SE_KEY=" + current}
		if len(previous) > 0 {
			cfg += "  previous_keys: [\"${SE_OLD}\"]\n"
			env = append(env, "SE_OLD="+previous[0])
		}
		if err := os.WriteFile(s.Config, []byte(cfg), 0o600); err != nil {
			t.Fatal(err)
		}
		s.env = append(s.env, env...) // the last of a name wins
	}

	// A key is set: what was stored before still opens, and nothing warns.
	s.Stop(t)
	withKeys(key1)
	s.start(t)
	if strings.Contains(s.Output(), seUnsealedWarning) {
		t.Errorf("serve with secrets.key still warns:\n%s", s.Output())
	}
	seWantActive(t, s, before)

	// Re-keying seals both, once; the database files no longer hold them as they were.
	seRekey(t, s, key1, 1)
	seRekey(t, s, key1, 0)
	seWantGone(t, dbFile, plain)
	for _, v := range seStored(t, dbFile) {
		if !seKeyring(t, key1).Sealed(v) {
			t.Errorf("after rekey a value is not sealed with the key: %.20q", v)
		}
	}
	seWantActive(t, s, before)
	steps.signIn(t, s, totpKey)

	// Rotation: the new key seals, the old one still opens until rekey.
	s.Stop(t)
	withKeys(key2, key1)
	s.start(t)
	seWantActive(t, s, before)
	sealedWithKey1 := seStored(t, dbFile)
	seRekey(t, s, key2, 1)
	seWantGone(t, dbFile, sealedWithKey1)

	// The old key removed: everything opens with the new one alone.
	s.Stop(t)
	withKeys(key2)
	s.start(t)
	seWantActive(t, s, before)
	steps.signIn(t, s, totpKey)
	s.Stop(t)

	// The wrong key, or none: serve refuses to start, naming the key it needs.
	id2 := seKeyring(t, key2).CurrentID()
	withKeys(key3)
	seWantRefused(t, s, id2, "neither secrets.key")
	if err := os.WriteFile(s.Config, base, 0o600); err != nil {
		t.Fatal(err)
	}
	seWantRefused(t, s, id2, "no key is configured")
}

func seNewKey(t *testing.T) string {
	t.Helper()
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

func seKeyring(t *testing.T, key string) *secret.Keyring {
	t.Helper()
	k, err := secret.NewKeyring(key)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

// seStored reads the secrets fedhub keeps: its signing key, then the TOTP key.
func seStored(t *testing.T, dbFile string) [][]byte {
	t.Helper()
	db, err := sql.Open("sqlite3", "file:"+dbFile+"?_busy_timeout=10000")
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	var out [][]byte
	for _, q := range []string{"SELECT private_key FROM signing_keys", "SELECT CAST(secret AS BLOB) FROM mfa_factors"} {
		rows, err := db.Query(q)
		if err != nil {
			t.Fatal(err)
		}
		for rows.Next() {
			var v []byte
			if err := rows.Scan(&v); err != nil {
				t.Fatal(err)
			}
			out = append(out, v)
		}
		if err := rows.Close(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

// seWantGone fails when the database files still hold any of the values.
func seWantGone(t *testing.T, dbFile string, values [][]byte) {
	t.Helper()
	for _, f := range []string{dbFile, dbFile + "-wal"} {
		data, err := os.ReadFile(f)
		if err != nil && !os.IsNotExist(err) {
			t.Fatal(err)
		}
		for i, v := range values {
			if bytes.Contains(data, v) {
				t.Errorf("%s still holds stored secret %d as it was", filepath.Base(f), i)
			}
		}
	}
}

// seRekey runs `fedhub secrets rekey` and wants n signing keys and n TOTP keys re-sealed.
func seRekey(t *testing.T, s *Server, key string, n int) {
	t.Helper()
	out, err := s.CLI(t, "", "secrets", "rekey")
	if err != nil {
		t.Fatalf("secrets rekey = %v:\n%s", err, out)
	}
	id := seKeyring(t, key).CurrentID()
	for _, what := range []string{"signing keys", "TOTP keys"} {
		if want := fmt.Sprintf("%s: %d re-sealed", what, n); !strings.Contains(out, want) || !strings.Contains(out, id) {
			t.Errorf("secrets rekey does not say %q with key %s:\n%s", want, id, out)
		}
	}
}

// seClientToken is an access token of the client credentials grant.
func seClientToken(t *testing.T, s *Server) string {
	t.Helper()
	a := ocPost(t, s, "/token", &ocRP, url.Values{"grant_type": {"client_credentials"}})
	tok := a.str("access_token")
	if tok == "" {
		t.Fatalf("client credentials: %s", a.Raw)
	}
	return tok
}

// seWantActive: the token introspects as active, and a new one can be had.
func seWantActive(t *testing.T, s *Server, tok string) {
	t.Helper()
	for _, tk := range []string{tok, seClientToken(t, s)} {
		if a := ocPost(t, s, "/introspect", &ocRP, url.Values{"token": {tk}}); a.Body["active"] != true {
			t.Errorf("introspection = %s, want active", a.Raw)
		}
	}
}

// seSteps hands out TOTP time steps not used yet, from the ±1 step window
// fedhub accepts, so that several sign-ins need not wait for the clock.
type seSteps struct{ used map[int64]bool }

func (st *seSteps) signIn(t *testing.T, s *Server, key string) {
	t.Helper()
	now := time.Now().Unix() / 30
	step := int64(-1)
	for _, c := range []int64{now - 1, now, now + 1} {
		if !st.used[c] {
			step = c
			break
		}
	}
	if step < 0 {
		t.Fatal("no unused TOTP step in the window")
	}
	st.used[step] = true
	code, err := totp.GenerateCode(key, time.Unix(step*30+15, 0))
	if err != nil {
		t.Fatal(err)
	}
	params := AuthParams()
	b := NewBrowser(t)
	resp, _ := b.Submit(b.OpenLogin(s, s.URL+"/authorize?"+params.Encode()), "alice", alicePass)
	page := mfaFollow(t, s, b, resp, "/login/factor?t=")
	resp, _ = b.PostForm(s.URL+"/login/factor", url.Values{"t": {mfaMatch(t, mfaToken, page)},
		"csrf": {mfaMatch(t, mfaCSRF, page)}, "code": {code}})
	ocWantCode(t, s, ocCallback(t, resp, redirectURI), params)
}

// seWantRefused runs serve and wants it to exit at once with an error naming the key.
func seWantRefused(t *testing.T, s *Server, keyID, says string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), 30*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, binary, "serve", "-c", s.Config)
	cmd.Env = s.env
	out, err := cmd.CombinedOutput()
	if err == nil || ctx.Err() != nil {
		t.Fatalf("serve did not refuse to start (%v):\n%s", err, out)
	}
	if !strings.Contains(string(out), keyID) || !strings.Contains(string(out), says) {
		t.Errorf("serve's refusal does not name key %s and say %q:\n%s", keyID, says, out)
	}
}
