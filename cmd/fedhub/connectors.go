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
	"github.com/fedhub/fedhub/brokers/kerberos"
	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/config"
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
	name := c.Name
	if name == "" {
		name = c.ID
	}
	label := c.Label
	if label == "" {
		label = "Sign in with " + name
	}
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

// connectorImpl builds one connector; its upstream calls are reported to m.
func connectorImpl(ctx context.Context, cfg *config.Config, c config.Connector, before []brokers.Connector, db *gorm.DB, secrets *secret.Keyring, log *slog.Logger, m *metrics.Metrics) (any, error) {
	name := c.Name
	if name == "" {
		name = c.ID
	}
	switch {
	case c.LDAP != nil:
		l := c.LDAP
		return ldap.New(ldap.Config{
			URLs: l.URLs, SRV: l.SRV, StartTLS: l.StartTLS, Insecure: l.Insecure, CAFile: l.CAFile,
			ServerName: l.ServerName, BindDN: l.BindDN, BindPassword: l.BindPassword,
			ActiveDirectory: l.ActiveDirectory, Domain: l.Domain, UPNSuffix: l.UPNSuffix,
			UserBase: l.UserBase, UserFilter: l.UserFilter, UsernameAttr: l.UsernameAttr,
			SubjectAttr: l.SubjectAttr, EmailAttr: l.EmailAttr, NameAttr: l.NameAttr,
			GroupBase: l.GroupBase, GroupFilter: l.GroupFilter, GroupMemberAttr: l.GroupMemberAttr,
			GroupNameAttr: l.GroupNameAttr, Timeout: l.Timeout, PoolSize: l.PoolSize, Now: now,
			Observe: func(op string, d time.Duration, failed bool) { m.Upstream(c.ID, op, d, failed) },
		}, log)
	case c.SAML != nil:
		sc := c.SAML
		return saml.New(ctx, saml.Config{ID: c.ID, BaseURL: cfg.Issuer, IDPMetadataURL: sc.IDPMetadataURL,
			IDPMetadataFile: sc.IDPMetadataFile, MetadataRefresh: sc.MetadataRefresh, EntityID: sc.EntityID,
			NameIDFormat: sc.NameIDFormat, SignRequests: sc.SignRequests, Binding: sc.Binding,
			SPKeyFile: sc.SPKeyFile, SPCertFile: sc.SPCertFile, AllowIDPInitiated: sc.AllowIDPInitiated,
			Attributes: sc.Attributes, MFAContextClasses: sc.MFAContextClasses,
			MaxAgeWithoutUpstream: sc.MaxAgeWithoutUpstream, Transport: m.Transport(c.ID, metrics.Metadata)},
			brokers.NewConnectorStore(db, c.ID, secrets), log)
	case c.OIDC != nil:
		o := c.OIDC
		return oidc.New(oidc.Config{ID: c.ID, Name: name, Issuer: o.Issuer, ClientID: o.ClientID,
			ClientSecret: o.ClientSecret, AuthMethod: o.AuthMethod, Scopes: o.Scopes,
			UseUserinfo: o.UseUserinfo, Claims: o.Claims, MFAACRValues: o.MFAACRValues,
			MaxAgeWithoutUpstream: o.MaxAgeWithoutUpstream, Now: now,
			HTTPClient: &http.Client{Timeout: oidcTimeout, Transport: m.Transport(c.ID, metrics.OIDCOperation)}}, log)
	case c.Kerberos != nil:
		k := c.Kerberos
		o := kerberos.Options{Replays: brokers.NewConnectorStore(db, c.ID, secrets), Now: now, Log: log}
		if k.ResolveWith != "" {
			i := slices.IndexFunc(before, func(b brokers.Connector) bool { return b.ID == k.ResolveWith })
			r, ok := kerberos.Resolver(nil), false
			if i >= 0 {
				r, ok = before[i].Impl.(kerberos.Resolver)
			}
			if !ok {
				return nil, fmt.Errorf("resolve_with: %q is not an Active Directory connector listed before it", k.ResolveWith)
			}
			o.Resolver = r
		}
		return kerberos.New(kerberos.Config{KeytabFile: k.KeytabFile, ServicePrincipal: k.ServicePrincipal, Realm: k.Realm,
			ClockSkew: k.ClockSkew, AutoFor: k.AutoFor, ResolveWith: k.ResolveWith}, o)
	}
	return nil, fmt.Errorf("type %q is not supported", c.Type)
}

// oidcTimeout bounds each call to an OIDC upstream.
const oidcTimeout = 10 * time.Second

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
