package ldap

import (
	"cmp"
	"encoding/binary"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/fedhub/fedhub/login"

	"github.com/go-ldap/ldap/v3"
)

// formatGUID turns the 16 bytes of an objectGUID into the string form Windows and Samba show,
// e.g. 6f3b1c2a-…. The first three fields are stored little-endian (Microsoft's GUID struct),
// the last eight bytes in order. ok is false when b is not 16 bytes long.
func formatGUID(b []byte) (string, bool) {
	if len(b) != 16 {
		return "", false
	}
	return fmt.Sprintf("%08x-%04x-%04x-%x-%x",
		binary.LittleEndian.Uint32(b[0:4]),
		binary.LittleEndian.Uint16(b[4:6]),
		binary.LittleEndian.Uint16(b[6:8]),
		b[8:10], b[10:16]), true
}

// User-facing messages for the bind failures that the person can do something about.
const (
	msgPasswordExpired = "Your password has expired. Change it (for example when signing in to your computer), then sign in again."
	msgAccountExpired  = "Your account has expired. Ask your administrator to extend it."
	msgMustChange      = "You must change your password before you can sign in. Change it (for example when signing in to your computer), then sign in again."
	msgLocked          = "Your account is locked after too many failed sign-ins. Wait, or ask your administrator to unlock it."
)

// adSubCodes names Active Directory's AcceptSecurityContext "data" sub-codes of result 49.
var adSubCodes = map[string]string{
	"525": "user not found",
	"52e": "invalid credentials",
	"530": "not permitted to log on at this time",
	"531": "not permitted to log on at this workstation",
	"532": "password expired",
	"533": "account disabled",
	"701": "account expired",
	"773": "user must reset password",
	"775": "account locked out",
}

var adDataRe = regexp.MustCompile(`(?i)\bdata ([0-9a-f]{3,8})\b`)

// adSubCode returns the "data XXX" sub-code of an Active Directory bind error, lower-case,
// or "".
func adSubCode(err error) string {
	var le *ldap.Error
	if !errors.As(err, &le) || le.Err == nil {
		return ""
	}
	m := adDataRe.FindStringSubmatch(le.Err.Error())
	if m == nil {
		return ""
	}
	return strings.ToLower(m[1])
}

// classifyBind maps the error of a user's bind to what Login returns, and says what to log:
// the password policy's refusal, or the AD sub-code and its meaning, if any. It never returns
// the server's own text.
func classifyBind(err error) (result error, detail []any) {
	var pe *policyError
	if errors.As(err, &pe) {
		return policyLogin(pe), []any{"password_policy", pe.name()}
	}
	if !ldap.IsErrorWithCode(err, ldap.LDAPResultInvalidCredentials) {
		return nil, nil
	}
	sub := adSubCode(err)
	if sub != "" {
		detail = []any{"ad_code", sub, "ad_meaning", cmp.Or(adSubCodes[sub], "unknown")}
	}
	switch sub {
	case "532":
		return &login.UserError{Message: msgPasswordExpired}, detail
	case "701":
		return &login.UserError{Message: msgAccountExpired}, detail
	case "773":
		return &login.UserError{Message: msgMustChange}, detail
	case "775":
		return &login.UserError{Message: msgLocked}, detail
	case "533":
		return login.ErrAccountDisabled, detail
	default: // 525, 52e, 530, 531, none, or one we do not know: the generic answer
		return login.ErrInvalidCredentials, detail
	}
}
