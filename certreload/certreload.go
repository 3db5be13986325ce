package certreload

import (
	"crypto/tls"
	"fmt"
	"log/slog"
	"os"
	"sync"
	"time"
)

// checkEvery is how often a handshake may look at the files.
const checkEvery = time.Second

// Reloader holds the certificate of a cert/key file pair.
type Reloader struct {
	certFile, keyFile string
	log               *slog.Logger
	now               func() time.Time

	mu      sync.Mutex
	current *tls.Certificate
	stamp   string    // the files' sizes and modification times when current was loaded
	checked time.Time // when the files were last looked at
}

// New loads the pair once: fedhub does not start with a certificate it cannot serve.
func New(certFile, keyFile string, log *slog.Logger, now func() time.Time) (*Reloader, error) {
	r := &Reloader{certFile: certFile, keyFile: keyFile, log: log, now: now}
	stamp, err := r.stampOf()
	if err != nil {
		return nil, err
	}
	if err := r.load(stamp); err != nil {
		return nil, err
	}
	r.checked = now()
	return r, nil
}

// Config is a server TLS configuration serving the pair: TLS 1.2 and newer.
func (r *Reloader) Config() *tls.Config {
	return &tls.Config{MinVersion: tls.VersionTLS12, GetCertificate: r.GetCertificate}
}

// GetCertificate serves the current certificate, loading the files first when
// they changed. A pair that does not load (a key not yet written next to its
// new certificate) keeps the previous certificate and is tried again.
func (r *Reloader) GetCertificate(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if now := r.now(); now.Sub(r.checked) >= checkEvery {
		r.checked = now
		stamp, err := r.stampOf()
		if err == nil && stamp != r.stamp {
			err = r.load(stamp)
			if err == nil {
				r.log.Info("TLS certificate reloaded", "cert_file", r.certFile)
			}
		}
		if err != nil {
			r.log.Warn("TLS certificate files changed but do not load: the previous certificate is served", "err", err)
		}
	}
	return r.current, nil
}

// load reads the pair; the caller holds mu or owns r.
func (r *Reloader) load(stamp string) error {
	cert, err := tls.LoadX509KeyPair(r.certFile, r.keyFile)
	if err != nil {
		return fmt.Errorf("tls: load %s and %s: %w", r.certFile, r.keyFile, err)
	}
	r.current, r.stamp = &cert, stamp
	return nil
}

// stampOf says when the files changed, by their sizes and modification times.
func (r *Reloader) stampOf() (string, error) {
	var stamp string
	for _, f := range []string{r.certFile, r.keyFile} {
		fi, err := os.Stat(f)
		if err != nil {
			return "", fmt.Errorf("tls: %w", err)
		}
		stamp += fmt.Sprintf("%d/%d;", fi.Size(), fi.ModTime().UnixNano())
	}
	return stamp, nil
}
