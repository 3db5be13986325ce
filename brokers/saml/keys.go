package saml

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"math/big"
	"os"
	"time"
)

// spKeyBits is the size of a generated SP key.
const spKeyBits = 3072

// loadKey reads the SP key pair from files, or from the connector store,
// generating it there the first time (every node then shares it).
func (c *Connector) loadKey(ctx context.Context) error {
	var keyPEM, certPEM []byte
	switch {
	case c.cfg.SPKeyFile != "" && c.cfg.SPCertFile != "":
		var err error
		if keyPEM, err = os.ReadFile(c.cfg.SPKeyFile); err != nil {
			return fmt.Errorf("saml %s: sp_key_file: %w", c.cfg.ID, err)
		}
		if certPEM, err = os.ReadFile(c.cfg.SPCertFile); err != nil {
			return fmt.Errorf("saml %s: sp_cert_file: %w", c.cfg.ID, err)
		}
	case c.cfg.SPKeyFile != "" || c.cfg.SPCertFile != "":
		return fmt.Errorf("saml %s: set both sp_key_file and sp_cert_file, or neither", c.cfg.ID)
	default:
		v, err := c.store.Value(ctx, "sp-key", func() ([]byte, error) { return generateSPKey(c.cfg.ID) })
		if err != nil {
			return fmt.Errorf("saml %s: SP key: %w", c.cfg.ID, err)
		}
		keyPEM, certPEM = v, v
	}
	key, cert, err := parseKeyPair(keyPEM, certPEM)
	if err != nil {
		return fmt.Errorf("saml %s: SP key pair: %w", c.cfg.ID, err)
	}
	c.key, c.cert = key, cert
	return nil
}

// generateSPKey makes an RSA key and a self-signed certificate, PEM-encoded
// together.
func generateSPKey(id string) ([]byte, error) {
	key, err := rsa.GenerateKey(rand.Reader, spKeyBits)
	if err != nil {
		return nil, err
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	cn := "fedhub SAML SP " + id
	if len(cn) > 64 {
		cn = cn[:64]
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          serial,
		Subject:               pkix.Name{CommonName: cn},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.AddDate(10, 0, 0),
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return nil, err
	}
	pkcs8, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	var b bytes.Buffer
	_ = pem.Encode(&b, &pem.Block{Type: "PRIVATE KEY", Bytes: pkcs8})
	_ = pem.Encode(&b, &pem.Block{Type: "CERTIFICATE", Bytes: der})
	return b.Bytes(), nil
}

// parseKeyPair finds an RSA private key in keyPEM and the first certificate
// in certPEM, and checks that they belong together.
func parseKeyPair(keyPEM, certPEM []byte) (*rsa.PrivateKey, *x509.Certificate, error) {
	var key *rsa.PrivateKey
	for rest := keyPEM; key == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			rk, ok := k.(*rsa.PrivateKey)
			if !ok {
				return nil, nil, fmt.Errorf("the key is %T: SAML decryption needs an RSA key", k)
			}
			key = rk
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			key = k
		case "EC PRIVATE KEY":
			return nil, nil, errors.New("the key is an EC key: SAML decryption needs an RSA key")
		}
	}
	if key == nil {
		return nil, nil, errors.New("no PEM private key found")
	}
	var cert *x509.Certificate
	for rest := certPEM; cert == nil; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		if b.Type == "CERTIFICATE" {
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				return nil, nil, err
			}
			cert = c
		}
	}
	if cert == nil {
		return nil, nil, errors.New("no PEM certificate found")
	}
	if key.N.BitLen() < 2048 {
		return nil, nil, fmt.Errorf("the RSA key has %d bits; at least 2048 are needed", key.N.BitLen())
	}
	if !key.PublicKey.Equal(cert.PublicKey) {
		return nil, nil, errors.New("the certificate does not belong to the key")
	}
	return key, cert, nil
}
