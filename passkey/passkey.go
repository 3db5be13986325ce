package passkey

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"slices"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// Errors a caller tells apart with errors.Is; every error returned wraps one of them or is
// a database or caller error.
var (
	// ErrNotFound: no such credential for this user, or the user has none.
	ErrNotFound = errors.New("passkey: no such credential")
	// ErrChallenge: no challenge for this binding, or it expired, was used, was for
	// another user, or the response answers another challenge.
	ErrChallenge = errors.New("passkey: no valid challenge for this binding")
	// ErrVerification: the browser's response is malformed or does not verify (origin, RP
	// ID, flags, signature, sign counter).
	ErrVerification = errors.New("passkey: verification failed")
	// ErrExists: the credential being registered is already registered (to anyone).
	ErrExists = errors.New("passkey: credential already registered")
	// ErrName: a name that is empty once trimmed.
	ErrName = errors.New("passkey: empty name")
)

const (
	// ChallengeTTL is how long a Begin's challenge can be finished.
	ChallengeTTL = 5 * time.Minute
	// MaxResponseSize bounds the browser's response given to a Finish.
	MaxResponseSize = 64 << 10
	// MaxNameLength bounds a credential's name, in characters; longer names are cut.
	MaxNameLength = 64
	// DefaultName names a credential registered without a name.
	DefaultName = "Passkey"

	maxUserID       = 64   // WebAuthn's limit on a user handle
	maxCredentialID = 1023 // WebAuthn's limit on a credential ID
	maxBinding      = 1024
)

// Credential is one registered WebAuthn credential of a user.
type Credential struct {
	ID           string `gorm:"primaryKey;size:1400"` // base64url (no padding) of the credential ID
	UserID       string `gorm:"size:64;not null;index"`
	Name         string `gorm:"size:255;not null"`
	CreatedAt    time.Time
	LastUsedAt   *time.Time
	Discoverable bool // the client reported a discoverable credential, or one logged in without a username
	// CloneWarning: an assertion came with a sign counter that had not grown, so the
	// authenticator may have been cloned; that login was refused.
	CloneWarning bool

	PublicKey         []byte `gorm:"not null"` // COSE_Key
	SignCount         uint32
	AAGUID            []byte
	Transports        string `gorm:"size:255"` // comma-separated: the known transports the browser reported
	Attachment        string `gorm:"size:32"`  // "platform", "cross-platform" or ""
	AttestationFormat string `gorm:"size:32"`
	AttestationType   string `gorm:"size:32"`
	UserVerified      bool   // user verification was performed at registration (or authorised since)
	BackupEligible    bool   // a synced passkey
	BackupState       bool   // currently backed up

	// LoginUserVerified is set by FinishLogin and FinishDiscoverableLogin, not stored: the
	// authenticator verified the user (PIN, biometrics) in this login, not only their
	// presence. FinishDiscoverableLogin requires it.
	LoginUserVerified bool `gorm:"-"`
}

// TableName keeps the table's name in this package's namespace.
func (Credential) TableName() string { return "passkey_credentials" }

// Challenge is a pending ceremony: the go-webauthn session of a Begin, waiting for its Finish.
type Challenge struct {
	Ceremony    string    `gorm:"primaryKey;size:16"`
	BindingHash string    `gorm:"primaryKey;size:64"`
	UserID      string    `gorm:"size:64;not null;index"` // "" for a discoverable login
	Session     string    `gorm:"type:text;not null"`     // webauthn.SessionData, JSON
	ExpiresAt   time.Time `gorm:"not null;index"`
}

// TableName keeps the table's name in this package's namespace.
func (Challenge) TableName() string { return "passkey_challenges" }

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Credential{}, &Challenge{}} }

// The kinds of ceremony; a binding has at most one pending challenge of each.
const (
	ceremonyRegister     = "register"
	ceremonyLogin        = "login"
	ceremonyDiscoverable = "discoverable"
)

// Config is the relying party.
type Config struct {
	RPID    string   // the domain credentials are scoped to, e.g. "login.example.com"
	RPName  string   // shown by some authenticators; defaults to RPID
	Origins []string // where the pages run, e.g. "https://login.example.com"; https, or http on localhost
	// Now is the clock; time.Now by default.
	Now func() time.Time
}

// Service registers credentials and verifies logins with them.
type Service struct {
	db  *gorm.DB
	wa  *webauthn.WebAuthn
	now func() time.Time
}

// New returns the service for the relying party cfg over db.
func New(db *gorm.DB, cfg Config) (*Service, error) {
	if db == nil {
		return nil, errors.New("passkey: no database")
	}
	if err := protocol.ValidateRPID(cfg.RPID); err != nil || strings.Contains(cfg.RPID, "/") {
		return nil, fmt.Errorf("passkey: RP ID %q is not a domain: %v", cfg.RPID, err)
	}
	if len(cfg.Origins) == 0 {
		return nil, errors.New("passkey: no origins")
	}
	for _, o := range cfg.Origins {
		if err := checkOrigin(o, cfg.RPID); err != nil {
			return nil, fmt.Errorf("passkey: origin %q: %w", o, err)
		}
	}
	name := cfg.RPName
	if name == "" {
		name = cfg.RPID
	}
	timeouts := webauthn.TimeoutConfig{Timeout: ChallengeTTL, TimeoutUVD: ChallengeTTL}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:                  cfg.RPID,
		RPDisplayName:         name,
		RPOrigins:             slices.Clone(cfg.Origins),
		AttestationPreference: protocol.PreferNoAttestation,
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:        protocol.ResidentKeyRequirementPreferred,
			RequireResidentKey: protocol.ResidentKeyNotRequired(),
			UserVerification:   protocol.VerificationPreferred,
		},
		// Sent to the browser; the server enforces ChallengeTTL itself, with s.now.
		Timeouts: webauthn.TimeoutsConfig{Login: timeouts, Registration: timeouts},
	})
	if err != nil {
		return nil, fmt.Errorf("passkey: %w", err)
	}
	now := cfg.Now
	if now == nil {
		now = time.Now
	}
	return &Service{db: db, wa: wa, now: func() time.Time { return now().UTC() }}, nil
}

// checkOrigin: an https origin (http only on localhost) whose host is the RP ID or under it.
func checkOrigin(origin, rpID string) error {
	u, err := url.Parse(origin)
	if err != nil {
		return err
	}
	if u.Path != "" || u.RawQuery != "" || u.Fragment != "" || u.User != nil || u.Host == "" {
		return errors.New("not an origin (scheme://host[:port])")
	}
	host := strings.ToLower(u.Hostname())
	switch {
	case u.Scheme == "https":
	case u.Scheme == "http" && (host == "localhost" || strings.HasSuffix(host, ".localhost")):
	default:
		return errors.New("not https")
	}
	rp := strings.ToLower(rpID)
	if host != rp && !strings.HasSuffix(host, "."+rp) {
		return fmt.Errorf("host %q is not %q or under it", host, rpID)
	}
	return nil
}

// User is the account a credential is registered to.
type User struct {
	ID          string // the user's ID; also the WebAuthn user handle, at most 64 bytes
	Username    string // shown by authenticators to tell accounts apart
	DisplayName string // defaults to Username
}

func (u User) check() error {
	if err := checkUserID(u.ID); err != nil {
		return err
	}
	if u.Username == "" {
		return errors.New("no username")
	}
	return nil
}

func checkUserID(id string) error {
	if id == "" || len(id) > maxUserID {
		return fmt.Errorf("user ID must be 1 to %d bytes", maxUserID)
	}
	return nil
}

// waUser is a user as go-webauthn sees it.
type waUser struct {
	id, name, displayName string
	credentials           []webauthn.Credential
}

func (u waUser) WebAuthnID() []byte                         { return []byte(u.id) }
func (u waUser) WebAuthnName() string                       { return u.name }
func (u waUser) WebAuthnDisplayName() string                { return u.displayName }
func (u waUser) WebAuthnCredentials() []webauthn.Credential { return u.credentials }

// webauthn is the credential as go-webauthn sees it. CloneWarning starts false, so that
// after a validation it says whether that assertion's counter went backwards.
func (c Credential) webauthn() (webauthn.Credential, error) {
	id, err := base64.RawURLEncoding.DecodeString(c.ID)
	if err != nil {
		return webauthn.Credential{}, fmt.Errorf("stored credential ID %q: %w", c.ID, err)
	}
	flags := protocol.FlagUserPresent
	if c.UserVerified {
		flags |= protocol.FlagUserVerified
	}
	if c.BackupEligible {
		flags |= protocol.FlagBackupEligible
	}
	if c.BackupState {
		flags |= protocol.FlagBackupState
	}
	var transports []protocol.AuthenticatorTransport
	for t := range strings.SplitSeq(c.Transports, ",") {
		if t != "" {
			transports = append(transports, protocol.AuthenticatorTransport(t))
		}
	}
	return webauthn.Credential{
		ID:                id,
		PublicKey:         c.PublicKey,
		AttestationType:   c.AttestationType,
		AttestationFormat: c.AttestationFormat,
		Transport:         transports,
		Flags:             webauthn.NewCredentialFlags(flags),
		Authenticator: webauthn.Authenticator{
			AAGUID:     c.AAGUID,
			SignCount:  c.SignCount,
			Attachment: protocol.AuthenticatorAttachment(c.Attachment),
		},
	}, nil
}

func toWebAuthn(cs []Credential) ([]webauthn.Credential, error) {
	out := make([]webauthn.Credential, 0, len(cs))
	for _, c := range cs {
		wc, err := c.webauthn()
		if err != nil {
			return nil, err
		}
		out = append(out, wc)
	}
	return out, nil
}

// knownTransports are the transports kept from a browser's report; others are dropped.
var knownTransports = []protocol.AuthenticatorTransport{
	protocol.USB, protocol.NFC, protocol.BLE, protocol.SmartCard, protocol.Hybrid, protocol.Internal,
}

func joinTransports(ts []protocol.AuthenticatorTransport) string {
	var kept []string
	for _, t := range ts {
		if slices.Contains(knownTransports, t) && !slices.Contains(kept, string(t)) {
			kept = append(kept, string(t))
		}
	}
	return strings.Join(kept, ",")
}

// cleanName trims a name, drops control characters and cuts it to MaxNameLength characters.
func cleanName(name string) string {
	if !utf8.ValidString(name) {
		name = strings.ToValidUTF8(name, "")
	}
	name = strings.Map(func(r rune) rune {
		if unicode.IsControl(r) {
			return -1
		}
		return r
	}, name)
	name = strings.TrimSpace(name)
	if utf8.RuneCountInString(name) > MaxNameLength {
		name = strings.TrimSpace(string([]rune(name)[:MaxNameLength]))
	}
	return name
}

// Credentials returns the user's credentials, oldest first.
func (s *Service) Credentials(ctx context.Context, userID string) ([]Credential, error) {
	var cs []Credential
	err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&cs).Error
	if err != nil {
		return nil, fmt.Errorf("read passkeys: %w", err)
	}
	return cs, nil
}

// Rename renames one of the user's credentials.
func (s *Service) Rename(ctx context.Context, userID, credentialID, name string) error {
	name = cleanName(name)
	if name == "" {
		return fmt.Errorf("rename passkey: %w", ErrName)
	}
	res := s.db.WithContext(ctx).Model(&Credential{}).Where("id = ? AND user_id = ?", credentialID, userID).
		Update("name", name)
	if res.Error != nil {
		return fmt.Errorf("rename passkey: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("rename passkey: %w", ErrNotFound)
	}
	return nil
}

// Remove deletes one of the user's credentials.
func (s *Service) Remove(ctx context.Context, userID, credentialID string) error {
	res := s.db.WithContext(ctx).Where("id = ? AND user_id = ?", credentialID, userID).Delete(&Credential{})
	if res.Error != nil {
		return fmt.Errorf("remove passkey: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("remove passkey: %w", ErrNotFound)
	}
	return nil
}

// Reset deletes all the user's credentials and pending ceremonies, so that a registration
// begun before the reset cannot finish after it.
func (s *Service) Reset(ctx context.Context, userID string) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := tx.Where("user_id = ?", userID).Delete(&Credential{}).Error; err != nil {
			return err
		}
		return tx.Where("user_id = ?", userID).Delete(&Challenge{}).Error
	})
	if err != nil {
		return fmt.Errorf("reset passkeys: %w", err)
	}
	return nil
}

// Purge deletes expired challenges.
func (s *Service) Purge(ctx context.Context) error {
	if err := s.db.WithContext(ctx).Where("expires_at < ?", s.now()).Delete(&Challenge{}).Error; err != nil {
		return fmt.Errorf("purge passkey challenges: %w", err)
	}
	return nil
}

func checkBinding(binding string) error {
	if binding == "" || len(binding) > maxBinding {
		return fmt.Errorf("binding must be 1 to %d bytes", maxBinding)
	}
	return nil
}

// saveChallenge stores a Begin's session for its Finish, replacing the binding's earlier
// challenge of the same ceremony.
func (s *Service) saveChallenge(ctx context.Context, ceremony, binding, userID string, session *webauthn.SessionData) error {
	data, err := json.Marshal(session)
	if err != nil {
		return fmt.Errorf("save challenge: %w", err)
	}
	row := Challenge{Ceremony: ceremony, BindingHash: secret.Hash(binding), UserID: userID,
		Session: string(data), ExpiresAt: s.now().Add(ChallengeTTL)}
	err = s.db.WithContext(ctx).Clauses(clause.OnConflict{
		Columns:   []clause.Column{{Name: "ceremony"}, {Name: "binding_hash"}},
		DoUpdates: clause.AssignmentColumns([]string{"user_id", "session", "expires_at"}),
	}).Create(&row).Error
	if err != nil {
		return fmt.Errorf("save challenge: %w", err)
	}
	return nil
}

// takeChallenge deletes the binding's challenge of the ceremony and returns it, in one
// statement: of concurrent Finishes, one gets it. An expired challenge is deleted too.
func (s *Service) takeChallenge(ctx context.Context, ceremony, binding string) (*Challenge, *webauthn.SessionData, error) {
	if err := checkBinding(binding); err != nil {
		return nil, nil, fmt.Errorf("%w: %v", ErrChallenge, err)
	}
	var rows []Challenge
	err := s.db.WithContext(ctx).Clauses(clause.Returning{}).
		Where("ceremony = ? AND binding_hash = ?", ceremony, secret.Hash(binding)).Delete(&rows).Error
	if err != nil {
		return nil, nil, fmt.Errorf("take challenge: %w", err)
	}
	if len(rows) != 1 {
		return nil, nil, fmt.Errorf("%w: none pending", ErrChallenge)
	}
	row := rows[0]
	if !s.now().Before(row.ExpiresAt) {
		return nil, nil, fmt.Errorf("%w: expired", ErrChallenge)
	}
	var session webauthn.SessionData
	if err := json.Unmarshal([]byte(row.Session), &session); err != nil {
		return nil, nil, fmt.Errorf("read challenge: %w", err)
	}
	return &row, &session, nil
}

// credential loads one credential by ID.
func (s *Service) credential(ctx context.Context, id string) (*Credential, error) {
	var c Credential
	err := s.db.WithContext(ctx).Take(&c, "id = ?", id).Error
	if store.IsNotFound(err) {
		return nil, ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("read passkey: %w", err)
	}
	return &c, nil
}
