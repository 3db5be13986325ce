package oidc

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"golang.org/x/oauth2"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

var _ brokers.Refresher = (*Connector)(nil)

// upstreamSession is what the connector keeps of an upstream login, for the
// re-checks after it (login.Identity.Upstream; brokers seals it at rest).
type upstreamSession struct {
	RefreshToken string    `json:"refresh_token,omitempty"`
	AccessToken  string    `json:"access_token,omitempty"`
	Expiry       time.Time `json:"expiry,omitzero"`
}

// keep is the upstream session of tok's tokens; a refresh that returns no
// new refresh token keeps the old one (the upstream does not rotate them).
func keep(tok *oauth2.Token, oldRefresh string) []byte {
	s := upstreamSession{RefreshToken: tok.RefreshToken, AccessToken: tok.AccessToken, Expiry: tok.Expiry}
	if s.RefreshToken == "" {
		s.RefreshToken = oldRefresh
	}
	b, _ := json.Marshal(s) // strings and a time: cannot fail
	return b
}

// Refresh implements brokers.Refresher. With the upstream's refresh token it
// refreshes it, and the upstream's refusal (invalid_grant) is the no; without
// one it asks userinfo with the access token while that lives; after that the
// upstream cannot be asked, and the login holds for MaxAgeWithoutUpstream
// from authAt.
func (c *Connector) Refresh(ctx context.Context, id login.Identity, authAt time.Time) (brokers.Rechecked, error) {
	var s upstreamSession
	if len(id.Upstream) > 0 {
		if err := json.Unmarshal(id.Upstream, &s); err != nil {
			return brokers.Rechecked{}, fmt.Errorf("oidc %s: read the upstream session: %w", c.id, err)
		}
	}
	if s.RefreshToken == "" && (s.AccessToken == "" || !c.now().Before(s.Expiry)) {
		if age := c.now().Sub(authAt); age > c.maxAgeWithout {
			return brokers.Rechecked{}, fmt.Errorf("%w: %s gave no refresh token and the login is %s old, more than max_age_without_upstream (%s)",
				login.ErrUpstreamRefused, c.name, age.Round(time.Second), c.maxAgeWithout)
		}
		return brokers.Rechecked{Upstream: id.Upstream}, nil
	}
	up, err := c.upstream(ctx)
	if err != nil {
		return brokers.Rechecked{}, fmt.Errorf("oidc %s: discovery: %w", c.id, err)
	}
	ctx = oidc.ClientContext(ctx, c.http)
	if s.RefreshToken != "" {
		return c.refreshToken(ctx, up, id, s.RefreshToken)
	}
	_, err = up.provider.UserInfo(ctx, oauth2.StaticTokenSource(&oauth2.Token{AccessToken: s.AccessToken, TokenType: "Bearer"}))
	// go-oidc reports a refused token only in its message, "<status>: <body>".
	if err != nil && (strings.HasPrefix(err.Error(), "401 ") || strings.HasPrefix(err.Error(), "403 ")) {
		return brokers.Rechecked{}, fmt.Errorf("%w: %s refused the access token at userinfo", login.ErrUpstreamRefused, c.name)
	}
	if err != nil {
		return brokers.Rechecked{}, fmt.Errorf("oidc %s: userinfo: %w", c.id, err)
	}
	return brokers.Rechecked{Upstream: id.Upstream}, nil
}

// refreshToken refreshes the upstream's refresh token; a new ID token in the
// answer must be about the same person.
func (c *Connector) refreshToken(ctx context.Context, up *upstream, id login.Identity, refresh string) (brokers.Rechecked, error) {
	tok, err := c.oauth2Config(up, "").TokenSource(ctx, &oauth2.Token{RefreshToken: refresh}).Token()
	var re *oauth2.RetrieveError
	if errors.As(err, &re) && (re.ErrorCode == "invalid_grant" || (re.ErrorCode == "" && statusOf(re) == http.StatusBadRequest)) {
		c.log.InfoContext(ctx, "upstream refused the refresh token", "error", safeCode(re.ErrorCode),
			"error_description", truncate(re.ErrorDescription, 200))
		return brokers.Rechecked{}, fmt.Errorf("%w: %s refused its refresh token (%s)", login.ErrUpstreamRefused, c.name, safeCode(re.ErrorCode))
	}
	if err != nil {
		return brokers.Rechecked{}, fmt.Errorf("oidc %s: refresh: %w", c.id, err)
	}
	if rawID, _ := tok.Extra("id_token").(string); rawID != "" {
		// OIDC Core 12.2: a refreshed ID token may lack a nonce and keeps its sub.
		idt, err := up.verifier.Verify(ctx, rawID)
		if err != nil {
			return brokers.Rechecked{}, fmt.Errorf("oidc %s: refreshed ID token rejected: %w", c.id, err)
		}
		if idt.Issuer+"|"+idt.Subject != id.Subject {
			return brokers.Rechecked{}, fmt.Errorf("%w: %s's refreshed ID token is about another subject", login.ErrUpstreamRefused, c.name)
		}
	}
	return brokers.Rechecked{Upstream: keep(tok, refresh)}, nil
}
