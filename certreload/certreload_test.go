package certreload

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"log/slog"
	"math/big"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// writePair writes a self-signed certificate for cn and its key.
func writePair(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kder, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
}

func served(t *testing.T, r *Reloader) string {
	t.Helper()
	c, err := r.GetCertificate(&tls.ClientHelloInfo{})
	if err != nil {
		t.Fatal(err)
	}
	leaf, err := x509.ParseCertificate(c.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	return leaf.Subject.CommonName
}

func TestReloader(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	writePair(t, certFile, keyFile, "first")
	clock := time.Date(2026, 11, 30, 12, 0, 0, 0, time.UTC)
	r, err := New(certFile, keyFile, slog.New(slog.DiscardHandler), func() time.Time { return clock })
	if err != nil {
		t.Fatal(err)
	}
	if cfg := r.Config(); cfg.MinVersion != tls.VersionTLS12 {
		t.Errorf("MinVersion = %x, want TLS 1.2", cfg.MinVersion)
	}
	steps := []struct {
		name    string
		change  func()
		advance time.Duration
		want    string
	}{
		{"unchanged", func() {}, 2 * time.Second, "first"},
		{"replaced, not yet looked at", func() { writePair(t, certFile, keyFile, "second") }, 0, "first"},
		{"replaced, a second later", func() {}, checkEvery, "second"},
		{"a broken certificate keeps the last good one", func() {
			if err := os.WriteFile(certFile, []byte("-----BEGIN CERTIFICATE-----\ngarbage\n"), 0o600); err != nil {
				t.Fatal(err)
			}
		}, checkEvery, "second"},
		{"fixed again", func() { writePair(t, certFile, keyFile, "third") }, checkEvery, "third"},
	}
	for _, s := range steps {
		s.change()
		clock = clock.Add(s.advance)
		if got := served(t, r); got != s.want {
			t.Errorf("%s: served %q, want %q", s.name, got, s.want)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	if _, err := New(certFile, keyFile, slog.New(slog.DiscardHandler), time.Now); err == nil {
		t.Error("New without files succeeded")
	}
	writePair(t, certFile, keyFile, "a")
	writePair(t, certFile, filepath.Join(dir, "other.key"), "b") // the key no longer matches
	if _, err := New(certFile, keyFile, slog.New(slog.DiscardHandler), time.Now); err == nil {
		t.Error("New with a key that does not match succeeded")
	}
}
