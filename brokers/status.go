package brokers

import (
	"context"
	"sync"
	"time"
)

// ConnectorStatus is a connector as the admin page shows it.
type ConnectorStatus struct {
	ID                string     `json:"id"`
	Name              string     `json:"name"`
	Kind              string     `json:"kind"` // password | redirect
	Enabled           bool       `json:"enabled"`
	Hidden            bool       `json:"hidden"`
	LinkOnly          bool       `json:"link_only"`
	Healthy           bool       `json:"healthy"`
	Error             string     `json:"error,omitempty"`              // the last health check's error
	CertificateExpiry *time.Time `json:"certificate_expiry,omitempty"` // SAML: the IdP's signing certificate
}

// healthTimeout bounds one connector's health check: a dead upstream must
// not hold up the page.
const healthTimeout = 5 * time.Second

// Connectors lists the connectors as configured, without asking any upstream.
func (s *Service) Connectors() []ConnectorStatus {
	out := make([]ConnectorStatus, len(s.connectors()))
	for i, c := range s.connectors() {
		out[i] = ConnectorStatus{ID: c.ID, Name: c.Name, Kind: kindOf(c.Impl), Enabled: c.Enabled, Hidden: c.Hidden,
			LinkOnly: c.LinkOnly, Healthy: true}
	}
	return out
}

// Status checks every connector's upstream at once and reports.
func (s *Service) Status(ctx context.Context) []ConnectorStatus {
	out := s.Connectors()
	var wg sync.WaitGroup
	for i, c := range s.connectors() {
		if exp, ok := c.Impl.(interface{ CertificateExpiry() time.Time }); ok {
			if t := exp.CertificateExpiry(); !t.IsZero() {
				out[i].CertificateExpiry = &t
			}
		}
		hc, ok := c.Impl.(HealthChecker)
		if !ok {
			continue
		}
		wg.Go(func() {
			ctx, cancel := context.WithTimeout(ctx, healthTimeout)
			defer cancel()
			if err := hc.Health(ctx); err != nil {
				out[i].Healthy, out[i].Error = false, err.Error()
			}
		})
	}
	wg.Wait()
	return out
}

func kindOf(impl any) string {
	switch impl.(type) {
	case PasswordConnector:
		return "password"
	case RedirectConnector:
		return "redirect"
	case NegotiateConnector:
		return "negotiate"
	}
	return ""
}
