package login

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/fedhub/fedhub/secret"
)

// TTL is how long a person has to finish a sign-in, first login and second
// factor included.
const TTL = 30 * time.Minute

// Purpose is what a sign-in is for.
type Purpose string

// The purposes.
const (
	ForClient  Purpose = "client"  // an application waits for a code
	ForPage    Purpose = "page"    // a fedhub page (/account) waits: ReturnTo
	ForSession Purpose = "session" // nobody waits (IdP-initiated SAML): an SSO session only
	ForLink    Purpose = "link"    // link an upstream identity to the signed-in LinkUserID
)

// Step is where a sign-in is. Every step's handler reads the transaction,
// does its work and hands it back to the dispatcher, which picks the next.
type Step string

// The steps.
const (
	StepChoose       Step = "choose"        // the login page: a connector's button or form
	StepReview       Step = "review"        // first login: the person reviews the new profile
	StepReauth       Step = "reauth"        // first login: the person proves control of the matched account
	StepLinked       Step = "linked"        // first login: linked; the person confirms to go on
	StepIdentified   Step = "identified"    // the person is known; the dispatcher picks what follows
	StepSecondFactor Step = "second_factor" // a second factor is asked for
	StepEnrolFactor  Step = "enrol_factor"  // the person enrols an authenticator app (required, or asked for)
	StepNewCodes     Step = "new_codes"     // the new recovery codes are shown once; the person goes on
	StepDone         Step = "done"          // handed to the issuer
)

// UpstreamStep is where an upstream round trip is.
type UpstreamStep string

// The upstream steps.
const (
	UpstreamNone     UpstreamStep = ""
	UpstreamWaiting  UpstreamStep = "waiting"  // the browser went to the upstream
	UpstreamAnswered UpstreamStep = "answered" // its answer was verified; the browser comes back
	UpstreamDone     UpstreamStep = "done"     // the browser came back
)

// Transaction is one sign-in, from the request to the code. The browser holds
// the token of TokenHash in the page URLs and is bound by BrowserHash; an
// upstream round trip holds its own single-use state (StateHash) and hands
// back to the browser through ContinueHash. Version makes every step
// single-use: a save succeeds only on the version that was loaded.
type Transaction struct {
	ID          string  `gorm:"primaryKey;size:32"` // internal; never leaves the server
	TokenHash   string  `gorm:"size:64;not null;uniqueIndex"`
	BrowserHash string  `gorm:"size:64;not null;index"` // indexed: Create keeps a browser's newest MaxPerBrowser
	Purpose     Purpose `gorm:"size:16;not null"`
	Step        Step    `gorm:"size:16;not null"`
	Version     int     `gorm:"not null"`

	// The application's request (ForClient).
	ClientID      string `gorm:"size:255"`
	ClientName    string `gorm:"size:255"` // as the login page names it
	ClientMFA     string `gorm:"size:16"`  // the client's second-factor policy
	RedirectURI   string `gorm:"size:2048"`
	Scope         string `gorm:"size:2048"`
	State         string `gorm:"size:2048"`
	Nonce         string `gorm:"size:2048"`
	CodeChallenge string `gorm:"size:128"`
	LoginHint     string `gorm:"size:255"`
	IDPHint       string `gorm:"size:64"`
	ACRValues     string `gorm:"size:255"`
	Claims        string `gorm:"size:4096"`
	Resource      string `gorm:"size:2048"` // the APIs (RFC 8707 resource) asked for, space-separated
	ForceLogin    bool   // prompt=login or max_age=0: a credential must be presented, upstream too
	MaxAge        int    // seconds; -1 when not asked for
	ReturnTo      string `gorm:"size:2048"` // ForPage: the fedhub page; ForLink: where to go afterwards
	LinkUserID    string `gorm:"size:36"`   // ForLink: the user the identity is linked to
	Enrol         bool   // the person asked to add an authenticator app after signing in again (/account)
	PendingKey    string `gorm:"size:128"` // the TOTP key offered for enrolment until confirmed (then the factor keeps it)

	// An upstream round trip in progress.
	Connector    string       `gorm:"size:64"` // the connector asked last
	Upstream     UpstreamStep `gorm:"size:16"`
	StateHash    string       `gorm:"size:64;index"`
	UpstreamData string       `gorm:"type:text"` // the connector's data: nonce, PKCE verifier, SAML request ID
	ContinueHash string       `gorm:"size:64;index"`
	Identity     string       `gorm:"type:text"` // the verified upstream Identity, JSON

	// Who signed in, and how.
	UserID        string    `gorm:"size:36"`
	LoginVia      string    `gorm:"size:64"`  // the connector the person signed in with (the "idp" claim)
	Subject       string    `gorm:"size:512"` // and their identity there
	UpstreamState []byte    // that identity's upstream state (login.Identity.Upstream), sealed
	AMR           []string  `gorm:"serializer:json"` // RFC 8176 methods used so far
	AuthTime      time.Time // when the first credential was presented

	// First login: the upstream identity with its mapped profile, and the
	// account it may be linked to.
	FirstLogin  string `gorm:"type:text"`
	CandidateID string `gorm:"size:36"`
	LinkVersion int

	CreatedAt time.Time
	ExpiresAt time.Time `gorm:"index"`
}

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Transaction{}} }

// CSRF is the form token of a transaction's pages: tied to the transaction's
// token and to the browser's HttpOnly binding cookie, which no other site can read.
func CSRF(token, browser string) string {
	return secret.Hash("login:" + browser + ":" + token)[:32]
}

// UpstreamIdentity is the verified identity kept by Answered.
func (t *Transaction) UpstreamIdentity() (Identity, error) {
	var id Identity
	if err := json.Unmarshal([]byte(t.Identity), &id); err != nil {
		return Identity{}, fmt.Errorf("read upstream identity: %w", err)
	}
	return id, nil
}

// TableName names the table after the package: "transactions" alone says too little.
func (Transaction) TableName() string { return "login_transactions" }
