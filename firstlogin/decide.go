package firstlogin

import (
	"context"
	"slices"
	"strings"

	"github.com/fedhub/fedhub/linking"
)

// Policy is a connector's first-login configuration.
type Policy struct {
	OnNew      string // create | review_then_create | deny
	MatchBy    string // none | email | username
	OnMatch    string // confirm_and_reauthenticate | link_automatically | deny
	TrustEmail bool
	Required   []string // fields the review page requires: email, name
	// MultipleIdentities lets one user link several identities of the
	// connector; by default a user has at most one (and an account that has
	// one is no candidate for another).
	MultipleIdentities bool
}

// Upstream is an upstream identity, mapped to the local profile it would get.
type Upstream struct {
	Connector     string
	Subject       string
	LoginName     string // the name the upstream knows the person by (before mappers), for re-authentication
	Username      string
	Email         string
	EmailVerified bool // as the upstream says; counts only when the connector is trusted
	Name          string
	Roles         []string
	Groups        []string
	Policy        Policy // of its connector, kept with a pending first login
	// Separate says the person declined a proposed link and makes an
	// account of their own: its email is not marked verified, so that it
	// never becomes a second candidate beside the account they declined.
	Separate bool
}

// Action is what a first login does.
type Action string

// The actions.
const (
	Enroll Action = "ENROLL"
	Link   Action = "LINK"
	Auth   Action = "AUTH"
	Deny   Action = "DENY"
)

// Decision is the outcome of Decide.
type Decision struct {
	Action    Action
	Review    bool          // ENROLL: the person reviews the profile first
	Reauth    bool          // LINK: the person proves control of Candidate first
	Candidate *linking.User // LINK: the existing user
	Reason    string        // DENY: what to tell the person
}

// SeparateAllowed says whether a person whose identity matched an account may
// create a separate account instead: whenever the policy creates accounts.
func SeparateAllowed(p Policy) bool { return p.OnNew != "deny" }

// Decide chooses the action for an identity that has no link. Only verified
// local emails are matched: an email someone only typed never captures
// another person's first login.
func Decide(ctx context.Context, users *linking.Service, p Policy, up Upstream) (Decision, error) {
	candidate, ambiguous, err := match(ctx, users, p.MatchBy, up)
	if err != nil {
		return Decision{}, err
	}
	if ambiguous {
		return Decision{Action: Deny, Reason: "Several fedhub accounts have your email address, so fedhub cannot tell which one is yours. Ask an administrator to link your account."}, nil
	}
	if candidate != nil && !p.MultipleIdentities {
		// An account with its one identity of this connector cannot get a
		// second: the person is someone else there (or has a second account),
		// and gets an account of their own, as on_new says.
		if has, err := hasIdentityOf(ctx, users, candidate.ID, up.Connector); err != nil || has {
			if err != nil {
				return Decision{}, err
			}
			candidate = nil
		}
	}
	if candidate != nil {
		switch {
		case candidate.Disabled:
			return Decision{Action: Deny, Reason: "The fedhub account that matches yours is disabled. Contact your administrator."}, nil
		case p.OnMatch == "deny":
			return Decision{Action: Deny, Reason: "A fedhub account with your " + matchedOn(p) + " already exists, and linking to it is not allowed here. Ask an administrator to link your account."}, nil
		case p.OnMatch == "link_automatically" && autoLinkAllowed(p, up, candidate):
			return Decision{Action: Link, Candidate: candidate}, nil
		}
		// An email or username match only proposes the link: prove control first.
		return Decision{Action: Link, Reauth: true, Candidate: candidate}, nil
	}
	switch p.OnNew {
	case "deny":
		return Decision{Action: Deny, Reason: "Only people who already have a fedhub account can sign in this way. Ask an administrator for an account."}, nil
	case "review_then_create":
		return Decision{Action: Enroll, Review: true}, nil
	}
	return Decision{Action: Enroll}, nil
}

// autoLinkAllowed holds only when all three hold: the connector is trusted for
// email, the upstream verified this email, and the local email is verified.
func autoLinkAllowed(p Policy, up Upstream, u *linking.User) bool {
	return p.MatchBy == "email" && p.TrustEmail && up.EmailVerified && u.EmailVerified &&
		strings.EqualFold(strings.TrimSpace(u.Email), strings.TrimSpace(up.Email))
}

func match(ctx context.Context, users *linking.Service, by string, up Upstream) (*linking.User, bool, error) {
	switch by {
	case "email":
		found, err := users.UsersByVerifiedEmail(ctx, up.Email) // never an email someone only typed
		if err != nil || len(found) == 0 {
			return nil, false, err
		}
		if len(found) > 1 {
			return nil, true, nil
		}
		u, err := users.UserByID(ctx, found[0].ID)
		return u, false, err
	case "username":
		u, err := users.UserByUsername(ctx, up.Username)
		if err == linking.ErrNotFound {
			return nil, false, nil
		}
		return u, false, err
	}
	return nil, false, nil
}

// hasIdentityOf says whether a user has an identity of the connector linked.
func hasIdentityOf(ctx context.Context, users *linking.Service, userID, connector string) (bool, error) {
	links, err := users.Links(ctx, userID)
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(links, func(l linking.Link) bool { return l.Connector == connector }), nil
}

func matchedOn(p Policy) string {
	if p.MatchBy == "username" {
		return "username"
	}
	return "email address"
}
