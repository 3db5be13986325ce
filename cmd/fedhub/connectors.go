package main

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"net/http"
	"slices"
	"text/template"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/metrics"
	"github.com/fedhub/fedhub/secret"
)

// upstreamConnectors builds the configured connectors. None of them contacts
// its upstream here: fedhub starts even when an upstream is down.
func upstreamConnectors(ctx context.Context, cfg *config.Config, db *gorm.DB, secrets *secret.Keyring, log *slog.Logger, m *metrics.Metrics) ([]brokers.Connector, error) {
	var out []brokers.Connector
	for _, c := range cfg.Connectors {
		conn, err := upstreamConnector(ctx, cfg, c, out, db, secrets, log, m)
		if err != nil {
			return nil, err
		}
		out = append(out, conn)
	}
	return out, nil
}

// upstreamConnector builds one configured connector; before are the ones
// built before it (a Kerberos connector's resolve_with is among them).
func upstreamConnector(ctx context.Context, cfg *config.Config, c config.Connector, before []brokers.Connector, db *gorm.DB, secrets *secret.Keyring, log *slog.Logger, m *metrics.Metrics) (brokers.Connector, error) {
	impl, err := connectorImpl(ctx, cfg, c, before, db, secrets, log, m) // connectors name themselves in their logs
	if err != nil {
		return brokers.Connector{}, fmt.Errorf("connector %s: %w", c.ID, err)
	}
	mappers, err := buildMappers(c.Mappers)
	if err != nil {
		return brokers.Connector{}, fmt.Errorf("connector %s: %w", c.ID, err)
	}
	name := cmp.Or(c.Name, c.ID)
	label := cmp.Or(c.Label, "Sign in with "+name)
	return brokers.Connector{ID: c.ID, Name: name, Label: label, Icon: c.Icon, Hidden: c.Hidden,
		LinkOnly: c.LinkOnly, Enabled: c.IsEnabled(), Sync: c.Sync.Force(), Mappers: mappers,
		GroupsPassthrough: c.Groups == config.GroupsPassthrough, Impl: impl,
		Policy: policy(c), MFA: c.MFA, TrustUpstreamMFA: c.TrustUpstreamMFA,
		Recheck: brokers.Recheck{Interval: cmp.Or(c.RecheckInterval, config.DefaultRecheckInterval),
			FailOpen: c.UpstreamDown == config.UpstreamFailOpen}}, nil
}

// imports are the connectors that import their directory, with their periods.
func imports(cfg *config.Config) map[string]time.Duration {
	out := map[string]time.Duration{}
	for _, c := range cfg.Connectors {
		if c.Sync.Import {
			out[c.ID] = c.Sync.Period
		}
	}
	return out
}

// connectorImpl builds one connector through the registry; its upstream
// calls are reported to m.
func connectorImpl(ctx context.Context, cfg *config.Config, c config.Connector, before []brokers.Connector, db *gorm.DB, secrets *secret.Keyring, log *slog.Logger, m *metrics.Metrics) (any, error) {
	built := func(id string) (any, bool) {
		i := slices.IndexFunc(before, func(b brokers.Connector) bool { return b.ID == id })
		if i < 0 {
			return nil, false
		}
		return before[i].Impl, true
	}
	return connectors.Open(ctx, c, brokers.Deps{ID: c.ID, Name: cmp.Or(c.Name, c.ID), Issuer: cfg.Issuer, Built: built,
		Store: brokers.NewConnectorStore(db, c.ID, secrets), Log: log, Now: now,
		Observe:   func(op string, d time.Duration, failed bool) { m.Upstream(c.ID, op, d, failed) },
		Transport: func(op func(path string) string) http.RoundTripper { return m.Transport(c.ID, op) }})
}

func buildMappers(list []config.Mapper) (brokers.Mappers, error) {
	var out brokers.Mappers
	for i, m := range list {
		bm := brokers.Mapper{Kind: m.Type, Source: m.Source, Target: m.Target, Group: m.Group, Role: m.Role, To: m.To}
		if m.Type == brokers.MapUsernameTemplate {
			t, err := template.New("username").Option("missingkey=error").Parse(m.Template)
			if err != nil {
				return nil, fmt.Errorf("mapper %d: %w", i, err)
			}
			bm.Template = t
		}
		out = append(out, bm)
	}
	return out, nil
}

// policy is a connector's first-login configuration, with its defaults.
func policy(c config.Connector) firstlogin.Policy {
	p := firstlogin.Policy{OnNew: c.FirstLogin.OnNew, MatchBy: c.FirstLogin.MatchExistingBy,
		OnMatch: c.FirstLogin.OnMatch, TrustEmail: c.TrustEmail, Required: c.FirstLogin.RequiredFields,
		MultipleIdentities: c.MultipleIdentities}
	if p.OnNew == "" {
		p.OnNew = "create"
	}
	if p.MatchBy == "" {
		p.MatchBy = "none"
	}
	if p.OnMatch == "" {
		p.OnMatch = "confirm_and_reauthenticate"
	}
	return p
}
