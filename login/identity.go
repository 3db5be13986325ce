package login

import (
	"slices"
	"strings"
	"time"
)

// Identity is what a connector proved about a person.
type Identity struct {
	Connector     string
	Subject       string // the upstream's stable subject; email is never an identifier
	Username      string
	Email         string
	EmailVerified bool
	Name          string
	Groups        []string
	Raw           map[string]any // raw claims or attributes, for mappers

	// How the upstream says it authenticated the person; zero values when it
	// does not say (a password connector: the credential was typed just now).
	AuthTime time.Time // OIDC auth_time, SAML AuthnInstant
	AMR      []string  // OIDC amr (RFC 8176)
	ACR      string    // OIDC acr, SAML AuthnContextClassRef

	// Upstream is the connector's own state of the upstream session, kept
	// for the re-checks after login (an OIDC refresh token, for example).
	// brokers seals it as soon as the connector returns it.
	Upstream []byte `json:",omitempty"`
}

// Authentication tells the issuer who signed in and how.
type Authentication struct {
	UserID    string
	Connector string    // the "idp" claim
	Subject   string    // the connector's subject of the identity signed in with: what ends with it
	AMR       []string  // RFC 8176 methods really used: pwd, otp, hwk, swk, fed, mfa
	ACR       string    // the level reached: see ACRSingleFactor, ACRMultiFactor
	AuthTime  time.Time // when a credential was really presented
}

// SignedIn is a browser's SSO session as fedhub's own pages see it.
type SignedIn struct {
	SessionID string
	UserID    string
	AuthTime  time.Time // when its login presented a credential
}

// The authentication context classes fedhub issues in "acr".
const (
	ACRSingleFactor = "1" // one factor: a password, or an upstream's single-factor login
	ACRMultiFactor  = "2" // two factors, here or at a trusted upstream
)

// NeedsMultiFactor reports whether an application's acr_values (its
// acceptable levels, in order of preference) leave only multi-factor.
func NeedsMultiFactor(acrValues string) bool {
	levels := strings.Fields(acrValues)
	return slices.Contains(levels, ACRMultiFactor) && !slices.Contains(levels, ACRSingleFactor)
}
