package saml_test

import (
	"errors"
	"testing"
	"time"

	"github.com/fedhub/fedhub/login"
)

// TestRefreshMaxAgeWithoutUpstream: SAML cannot ask the IdP again; a login
// holds for max_age_without_upstream after the person authenticated there
// (test clock), and its upstream state is handed on unchanged.
func TestRefreshMaxAgeWithoutUpstream(t *testing.T) {
	now := time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)
	e := newEnv(t)
	cfg := e.config("partner")
	cfg.MaxAgeWithoutUpstream, cfg.Now = time.Minute, func() time.Time { return now }
	c := e.connector(cfg)
	id := login.Identity{Connector: "partner", Subject: "nameid-1", Upstream: []byte("state")}
	for _, tc := range []struct {
		age  time.Duration
		want error
	}{{0, nil}, {time.Minute, nil}, {time.Minute + time.Second, login.ErrUpstreamRefused}, {48 * time.Hour, login.ErrUpstreamRefused}} {
		res, err := c.Refresh(t.Context(), id, now.Add(-tc.age))
		if !errors.Is(err, tc.want) || (tc.want == nil && (err != nil || string(res.Upstream) != "state")) {
			t.Errorf("login %s old: %v (state %q), want %v", tc.age, err, res.Upstream, tc.want)
		}
	}
	// The default is a day.
	cfg.MaxAgeWithoutUpstream = 0
	c = e.connector(cfg)
	for age, want := range map[time.Duration]error{23 * time.Hour: nil, 25 * time.Hour: login.ErrUpstreamRefused} {
		if _, err := c.Refresh(t.Context(), id, now.Add(-age)); !errors.Is(err, want) || (want == nil && err != nil) {
			t.Errorf("default, login %s old: %v, want %v", age, err, want)
		}
	}
}
