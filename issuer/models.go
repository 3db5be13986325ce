package issuer

import "time"

// Client is an OAuth client. Clients come from the configuration and are
// written here at start-up, so that every node sees the same ones.
type Client struct {
	ID                     string `gorm:"primaryKey;size:255"`
	Name                   string `gorm:"size:255"`
	SecretHash             string `gorm:"size:128"` // sha256:<hex>; empty for public clients
	Public                 bool
	AuthMethod             string     `gorm:"size:32"`                   // "": client_secret_basic or _post; see config.Auth…
	JWKS                   string     `gorm:"column:jwks;type:text"`     // private_key_jwt: its public keys, a JWK Set in JSON…
	JWKSURI                string     `gorm:"column:jwks_uri;size:2048"` // …or where it publishes them
	RedirectURIs           []string   `gorm:"serializer:json"`
	PostLogoutRedirectURIs []string   `gorm:"serializer:json"`
	BackchannelLogoutURI   string     `gorm:"size:2048"`
	GrantTypes             []string   `gorm:"serializer:json"`
	ExchangeAudiences      []string   `gorm:"serializer:json"` // token exchange: the audiences it may ask for
	Scopes                 []string   `gorm:"serializer:json"` // beyond OpenID Connect's
	MFA                    string     `gorm:"size:16"`         // second-factor policy: off | optional | required
	ThirdParty             bool       // asks the person's consent before it gets a code
	SecretRotatedAt        *time.Time // set by an admin: the database's secret then wins over the configuration's
	// RemovedAt is set at start-up when the configuration no longer has the
	// client: it is then refused everywhere. The row stays, so that admins see
	// it and its grants stay auditable; re-added to the file, it is enabled again.
	RemovedAt *time.Time
	UpdatedAt time.Time
}

// SigningKey is one of the issuer's keys. The newest signs; older ones stay in
// the JWKS until PublishUntil so that tokens they signed still verify.
type SigningKey struct {
	ID           string `gorm:"primaryKey;size:64"` // the JWK "kid"
	Algorithm    string `gorm:"size:16;not null"`
	PrivateKey   []byte `gorm:"not null"` // PKCS #8 DER; never leaves the database
	CreatedAt    time.Time
	SignsFrom    time.Time  // published before it signs, so every node and cache knows it first
	PublishUntil *time.Time `gorm:"index"`
}

// AuthCode is an issued authorization code, stored by hash.
type AuthCode struct {
	Hash          string `gorm:"primaryKey;size:64"`
	GrantID       string `gorm:"size:64;not null"`
	ClientID      string `gorm:"size:255;not null"`
	RedirectURI   string `gorm:"size:2048;not null"`
	CodeChallenge string `gorm:"size:128"`
	Nonce         string `gorm:"size:2048"`
	UserID        string `gorm:"size:36;not null"`
	SessionID     string `gorm:"size:64"`
	Scope         string `gorm:"size:2048"`
	Claims        string `gorm:"size:4096"`
	AuthTime      time.Time
	AMR           string    `gorm:"size:255"`
	ACR           string    `gorm:"size:64"`
	IDP           string    `gorm:"size:64"`
	Subject       string    `gorm:"size:512"` // the identity at IDP signed in with
	ExpiresAt     time.Time `gorm:"index"`
	UsedAt        *time.Time
}

// Grant is what a person (or a client, for client credentials) authorised: the
// family that an authorization code's tokens and all their refreshes belong to.
// Revoking it revokes every token of the family.
type Grant struct {
	ID        string `gorm:"primaryKey;size:64"`
	ClientID  string `gorm:"size:255;not null;index"`
	UserID    string `gorm:"size:36;index"`
	SessionID string `gorm:"size:64;index"`
	Scope     string `gorm:"size:2048"`
	AuthTime  time.Time
	AMR       string `gorm:"size:255"` // space-separated
	ACR       string `gorm:"size:64"`
	IDP       string `gorm:"size:64"`
	Subject   string `gorm:"size:512"`  // the identity at IDP signed in with: its end ends the grant
	Claims    string `gorm:"size:4096"` // the "claims" request parameter, for userinfo
	CreatedAt time.Time
	RevokedAt *time.Time
}

// RefreshToken is a refresh token, stored by hash. Each use rotates it; a used
// one presented again revokes its grant.
type RefreshToken struct {
	Hash      string    `gorm:"primaryKey;size:64"`
	GrantID   string    `gorm:"size:64;not null;index"`
	ClientID  string    `gorm:"size:255;not null"`
	Scope     string    `gorm:"size:2048"`
	ExpiresAt time.Time `gorm:"index"`
	UsedAt    *time.Time
}

// RevokedAccessToken remembers a revoked access token (by its "jti") until it
// would have expired anyway.
type RevokedAccessToken struct {
	JTI       string    `gorm:"primaryKey;size:64"`
	ExpiresAt time.Time `gorm:"index"`
}

// Session is an SSO session: the browser's cookie holds a random token whose
// hash is TokenHash; ID is the public "sid".
type Session struct {
	ID         string `gorm:"primaryKey;size:64"`
	TokenHash  string `gorm:"size:64;not null;uniqueIndex"`
	UserID     string `gorm:"size:36;not null;index"`
	AuthTime   time.Time
	AMR        string `gorm:"size:255"`
	ACR        string `gorm:"size:64"`
	IDP        string `gorm:"size:64"`
	Subject    string `gorm:"size:512"` // the identity at IDP signed in with: its end ends the session
	CreatedAt  time.Time
	LastSeenAt time.Time
	ExpiresAt  time.Time `gorm:"index"`
	EndedAt    *time.Time
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any {
	return []any{&Client{}, &ClientVersion{}, &SigningKey{}, &AuthCode{}, &Grant{},
		&RefreshToken{}, &RevokedAccessToken{}, &Session{}, &LogoutNotice{}, &UsedAssertion{}, &DeviceAuthorization{}, &Consent{}, &ConsentRequest{}}
}
