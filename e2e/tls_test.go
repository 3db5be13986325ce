package e2e

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"
)

// tlCA is a test certificate authority that issues server certificates for 127.0.0.1.
type tlCA struct {
	cert *x509.Certificate
	key  *ecdsa.PrivateKey
	pool *x509.CertPool
}

func tlNewCA(t *testing.T) *tlCA {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fedhub test CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour), IsCA: true,
		BasicConstraintsValid: true, KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, _ := x509.ParseCertificate(der)
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return &tlCA{cert: cert, key: key, pool: pool}
}

// issue writes a server certificate for 127.0.0.1 named cn, and its key.
func (ca *tlCA) issue(t *testing.T, certFile, keyFile, cn string) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(time.Hour),
		IPAddresses: []net.IP{net.ParseIP("127.0.0.1")}, ExtKeyUsage: []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth}}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, ca.cert, &key.PublicKey, ca.key)
	if err != nil {
		t.Fatal(err)
	}
	kder, _ := x509.MarshalPKCS8PrivateKey(key)
	// The key first: a reload between the two writes finds a pair that does not match and waits.
	if err := os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: kder}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
}

// tlServed is the name on the certificate a new TLS connection to addr gets.
func tlServed(t *testing.T, addr string, pool *x509.CertPool, maxVersion uint16) (string, error) {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: maxVersion})
	if err != nil {
		return "", err
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].Subject.CommonName, nil
}

// TestTLS: fedhub serves https itself; a go-oidc RP signs a user in over
// it; a replaced certificate is served without a restart; TLS 1.1 is refused.
func TestTLS(t *testing.T) {
	ca := tlNewCA(t)
	dir := t.TempDir()
	certFile, keyFile := filepath.Join(dir, "tls.crt"), filepath.Join(dir, "tls.key")
	ca.issue(t, certFile, keyFile, "first")
	client := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: ca.pool}}}
	cfg := defaultConfig + "tls:\n  cert_file: " + certFile + "\n  key_file: " + keyFile + "\n"
	s := Start(t, WithConfig(cfg), WithHTTPS(client))
	addr := strings.TrimPrefix(s.URL, "https://")

	ctx := oidc.ClientContext(t.Context(), client)
	provider, err := oidc.NewProvider(ctx, s.URL)
	if err != nil {
		t.Fatalf("go-oidc discovery over https: %v", err)
	}
	rp := oauth2.Config{ClientID: rpID, ClientSecret: rpSecret, Endpoint: provider.Endpoint(), RedirectURL: redirectURI,
		Scopes: []string{oidc.ScopeOpenID}}
	b := NewBrowser(t)
	b.Client.Transport = client.Transport
	params := AuthParams()
	code := ocWantCode(t, s, ocAuthorize(t, s, b, params), params)
	tok, err := rp.Exchange(ctx, code)
	if err != nil {
		t.Fatalf("code exchange over https: %v", err)
	}
	raw, _ := tok.Extra("id_token").(string)
	idt, err := provider.Verifier(&oidc.Config{ClientID: rpID}).Verify(ctx, raw)
	if err != nil || idt.Issuer != s.URL {
		t.Fatalf("ID token over https: %v (issuer %v)", err, idt)
	}

	if _, err := tlServed(t, addr, ca.pool, tls.VersionTLS11); err == nil {
		t.Error("a TLS 1.1 handshake succeeded")
	}
	ca.issue(t, certFile, keyFile, "second")
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(200 * time.Millisecond) {
		name, err := tlServed(t, addr, ca.pool, 0)
		if err != nil {
			t.Fatal(err)
		}
		if name == "second" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("still serving %q after the certificate was replaced", name)
		}
	}
	if !s.Logged("TLS certificate reloaded") { // written just after the swap
		t.Fatalf("the reload is not logged:\n%s", s.Output())
	}
}
