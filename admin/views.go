package admin

import (
	"cmp"
	"context"
	"slices"
	"time"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/mfa"
)

// What the pages and the API show of users; one shape for both.

type userView struct {
	ID            string   `json:"id"`
	Username      string   `json:"username"`
	Email         string   `json:"email"`
	EmailVerified bool     `json:"email_verified"`
	Name          string   `json:"name"`
	Disabled      bool     `json:"disabled"`
	Roles         []string `json:"roles,omitempty"`
	Groups        []string `json:"groups,omitempty"`
	// The user's own, without what groups and composites bring.
	DirectRoles  []string  `json:"direct_roles,omitempty"`
	DirectGroups []string  `json:"direct_groups,omitempty"`
	CreatedAt    time.Time `json:"created_at"`
}

type linkView struct {
	ID        uint       `json:"id"`
	Connector string     `json:"connector"`
	Subject   string     `json:"subject"`
	Username  string     `json:"username"`
	Email     string     `json:"email"`
	LinkedAt  time.Time  `json:"linked_at"`
	LastLogin *time.Time `json:"last_login,omitempty"`
}

type sessionView struct {
	ID        string    `json:"id"`
	Connector string    `json:"connector"`
	AuthTime  time.Time `json:"auth_time"`
	LastSeen  time.Time `json:"last_seen"`
	ExpiresAt time.Time `json:"expires_at"`
}

// factorView is one second factor: an authenticator app (TOTP) or a passkey.
type factorView struct {
	ID       string     `json:"id"`
	Name     string     `json:"name"`
	AddedAt  time.Time  `json:"added_at"`
	LastUsed *time.Time `json:"last_used,omitempty"`
}

// factorsView is a user's second factors and their own second-factor policy.
type factorsView struct {
	Policy            string       `json:"policy"` // default | off | optional | required
	TOTP              []factorView `json:"totp"`
	Passkeys          []factorView `json:"passkeys"` // null where passkeys are unavailable
	PasskeysAvailable bool         `json:"passkeys_available"`
	RecoveryCodesLeft int          `json:"recovery_codes_left"`
}

// Count is how many factors (authenticator apps and passkeys) there are.
func (f factorsView) Count() int { return len(f.TOTP) + len(f.Passkeys) }

type userDetail struct {
	User     userView      `json:"user"`
	Links    []linkView    `json:"links"`
	Sessions []sessionView `json:"sessions"`
	Factors  factorsView   `json:"second_factors"`
	Events   []audit.Event `json:"recent_events"`
}

// policyDefault is how the pages and the API name a user without a policy of
// their own (linking.User.MFA ""): the connector's and the client's apply.
const policyDefault = "default"

// mfaPolicies are the policies an administrator may set on a user, as the
// pages and the API name them.
var mfaPolicies = []string{policyDefault, config.MFAOff, config.MFAOptional, config.MFARequired}

// storedPolicy is what linking.User.MFA holds for a policy's name; ok is
// false for anything else.
func storedPolicy(name string) (stored string, ok bool) {
	if !slices.Contains(mfaPolicies, name) {
		return "", false
	}
	if name == policyDefault {
		return "", true
	}
	return name, true
}

// policyName is the name of a stored policy.
func policyName(stored string) string { return cmp.Or(stored, policyDefault) }

// factorsOf lists u's second factors: authenticator apps, passkeys (when
// they are available) and how many recovery codes are left.
func (s *Service) factorsOf(ctx context.Context, u *linking.User) (factorsView, error) {
	v := factorsView{Policy: policyName(u.MFA), TOTP: []factorView{}}
	if s.factors != nil {
		fs, err := s.factors.Factors(ctx, u.ID)
		if err != nil {
			return v, err
		}
		for _, f := range fs {
			if f.Kind == mfa.KindTOTP {
				v.TOTP = append(v.TOTP, factorView{ID: f.ID, Name: f.Name, AddedAt: f.CreatedAt, LastUsed: f.LastUsedAt})
			}
		}
		if v.RecoveryCodesLeft, err = s.factors.RecoveryCodesLeft(ctx, u.ID); err != nil {
			return v, err
		}
	}
	if s.passkeys != nil {
		cs, err := s.passkeys.Credentials(ctx, u.ID)
		if err != nil {
			return v, err
		}
		v.Passkeys, v.PasskeysAvailable = []factorView{}, true
		for _, c := range cs {
			v.Passkeys = append(v.Passkeys, factorView{ID: c.ID, Name: c.Name, AddedAt: c.CreatedAt, LastUsed: c.LastUsedAt})
		}
	}
	return v, nil
}

// hasFactor reports whether a user has a second factor of their own: an
// authenticator app or a passkey.
func (s *Service) hasFactor(ctx context.Context, userID string) (bool, error) {
	if s.factors != nil {
		fs, err := s.factors.Factors(ctx, userID)
		if err != nil || len(fs) > 0 {
			return len(fs) > 0, err
		}
	}
	if s.passkeys != nil {
		cs, err := s.passkeys.Credentials(ctx, userID)
		return len(cs) > 0, err
	}
	return false, nil
}

func viewOf(u linking.User) userView {
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name,
		Disabled: u.Disabled, Roles: u.Roles, Groups: u.Groups, DirectRoles: u.DirectRoles, DirectGroups: u.DirectGroups, CreatedAt: u.CreatedAt}
}

// detail gathers a user's page: profile, links, live sessions, recent events.
func (s *Service) detail(ctx context.Context, userID string) (*userDetail, error) {
	u, err := s.users.UserByID(ctx, userID)
	if err != nil {
		return nil, err
	}
	links, err := s.users.Links(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	sessions, err := s.issuer.Sessions(ctx, u.ID)
	if err != nil {
		return nil, err
	}
	events, _, err := s.audit.Find(ctx, audit.Filter{UserID: u.ID, Limit: 20})
	if err != nil {
		return nil, err
	}
	factors, err := s.factorsOf(ctx, u)
	if err != nil {
		return nil, err
	}
	d := &userDetail{User: viewOf(*u), Links: []linkView{}, Sessions: []sessionView{}, Factors: factors, Events: events}
	for _, l := range links {
		d.Links = append(d.Links, linkView{ID: l.ID, Connector: l.Connector, Subject: l.Subject, Username: l.Username,
			Email: l.Email, LinkedAt: l.CreatedAt, LastLogin: l.LastLoginAt})
	}
	for _, ss := range sessions {
		d.Sessions = append(d.Sessions, sessionView{ID: ss.ID, Connector: ss.IDP, AuthTime: ss.AuthTime,
			LastSeen: ss.LastSeenAt, ExpiresAt: ss.ExpiresAt})
	}
	return d, nil
}
