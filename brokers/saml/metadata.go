package saml

import (
	"context"
	"crypto/x509"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/crewjam/saml"
)

// idpMetadata is one good load of the IdP metadata.
type idpMetadata struct {
	ed       *saml.EntityDescriptor
	signing  []*x509.Certificate
	loadedAt time.Time
}

// current returns the IdP metadata, loading it if there is none yet and
// starting a background reload when it is stale.
func (c *Connector) current(ctx context.Context) (*idpMetadata, error) {
	c.mu.Lock()
	md := c.idp
	c.mu.Unlock()
	if md != nil {
		c.maybeRefresh()
		return md, nil
	}
	c.fetchMu.Lock()
	defer c.fetchMu.Unlock()
	c.mu.Lock()
	md = c.idp
	c.mu.Unlock()
	if md != nil {
		return md, nil
	}
	return c.reload(ctx)
}

// maybeRefresh reloads stale metadata in the background, at most once per
// retry interval, keeping the current metadata meanwhile and on failure.
func (c *Connector) maybeRefresh() {
	retry := min(c.refresh, time.Minute)
	c.mu.Lock()
	due := c.idp != nil && time.Since(c.idp.loadedAt) >= c.refresh && time.Since(c.lastTry) >= retry
	c.mu.Unlock()
	if !due || !c.fetchMu.TryLock() {
		return
	}
	go func() {
		defer c.fetchMu.Unlock()
		ctx, cancel := context.WithTimeout(context.Background(), fetchTimeout)
		defer cancel()
		_, _ = c.reload(ctx)
	}()
}

// reload loads the metadata now; fetchMu must be held.
func (c *Connector) reload(ctx context.Context) (*idpMetadata, error) {
	c.mu.Lock()
	c.lastTry = time.Now()
	c.mu.Unlock()
	md, err := c.fetch(ctx)
	c.mu.Lock()
	defer c.mu.Unlock()
	if err != nil {
		c.lastErr, c.lastErrAt = err, time.Now()
		args := []any{"connector", c.cfg.ID, "source", c.source(), "err", err}
		if c.idp != nil {
			args = append(args, "kept_metadata_from", c.idp.loadedAt)
		}
		c.log.WarnContext(ctx, "SAML IdP metadata could not be loaded", args...)
		return nil, err
	}
	if c.idp != nil && c.idp.ed.EntityID != md.ed.EntityID {
		c.log.Warn("SAML IdP entity ID changed", "connector", c.cfg.ID, "old", c.idp.ed.EntityID, "new", md.ed.EntityID)
	}
	c.idp, c.lastErr = md, nil
	return md, nil
}

func (c *Connector) source() string {
	if c.cfg.IDPMetadataFile != "" {
		return c.cfg.IDPMetadataFile
	}
	return c.cfg.IDPMetadataURL
}

func (c *Connector) fetch(ctx context.Context) (*idpMetadata, error) {
	var data []byte
	if c.cfg.IDPMetadataFile != "" {
		f, err := os.Open(c.cfg.IDPMetadataFile)
		if err != nil {
			return nil, err
		}
		defer f.Close()
		if data, err = io.ReadAll(io.LimitReader(f, maxMetadata+1)); err != nil {
			return nil, err
		}
	} else {
		ctx, cancel := context.WithTimeout(ctx, fetchTimeout)
		defer cancel()
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.cfg.IDPMetadataURL, nil)
		if err != nil {
			return nil, err
		}
		req.Header.Set("Accept", "application/samlmetadata+xml, application/xml, text/xml")
		resp, err := c.client.Do(req)
		if err != nil {
			return nil, err
		}
		defer resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return nil, fmt.Errorf("HTTP status %d", resp.StatusCode)
		}
		if data, err = io.ReadAll(io.LimitReader(resp.Body, maxMetadata+1)); err != nil {
			return nil, err
		}
	}
	if len(data) > maxMetadata {
		return nil, fmt.Errorf("metadata is larger than %d bytes", maxMetadata)
	}
	return parseIDPMetadata(data)
}

// parseIDPMetadata reads an EntityDescriptor, or an EntitiesDescriptor that
// holds exactly one IdP, and checks it has what a login needs.
func parseIDPMetadata(data []byte) (*idpMetadata, error) {
	ed := &saml.EntityDescriptor{}
	if err := xml.Unmarshal(data, ed); err != nil {
		var eds saml.EntitiesDescriptor
		if err2 := xml.Unmarshal(data, &eds); err2 != nil {
			return nil, fmt.Errorf("not SAML metadata: %w", err)
		}
		var idps []saml.EntityDescriptor
		var walk func(saml.EntitiesDescriptor)
		walk = func(e saml.EntitiesDescriptor) {
			for _, d := range e.EntityDescriptors {
				if len(d.IDPSSODescriptors) > 0 {
					idps = append(idps, d)
				}
			}
			for _, sub := range e.EntitiesDescriptors {
				walk(sub)
			}
		}
		walk(eds)
		if len(idps) != 1 {
			return nil, fmt.Errorf("the metadata lists %d identity providers; give the metadata of exactly one", len(idps))
		}
		ed = &idps[0]
	}
	if ed.EntityID == "" {
		return nil, errors.New("the metadata has no entityID")
	}
	if len(ed.IDPSSODescriptors) == 0 {
		return nil, errors.New("the metadata has no IDPSSODescriptor")
	}
	md := &idpMetadata{ed: ed, loadedAt: time.Now()}
	sso := false
	for _, d := range ed.IDPSSODescriptors {
		for _, s := range d.SingleSignOnServices {
			sso = sso || ((s.Binding == saml.HTTPRedirectBinding || s.Binding == saml.HTTPPostBinding) && s.Location != "")
		}
		for _, kd := range d.KeyDescriptors {
			if kd.Use != "" && kd.Use != "signing" {
				continue
			}
			for _, xc := range kd.KeyInfo.X509Data.X509Certificates {
				der, err := base64.StdEncoding.DecodeString(strings.Join(strings.Fields(xc.Data), ""))
				if err != nil {
					return nil, fmt.Errorf("signing certificate: %w", err)
				}
				cert, err := x509.ParseCertificate(der)
				if err != nil {
					return nil, fmt.Errorf("signing certificate: %w", err)
				}
				md.signing = append(md.signing, cert)
			}
		}
	}
	if len(md.signing) == 0 {
		return nil, errors.New("the metadata has no signing certificate")
	}
	if !sso {
		return nil, errors.New("the metadata has no HTTP-Redirect or HTTP-POST SingleSignOnService")
	}
	return md, nil
}

// CertificateExpiry is the earliest NotAfter of the IdP signing certificates
// in the metadata loaded so far (the zero time before the first load).
func (c *Connector) CertificateExpiry() time.Time {
	c.mu.Lock()
	md := c.idp
	c.mu.Unlock()
	var t time.Time
	if md == nil {
		return t
	}
	for _, cert := range md.signing {
		if t.IsZero() || cert.NotAfter.Before(t) {
			t = cert.NotAfter
		}
	}
	return t
}

// Health reports whether logins can work: the IdP metadata loads (and
// refreshes), an IdP signing certificate is valid and not about to expire,
// and the SP certificate is valid. Messages name the expiry dates.
func (c *Connector) Health(ctx context.Context) error {
	md, err := c.current(ctx)
	if err != nil {
		return fmt.Errorf("IdP metadata from %s cannot be loaded: %v", c.source(), err)
	}
	c.mu.Lock()
	lastErr, lastErrAt := c.lastErr, c.lastErrAt
	c.mu.Unlock()
	if lastErr != nil {
		return fmt.Errorf("IdP metadata refresh from %s fails since %s (%v); using the metadata loaded at %s",
			c.source(), lastErrAt.UTC().Format(time.RFC3339), lastErr, md.loadedAt.UTC().Format(time.RFC3339))
	}
	now := time.Now()
	var latest time.Time
	var expired []string
	for _, cert := range md.signing {
		if now.Before(cert.NotBefore) || now.After(cert.NotAfter) {
			expired = append(expired, fmt.Sprintf("%q valid %s to %s", cert.Subject.CommonName,
				cert.NotBefore.UTC().Format(time.DateOnly), cert.NotAfter.UTC().Format(time.DateOnly)))
			continue
		}
		if cert.NotAfter.After(latest) {
			latest = cert.NotAfter
		}
	}
	if latest.IsZero() {
		return fmt.Errorf("no IdP signing certificate is valid now: %s", strings.Join(expired, "; "))
	}
	if latest.Sub(now) < certWarning {
		return fmt.Errorf("the IdP signing certificate expires on %s (in %d days): logins stop then unless the IdP publishes a new one",
			latest.UTC().Format(time.RFC3339), int(latest.Sub(now).Hours()/24))
	}
	if now.After(c.cert.NotAfter) || c.cert.NotAfter.Sub(now) < certWarning {
		return fmt.Errorf("the SP certificate expires on %s", c.cert.NotAfter.UTC().Format(time.RFC3339))
	}
	return nil
}
