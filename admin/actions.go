package admin

import (
	"context"
	"errors"
	"fmt"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
)

// Actor is who does an admin action: a user, or a client with the admin scope.
type Actor struct {
	ID string // user ID or "client:<id>"
	IP string
}

// errBadInput is an action refused for its parameters; the message is safe to show.
type errBadInput struct{ msg string }

func (e errBadInput) Error() string { return e.msg }

func (s *Service) record(ctx context.Context, a Actor, typ, userID, connector, detail string) error {
	return s.audit.Record(ctx, audit.Event{Type: typ, Actor: a.ID, UserID: userID, Connector: connector, IP: a.IP, Detail: detail})
}

// connectorOf is the connector of one of a user's links ("" when it is not theirs).
func (s *Service) connectorOf(ctx context.Context, userID string, linkID uint) string {
	links, _ := s.users.Links(ctx, userID)
	for _, l := range links {
		if l.ID == linkID {
			return l.Connector
		}
	}
	return ""
}

// setDisabled disables (and signs out everywhere) or re-enables a user.
func (s *Service) setDisabled(ctx context.Context, a Actor, userID string, disabled bool) error {
	if disabled && a.ID == userID {
		return errBadInput{"You cannot disable your own account."}
	}
	if err := s.users.SetDisabledByID(ctx, userID, disabled); err != nil { // disabling ends sessions and grants
		return err
	}
	typ := audit.UserEnabled
	if disabled {
		typ = audit.UserDisabled
	}
	return s.record(ctx, a, typ, userID, "", "by an administrator")
}

// revokeSessions ends a user's SSO sessions and revokes their refresh tokens.
func (s *Service) revokeSessions(ctx context.Context, a Actor, userID string) error {
	if _, err := s.users.UserByID(ctx, userID); err != nil {
		return err
	}
	if err := s.issuer.EndSessions(ctx, userID); err != nil {
		return err
	}
	return s.record(ctx, a, audit.SessionsRevoked, userID, "", "sessions and refresh tokens")
}

// unlink removes a link; the last way to log in only with force.
func (s *Service) unlink(ctx context.Context, a Actor, userID string, linkID uint, force bool) error {
	connector := s.connectorOf(ctx, userID, linkID)
	err := s.users.Unlink(ctx, userID, linkID, s.broker.Usable, force)
	if errors.Is(err, linking.ErrLastLogin) {
		return errBadInput{"This is the user's last way to sign in. Confirm the override to remove it anyway."}
	}
	if err != nil {
		return err
	}
	return s.record(ctx, a, audit.Unlinked, userID, connector, fmt.Sprintf("link %d by an administrator (override %v)", linkID, force))
}

// link attaches an upstream identity (connector, subject) to a user.
func (s *Service) link(ctx context.Context, a Actor, userID string, up linking.Upstream) error {
	if up.Connector == "" || up.Subject == "" {
		return errBadInput{"Give the connector and the upstream subject."}
	}
	if !s.connectorExists(up.Connector) || up.Connector == linking.LocalConnector {
		return errBadInput{"There is no upstream connector " + up.Connector + "."}
	}
	up.Several = s.broker.AllowsSeveral(up.Connector)
	err := s.users.AdminLink(ctx, userID, up)
	switch {
	case errors.Is(err, linking.ErrAlreadyLinked):
		return errBadInput{"That upstream identity is already linked to a user: move that link instead."}
	case errors.Is(err, linking.ErrConnectorLinked):
		return errBadInput{oneIdentity(up.Connector)}
	}
	if err != nil {
		return err
	}
	return s.record(ctx, a, audit.Linked, userID, up.Connector, "linked "+up.Subject+" by an administrator")
}

// oneIdentity refuses a second identity of a connector for one user.
func oneIdentity(connector string) string {
	return "This user already has an identity of " + connector + ", which allows one per user (multiple_identities). " +
		"Unlink or move that one first."
}

// move moves a link to another user; a user's last way to log in only with force.
func (s *Service) move(ctx context.Context, a Actor, fromUserID string, linkID uint, toUserID string, force bool) error {
	connector := s.connectorOf(ctx, fromUserID, linkID)
	err := s.users.MoveLink(ctx, linkID, toUserID, s.broker.Usable, s.broker.AllowsSeveral, force)
	switch {
	case errors.Is(err, linking.ErrConnectorLinked):
		return errBadInput{"The other user already has an identity of " + connector + ", which allows one per user (multiple_identities). Unlink that one first."}
	case errors.Is(err, linking.ErrLocalLink):
		return errBadInput{"A local password belongs to its account and cannot move. Unlink it instead."}
	case errors.Is(err, linking.ErrLastLogin):
		return errBadInput{"This is the user's last way to sign in. Confirm the override to move it anyway."}
	case errors.Is(err, linking.ErrNotFound):
		return errBadInput{"There is no user " + toUserID + "."}
	case err != nil:
		return err
	}
	return s.record(ctx, a, audit.LinkMoved, fromUserID, connector, fmt.Sprintf("link %d moved to user %s", linkID, toUserID))
}

// merge moves everything of fromUserID to intoUserID; one user remains.
func (s *Service) merge(ctx context.Context, a Actor, intoUserID, fromUserID string) error {
	if intoUserID == fromUserID {
		return errBadInput{"Choose two different users."}
	}
	if _, err := s.users.UserByID(ctx, fromUserID); err != nil {
		return errBadInput{"There is no user " + fromUserID + "."}
	}
	if connector, err := s.sharedConnector(ctx, intoUserID, fromUserID); err != nil || connector != "" {
		if err != nil {
			return err
		}
		return errBadInput{"Both users have an identity of " + connector + ", which allows one per user (multiple_identities). Unlink one of them first."}
	}
	if err := s.users.Merge(ctx, intoUserID, fromUserID, s.broker.AllowsSeveral); err != nil {
		if errors.Is(err, linking.ErrConnectorLinked) { // linked meanwhile
			return errBadInput{"Both users have an identity of a connector that allows one per user (multiple_identities). Unlink one of them first."}
		}
		return err
	}
	return s.record(ctx, a, audit.UsersMerged, intoUserID, "", "merged user "+fromUserID+" into this one")
}

// sharedConnector is a connector, other than the local password, of which
// both users have an identity and which allows one per user: merging them
// would give one user two. "" when there is none.
func (s *Service) sharedConnector(ctx context.Context, intoUserID, fromUserID string) (string, error) {
	into, err := s.users.Links(ctx, intoUserID)
	if err != nil {
		return "", err
	}
	from, err := s.users.Links(ctx, fromUserID)
	if err != nil {
		return "", err
	}
	for _, f := range from {
		for _, i := range into {
			if f.Connector == i.Connector && f.Connector != linking.LocalConnector && !s.broker.AllowsSeveral(f.Connector) {
				return f.Connector, nil
			}
		}
	}
	return "", nil
}

// rotateSecret gives a client a new secret and returns it (shown once).
func (s *Service) rotateSecret(ctx context.Context, a Actor, clientID string) (string, error) {
	secret, err := s.issuer.RotateClientSecret(ctx, clientID)
	if err != nil {
		return "", errBadInput{"This client's secret cannot be rotated (unknown or public client)."}
	}
	return secret, s.audit.Record(ctx, audit.Event{Type: audit.SecretRotated, Actor: a.ID, ClientID: clientID, IP: a.IP})
}

// resetFactors removes all of a user's second factors — authenticator apps,
// recovery codes and passkeys — and ends their sessions and grants, the admin
// pages' included: whatever was signed in with a factor that may be in the
// wrong hands is signed out. Their next sign-in asks for no second factor,
// or enrols one where their policy requires it.
func (s *Service) resetFactors(ctx context.Context, a Actor, userID string) error {
	u, err := s.users.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	before, err := s.factorsOf(ctx, u)
	if err != nil {
		return err
	}
	if s.factors != nil {
		if err := s.factors.Reset(ctx, userID); err != nil {
			return err
		}
	}
	if s.passkeys != nil {
		if err := s.passkeys.Reset(ctx, userID); err != nil {
			return err
		}
	}
	if err := s.issuer.EndSessions(ctx, userID); err != nil {
		return err
	}
	if err := s.db.WithContext(ctx).Delete(&Session{}, "user_id = ?", userID).Error; err != nil {
		return fmt.Errorf("end admin sessions: %w", err)
	}
	return s.record(ctx, a, audit.FactorsReset, userID, "", fmt.Sprintf(
		"by an administrator: %d authenticator app(s), %d passkey(s) and %d recovery code(s) removed; sessions and grants ended",
		len(before.TOTP), len(before.Passkeys), before.RecoveryCodesLeft))
}

// errBadPolicy refuses a second-factor policy that is not one of mfaPolicies.
var errBadPolicy = errBadInput{"The second-factor policy must be one of: default, off, optional, required."}

// setMFAPolicy sets a user's own second-factor policy, by its name (see
// mfaPolicies); it replaces the connector's and the client's from their next
// sign-in on.
func (s *Service) setMFAPolicy(ctx context.Context, a Actor, userID, policy string) error {
	stored, ok := storedPolicy(policy)
	if !ok {
		return errBadPolicy
	}
	u, err := s.users.UserByID(ctx, userID)
	if err != nil {
		return err
	}
	if err := s.users.SetMFAPolicy(ctx, userID, stored); err != nil {
		return err
	}
	return s.record(ctx, a, audit.MFAPolicySet, userID, "",
		fmt.Sprintf("second-factor policy %s (was %s) by an administrator", policy, policyName(u.MFA)))
}
