package ldap

import (
	"strconv"

	"github.com/go-ldap/ldap/v3"

	"github.com/fedhub/fedhub/login"
)

// The bind errors of the password policy control (draft-behera-ldap-password-policy §6.2,
// OpenLDAP's ppolicy) that stop a sign-in.
const (
	policyPasswordExpired  = 0
	policyAccountLocked    = 1
	policyChangeAfterReset = 2
)

// policyNames are the draft's names of its bind errors, for the log.
var policyNames = map[int8]string{
	policyPasswordExpired:  "passwordExpired",
	policyAccountLocked:    "accountLocked",
	policyChangeAfterReset: "changeAfterReset",
}

// policyError is a bind that the directory's password policy refused, or let through only to
// change the password (changeAfterReset: the password an administrator reset is good for
// nothing else, so fedhub refuses it too).
type policyError struct {
	code int8
	bind error // the bind's own error; nil after changeAfterReset
}

func (e *policyError) Error() string { return "ldap: password policy: " + e.name() }

func (e *policyError) Unwrap() error { return e.bind }

func (e *policyError) name() string {
	if n, ok := policyNames[e.code]; ok {
		return n
	}
	return strconv.Itoa(int(e.code))
}

// withPolicy is the outcome of a bind that asked for the password policy control: err, or a
// *policyError wrapping it when the control says why the bind failed, or that it succeeded only
// for a password change. A directory without the policy sends no control: err as it is.
func withPolicy(res *ldap.SimpleBindResult, err error) error {
	if res == nil || isNetworkError(err) {
		return err
	}
	p, ok := ldap.FindControl(res.Controls, ldap.ControlTypeBeheraPasswordPolicy).(*ldap.ControlBeheraPasswordPolicy)
	if !ok || p.Error < 0 || (err == nil && p.Error != policyChangeAfterReset) {
		return err
	}
	return &policyError{code: p.Error, bind: err}
}

// policyLogin maps a password policy refusal to what Login returns: the person can act on
// each of these, so each has its message.
func policyLogin(e *policyError) error {
	switch e.code {
	case policyPasswordExpired:
		return &login.UserError{Message: msgPasswordExpired}
	case policyAccountLocked:
		return &login.UserError{Message: msgLocked}
	case policyChangeAfterReset:
		return &login.UserError{Message: msgMustChange}
	default: // the password-change errors (3–8) answer no bind
		return login.ErrInvalidCredentials
	}
}
