package admin

import (
	"context"
	"time"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
)

// What the pages and the API show of users; one shape for both.

type userView struct {
	ID            string    `json:"id"`
	Username      string    `json:"username"`
	Email         string    `json:"email"`
	EmailVerified bool      `json:"email_verified"`
	Name          string    `json:"name"`
	Disabled      bool      `json:"disabled"`
	Roles         []string  `json:"roles,omitempty"`
	Groups        []string  `json:"groups,omitempty"`
	CreatedAt     time.Time `json:"created_at"`
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

type userDetail struct {
	User     userView      `json:"user"`
	Links    []linkView    `json:"links"`
	Sessions []sessionView `json:"sessions"`
	Events   []audit.Event `json:"recent_events"`
}

func viewOf(u linking.User) userView {
	return userView{ID: u.ID, Username: u.Username, Email: u.Email, EmailVerified: u.EmailVerified, Name: u.Name,
		Disabled: u.Disabled, Roles: u.Roles, Groups: u.Groups, CreatedAt: u.CreatedAt}
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
	d := &userDetail{User: viewOf(*u), Links: []linkView{}, Sessions: []sessionView{}, Events: events}
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
