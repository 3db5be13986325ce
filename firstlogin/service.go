package firstlogin

import (
	"context"
	"errors"
	"log/slog"
	"strings"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/usernames"
)

// Service runs the work of first logins.
type Service struct {
	users *linking.Service
	audit *audit.Log
	log   *slog.Logger
}

// New returns the service.
func New(users *linking.Service, events *audit.Log, log *slog.Logger) *Service {
	return &Service{users: users, audit: events, log: log}
}

// WithTx is the service working inside a database transaction.
func (s *Service) WithTx(tx *gorm.DB) *Service {
	c := *s
	c.users = s.users.WithTx(tx)
	return &c
}

// ErrNeedsBrowser says the first login needs pages, which the password grant cannot show.
var ErrNeedsBrowser = errors.New("this account must be set up in the browser first")

// Outcome is where a first login goes after Begin: signed in as UserID, or on
// to a page (Step, with the matched account), or refused (Denied says why).
type Outcome struct {
	UserID      string
	Step        login.Step // login.StepReview or login.StepReauth
	CandidateID string
	LinkVersion int // the candidate's links when the proof was asked for
	Denied      string
}

// Begin decides the first login of an identity with no link and does what
// needs no page: creating the user, or linking automatically.
func (s *Service) Begin(ctx context.Context, p Policy, up Upstream, ip string) (Outcome, error) {
	d, err := Decide(ctx, s.users, p, up)
	if err != nil {
		return Outcome{}, err
	}
	s.record(ctx, ip, up, d)
	switch {
	case d.Action == Deny:
		return Outcome{Denied: d.Reason}, nil
	case d.Action == Enroll && d.Review:
		return Outcome{Step: login.StepReview}, nil
	case d.Action == Enroll:
		u, err := s.create(ctx, p, up, nil)
		if errors.Is(err, linking.ErrUsernameTaken) { // another's username: the person chooses one
			return Outcome{Step: login.StepReview}, nil
		}
		if err != nil {
			return Outcome{}, err
		}
		s.created(ctx, u, up)
		return Outcome{UserID: u.ID}, nil
	case d.Reauth:
		return Outcome{Step: login.StepReauth, CandidateID: d.Candidate.ID, LinkVersion: d.Candidate.LinkVersion}, nil
	}
	if err := s.users.Link(ctx, d.Candidate.ID, d.Candidate.LinkVersion, s.linkOf(p, up)); err != nil {
		return Outcome{}, err
	}
	s.linked(ctx, ip, d.Candidate.ID, up, "automatically (trusted, verified email)")
	return Outcome{UserID: d.Candidate.ID}, nil
}

// Enroll is the first login of the password grant: only a plain "create"
// works without pages.
func (s *Service) Enroll(ctx context.Context, p Policy, up Upstream, ip string) (*linking.User, error) {
	d, err := Decide(ctx, s.users, p, up)
	if err != nil {
		return nil, err
	}
	s.record(ctx, ip, up, d)
	if d.Action != Enroll || d.Review {
		return nil, ErrNeedsBrowser
	}
	u, err := s.create(ctx, p, up, nil)
	if errors.Is(err, linking.ErrUsernameTaken) { // choosing another needs the review page
		return nil, ErrNeedsBrowser
	}
	if err == nil {
		s.created(ctx, u, up)
	}
	return u, err
}

// Import creates the user of an upstream identity that a directory sync
// found, as a first login with on_new: create would, without matching it to
// existing users (nobody is there to prove control of one) and without an
// audit event of its own (the sync audits its run). Under WithTx it runs in
// the caller's transaction.
func (s *Service) Import(ctx context.Context, p Policy, up Upstream) (*linking.User, error) {
	return s.create(ctx, p, up, nil)
}

// create makes the user and its link in one transaction (linking does both).
func (s *Service) create(ctx context.Context, p Policy, up Upstream, review *Review) (*linking.User, error) {
	nu := linking.NewUser{Username: up.Username, Email: up.Email, EmailVerified: up.EmailVerified && p.TrustEmail && !up.Separate,
		Name: up.Name, Roles: up.Roles, Groups: up.Groups, Source: up.Connector}
	if review != nil {
		nu.Username, nu.Name = review.Username, review.Name
		if !strings.EqualFold(review.Email, up.Email) { // typed in: nobody vouches for it
			nu.Email, nu.EmailVerified = review.Email, false
		}
	}
	return s.users.CreateLinkedUser(ctx, s.linkOf(p, up), nu)
}

// created audits a user made by a first login (after its transaction: SQLite
// has one writer at a time).
func (s *Service) created(ctx context.Context, u *linking.User, up Upstream) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.UserCreated, Actor: up.Connector + ":" + up.Subject,
		UserID: u.ID, Connector: up.Connector, Detail: "first login"})
}

// linkOf is what a link records: the upstream's own name for the person, so
// that signing in through that connector again (re-authentication) uses it.
func (s *Service) linkOf(p Policy, up Upstream) linking.Upstream {
	name := up.LoginName
	if name == "" {
		name = up.Username
	}
	return linking.Upstream{Connector: up.Connector, Subject: up.Subject, Username: name, Email: up.Email,
		Several: p.MultipleIdentities}
}

func (s *Service) record(ctx context.Context, ip string, up Upstream, d Decision) {
	detail := string(d.Action)
	switch {
	case d.Review:
		detail += " after review"
	case d.Reauth:
		detail += " after re-authentication"
	}
	e := audit.Event{Type: audit.FirstLoginDecision, Actor: up.Connector + ":" + up.Subject, Connector: up.Connector, IP: ip, Detail: detail}
	if d.Candidate != nil {
		e.UserID = d.Candidate.ID
	}
	if d.Action == Deny {
		e.Outcome = "failure"
	}
	_ = s.audit.Record(ctx, e) // logged by audit when it fails; the person's flow goes on
}

func (s *Service) linked(ctx context.Context, ip, userID string, up Upstream, how string) {
	_ = s.audit.Record(ctx, audit.Event{Type: audit.Linked, Actor: userID, UserID: userID, Connector: up.Connector,
		IP: ip, Detail: "linked " + how})
}

// FailureMessage is what a person is told when saving a first login failed,
// and false for a failure that is not theirs to fix (logged by the caller).
func FailureMessage(err error) (string, bool) {
	switch {
	case errors.Is(err, linking.ErrUsernameTaken):
		return "That username is already taken. Choose another one.", true
	case errors.Is(err, usernames.ErrInvalid): // the upstream's username, taken as it is
		msg := "Your username cannot be used here."
		if ue := (*usernames.Error)(nil); errors.As(err, &ue) {
			msg += " " + ue.Reason
		}
		return msg + " Contact your administrator.", true
	case errors.Is(err, linking.ErrAlreadyLinked):
		return "This account is already linked to another fedhub user. Contact your administrator.", true
	case errors.Is(err, linking.ErrConnectorLinked):
		return "Your fedhub account already has another account of this sign-in service linked, and it can have only one. Contact your administrator.", true
	case errors.Is(err, linking.ErrLinksChanged):
		return "The accounts linked to this fedhub user changed while you were signing in, so nothing was linked. Sign in again.", true
	}
	return "", false
}
