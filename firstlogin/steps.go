package firstlogin

import (
	"context"
	"errors"
	"net/url"
	"slices"
	"strings"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/usernames"
)

// ReviewView is the review page: the profile the new account gets.
type ReviewView struct {
	Token, CSRF           string
	Connector             string
	Username, Email, Name string
	EmailLocked           bool // the email decides a link, or was vouched for: it cannot be changed here
	EmailRequired         bool
	NameRequired          bool
	Error                 string
}

// NewReviewView is the review page of up; connectorName is how people know its connector.
func NewReviewView(up Upstream, connectorName string) ReviewView {
	pol := up.Policy
	return ReviewView{Connector: connectorName, Username: up.Username, Email: up.Email, Name: up.Name,
		EmailLocked:   pol.MatchBy == "email" || (up.EmailVerified && pol.TrustEmail),
		EmailRequired: slices.Contains(pol.Required, "email"), NameRequired: slices.Contains(pol.Required, "name")}
}

// Review is what the person submitted on the review page.
type Review struct{ Username, Email, Name string }

// Read takes the submitted form into v and says what is wrong with it, or "".
func (v *ReviewView) Read(form url.Values) string {
	v.Username, v.Name = strings.TrimSpace(form.Get("username")), strings.TrimSpace(form.Get("name"))
	if !v.EmailLocked { // a locked email is the upstream's, whatever was posted
		v.Email = strings.TrimSpace(form.Get("email"))
	}
	_, _, err := usernames.New(v.Username)
	switch {
	case err != nil: // the same check as linking's when it creates the user, with its reason
		return err.Error()
	case v.EmailRequired && v.Email == "":
		return "Enter your email address."
	case v.Email != "" && (!strings.Contains(v.Email, "@") || len(v.Email) > 320):
		return "Enter a valid email address."
	case v.NameRequired && v.Name == "":
		return "Enter your name."
	}
	return ""
}

// CreateReviewed makes the user the person reviewed, and its link; on a
// service WithTx, in the caller's transaction (Created audits it afterwards).
func (s *Service) CreateReviewed(ctx context.Context, up Upstream, v ReviewView) (*linking.User, error) {
	return s.create(ctx, up.Policy, up, &Review{Username: v.Username, Email: v.Email, Name: v.Name})
}

// Created audits a user made after review, once its transaction committed
// (SQLite has one writer at a time).
func (s *Service) Created(ctx context.Context, u *linking.User, up Upstream) { s.created(ctx, u, up) }

// Linked audits a link made after a proof of control, once committed.
func (s *Service) Linked(ctx context.Context, ip, userID string, up Upstream, connector string) {
	s.linked(ctx, ip, userID, up, "after re-authentication through "+connector)
}

// Method is a way to prove control of the matched account.
type Method struct {
	ID, Label, Username string
}

// LinkView is the "you already have an account" page.
type LinkView struct {
	Token, CSRF        string
	Connector          string // the new upstream
	AccountName        string // the existing account
	Passwords          []Method
	Redirects          []Method
	Error              string
	MatchedOnEmail     bool
	UpstreamIdentifier string
	Separate           bool // the person may create a separate account instead (SeparateAllowed)
}

// Describe tells how a connector can re-authenticate: kind "password",
// "redirect" or "" (it cannot), and its button label.
type Describe func(connector string) (kind, label string)

// NewLinkView is the link page of up for the matched account candidateID:
// the ways to sign in that are linked to that account.
func (s *Service) NewLinkView(ctx context.Context, candidateID string, up Upstream, connectorName string, describe Describe) (LinkView, error) {
	u, err := s.users.UserByID(ctx, candidateID)
	if err != nil {
		return LinkView{}, err
	}
	links, err := s.users.Links(ctx, u.ID)
	if err != nil {
		return LinkView{}, err
	}
	v := LinkView{Connector: connectorName, AccountName: u.Username, MatchedOnEmail: up.Policy.MatchBy == "email",
		UpstreamIdentifier: up.Email, Separate: SeparateAllowed(up.Policy)}
	if !v.MatchedOnEmail {
		v.UpstreamIdentifier = up.Username
	}
	for _, l := range links {
		kind, label := describe(l.Connector)
		m := Method{ID: l.Connector, Label: label, Username: l.Username}
		switch kind {
		case "password":
			if l.Connector == linking.LocalConnector {
				m.Username = u.Username
			}
			v.Passwords = append(v.Passwords, m)
		case "redirect":
			v.Redirects = append(v.Redirects, m)
		}
	}
	return v, nil
}

// ErrNoSeparate says the connector's policy creates no accounts, so the
// person cannot decline the link for an account of their own.
var ErrNoSeparate = errors.New("the connector creates no accounts")

// CreateSeparate makes an account of up's own, declining the link to the
// account it matched (up.Separate is set): at once, on a service WithTx in
// the caller's transaction. With review_then_create it creates nothing and
// returns (nil, nil): the review page comes first. A taken username fails
// with linking.ErrUsernameTaken: the person chooses another on the review page.
func (s *Service) CreateSeparate(ctx context.Context, up Upstream) (*linking.User, error) {
	switch {
	case !SeparateAllowed(up.Policy):
		return nil, ErrNoSeparate
	case up.Policy.OnNew == "review_then_create":
		return nil, nil
	}
	up.Separate = true
	return s.create(ctx, up.Policy, up, nil)
}

// DeclinedLink audits a person's choice of a separate account over the link
// to candidateID.
func (s *Service) DeclinedLink(ctx context.Context, ip, candidateID string, up Upstream) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.FirstLoginDecision, Actor: up.Connector + ":" + up.Subject,
		UserID: candidateID, Connector: up.Connector, IP: ip, Detail: string(Enroll) + " of a separate account, the link declined"})
}

// ErrOtherAccount says a re-authentication proved an account other than the matched one.
var ErrOtherAccount = errors.New("re-authentication proved another account")

// LinkProven links up to candidateID once the person proved control of it
// through (connector, subject): the proof counts only if (connector, subject)
// is linked to the candidate, and only if the candidate's links did not
// change since it was asked for (linkVersion). On a service WithTx, in the
// caller's transaction (Linked audits it afterwards).
func (s *Service) LinkProven(ctx context.Context, candidateID string, linkVersion int, up Upstream, connector, subject string) error {
	owner, err := s.users.LinkedUser(ctx, connector, subject)
	if errors.Is(err, linking.ErrNotLinked) || (err == nil && owner.ID != candidateID) {
		s.log.WarnContext(ctx, "re-authentication proved another account", "connector", connector, "candidate", candidateID)
		return ErrOtherAccount
	}
	if err != nil {
		return err
	}
	return s.users.Link(ctx, candidateID, linkVersion, s.linkOf(up.Policy, up))
}
