package issuer

import (
	"context"
	"errors"
	"net/http"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/login"
)

// What ends sessions and grants when an identity's right to sign in ends
// (linking.Revoker), and the re-checks with the upstream after login.

// RevokeIdentity ends the SSO sessions and grants that user got by signing in
// through the upstream identity (connector, subject), in tx. Rows from before
// subjects were recorded name only the connector: they end too. (id_p is
// gorm's name for the IDP column.)
func (iss *Issuer) RevokeIdentity(ctx context.Context, tx *gorm.DB, userID, connector, subject string) error {
	return iss.end(tx.WithContext(ctx), "user_id = ? AND id_p = ? AND (subject = ? OR subject = '' OR subject IS NULL)",
		userID, connector, subject)
}

// RevokeUser ends every SSO session and grant of user, in tx.
func (iss *Issuer) RevokeUser(ctx context.Context, tx *gorm.DB, userID string) error {
	return iss.end(tx.WithContext(ctx), "user_id = ?", userID)
}

// end ends the live sessions and revokes the live grants that match where,
// with their refresh tokens; their access tokens fail with them (userinfo and
// introspection read the grant).
func (iss *Issuer) end(tx *gorm.DB, where string, args ...any) error {
	if err := iss.endSessions(tx, where, args...); err != nil {
		return err
	}
	return iss.endGrants(tx, where, args...)
}

// endGrants revokes the live grants that match where, with their refresh tokens.
func (iss *Issuer) endGrants(tx *gorm.DB, where string, args ...any) error {
	now := iss.now()
	// where is one of this package's constants, never input.
	if err := tx.Model(&RefreshToken{}).Where("used_at IS NULL AND grant_id IN (SELECT id FROM grants WHERE revoked_at IS NULL AND "+where+")", args...).
		Update("used_at", now).Error; err != nil {
		return err
	}
	return tx.Model(&Grant{}).Where("revoked_at IS NULL").Where(where, args...).Update("revoked_at", now).Error
}

// recheck asks the broker whether the identity a grant or session came
// through still may sign in. The upstream's no ends what came through the
// identity and is an invalid_grant; an upstream that could not answer is a
// temporarily_unavailable that spends nothing.
func (iss *Issuer) recheck(ctx context.Context, userID, connector, subject string) error {
	if iss.broker == nil || connector == "" {
		return nil
	}
	err := iss.broker.Recheck(ctx, userID, connector, subject)
	switch {
	case err == nil:
		return nil
	case errors.Is(err, login.ErrUpstreamRefused):
		if err := iss.identityRefused(ctx, userID, connector, subject, err); err != nil {
			return err
		}
		return invalidGrant("the identity provider no longer vouches for the user: they must sign in again")
	case errors.Is(err, login.ErrUpstreamUnreachable):
		iss.log.WarnContext(ctx, "re-check: upstream unreachable, nothing issued (fail closed)", "user", userID, "connector", connector, "err", err)
		return &oauthError{http.StatusServiceUnavailable, "temporarily_unavailable",
			"the identity provider cannot be reached to confirm the user; try again later", false}
	}
	return err
}

// identityRefused ends what came through an identity its upstream refused,
// and records why.
func (iss *Issuer) identityRefused(ctx context.Context, userID, connector, subject string, why error) error {
	err := iss.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		return iss.RevokeIdentity(ctx, tx, userID, connector, subject)
	})
	if err != nil {
		return err
	}
	return iss.audit.Record(ctx, audit.Event{Type: audit.UpstreamRefused, Actor: connector, UserID: userID, Connector: connector,
		Outcome: "failure", Detail: why.Error() + "; its sessions and grants are ended"})
}

// sessionStillVouched re-checks the identity an SSO session came through
// whenever the session is used (a code for an application, fedhub's own
// pages); on a no it ends. false makes the browser signed out.
func (iss *Issuer) sessionStillVouched(ctx context.Context, sess *Session) (bool, error) {
	err := iss.recheck(ctx, sess.UserID, sess.IDP, sess.Subject)
	var oe *oauthError
	if errors.As(err, &oe) {
		return false, nil
	}
	return err == nil, err
}
