package login

import "time"

// Consent is what a person allowed a third-party application, as /account
// shows it.
type Consent struct {
	ClientID   string
	ClientName string
	Scopes     []string // in words
	GrantedAt  time.Time
}
