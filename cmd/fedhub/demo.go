package main

import (
	"fmt"
	"io"
	"net"

	"github.com/fedhub/fedhub/config"
)

// The demo configuration: everything a first look needs, on loopback.
const (
	demoClientID    = "demo-app"
	demoSecret      = "demo-secret"
	demoRedirectURI = "http://127.0.0.1:5555/callback"
	demoDatabase    = "fedhub-demo.db"
)

func demoConfig(listen string) (*config.Config, error) {
	cfg := config.Defaults()
	if listen == "" {
		listen = cfg.Listen
	}
	host, _, err := net.SplitHostPort(listen)
	if err != nil {
		return nil, fmt.Errorf("--listen %q: %w", listen, err)
	}
	if host == "" || host == "0.0.0.0" || host == "::" {
		listen = net.JoinHostPort("127.0.0.1", listen[len(host)+1:])
	}
	cfg.Listen = listen
	cfg.Issuer = "http://" + listen
	cfg.Storage = config.Storage{Driver: "sqlite", DSN: demoDatabase}
	cfg.Clients = []config.Client{{
		ID: demoClientID, Name: "Demo App", Secret: demoSecret,
		RedirectURIs:           []string{demoRedirectURI},
		PostLogoutRedirectURIs: []string{"http://127.0.0.1:5555/"},
		GrantTypes: []string{config.GrantAuthorizationCode, config.GrantRefreshToken,
			config.GrantClientCredentials, config.GrantPassword},
	}}
	cfg.Users = []config.User{{
		Username: "demo", Password: "demo", Email: "demo@example.com", EmailVerified: true,
		Name: "Demo User", Roles: []string{"user", "admin"}, Groups: []string{"demo"},
	}}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func printDemoBanner(w io.Writer, cfg *config.Config) {
	fmt.Fprintf(w, `
################################################################################
#  DEMO MODE — NOT FOR PRODUCTION                                              #
#  Well-known secrets, a demo user with password "demo", SQLite in %-12s#
################################################################################

  Issuer:     %[2]s
  Discovery:  %[2]s/.well-known/openid-configuration
  Management: http://%[6]s  (/healthz, /readyz, /metrics)
  Client:     %[3]s / %[4]s  (redirect URI %[5]s)
  User:       demo / demo

  Try:
    curl -s -u %[3]s:%[4]s -d grant_type=client_credentials %[2]s/token
    open %[2]s/authorize?client_id=%[3]s&response_type=code&scope=openid%%20profile%%20email&redirect_uri=%[5]s&state=xyz

`, demoDatabase, cfg.Issuer, demoClientID, demoSecret, demoRedirectURI, cfg.Management.Listen)
}
