package brokers

import (
	"context"
	"errors"
	"fmt"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
)

// Sealer encrypts what brokers keeps of upstream sessions at rest
// (secret.Keyring). A nil Sealer keeps it as it is.
type Sealer interface {
	Seal(plain []byte) ([]byte, error)
	Open(stored []byte) ([]byte, error)
}

func (s *Service) seal(b []byte) ([]byte, error) {
	if s.sealer == nil || b == nil {
		return b, nil
	}
	return s.sealer.Seal(b)
}

func (s *Service) open(b []byte) ([]byte, error) {
	if s.sealer == nil || b == nil {
		return b, nil
	}
	return s.sealer.Open(b)
}

// Recheck asks the upstream whether the person who signed in as user through
// the identity (connector, subject) still may: the issuer calls it before it
// refreshes tokens or reuses an SSO session. It returns nil for yes, an error
// wrapping login.ErrUpstreamRefused for no (the identity is unlinked or moved,
// its connector switched off, or the upstream refuses: the issuer ends what
// came through the identity), and one wrapping login.ErrUpstreamUnreachable
// when the upstream could not answer and the connector fails closed. An
// upstream's yes holds for the connector's Recheck.Interval.
func (s *Service) Recheck(ctx context.Context, userID, connector, subject string) error {
	if connector == "" || connector == linkingLocal {
		return nil // the issuer reads the local account itself
	}
	conn, ok := s.enabled(connector)
	if !ok {
		return fmt.Errorf("%w: the connector %s is switched off", login.ErrUpstreamRefused, connector)
	}
	link, err := s.linkOf(ctx, userID, connector, subject)
	if err != nil {
		return err
	}
	r, ok := conn.Impl.(Refresher)
	if !ok {
		return nil
	}
	now := s.txns.Now()
	lastYes, every := link.CheckedAt, conn.Recheck.Interval
	if lastYes != nil && now.Sub(*lastYes) < every {
		return nil
	}
	claimed, err := s.users.ClaimRecheck(ctx, link.ID, now.Add(-every))
	if err != nil || !claimed { // not claimed: another request asks right now
		return err
	}
	res, err := s.refresh(ctx, r, link)
	switch {
	case errors.Is(err, login.ErrUpstreamRefused):
		return fmt.Errorf("%s: %w", connector, err)
	case err != nil:
		if rerr := s.users.ReleaseRecheck(ctx, link.ID, lastYes); rerr != nil {
			s.log.ErrorContext(ctx, "re-check", "connector", connector, "err", rerr)
		}
		if conn.Recheck.FailOpen && lastYes != nil && now.Sub(*lastYes) < 2*every {
			s.log.WarnContext(ctx, "upstream unreachable: its last yes still counts (fail open)", "connector", connector,
				"user", userID, "last_yes", *lastYes, "err", err)
			return nil
		}
		return fmt.Errorf("%w: %s: %v", login.ErrUpstreamUnreachable, connector, err)
	}
	sealed, err := s.seal(res.Upstream)
	if err != nil {
		return fmt.Errorf("re-check %s: %w", connector, err)
	}
	if err := s.users.Rechecked(ctx, link.ID, sealed); err != nil {
		return err
	}
	if res.Current != nil && conn.Sync {
		cur := *res.Current
		cur.Connector, cur.Subject = conn.ID, link.Subject
		_, p, err := conn.Map(cur)
		if err != nil {
			return err
		}
		return s.users.SyncUser(ctx, userID, conn.ID, p)
	}
	return nil
}

// linkOf is the link the person signed in through; a grant from before
// subjects were recorded names only the connector: the user's link of it.
func (s *Service) linkOf(ctx context.Context, userID, connector, subject string) (*linking.Link, error) {
	gone := fmt.Errorf("%w: the identity of %s is no longer linked to the account", login.ErrUpstreamRefused, connector)
	if subject == "" {
		links, err := s.users.Links(ctx, userID)
		if err != nil {
			return nil, err
		}
		for i := range links {
			if links[i].Connector == connector {
				return &links[i], nil
			}
		}
		return nil, gone
	}
	link, err := s.users.LinkOf(ctx, connector, subject)
	if errors.Is(err, linking.ErrNotLinked) || (err == nil && link.UserID != userID) {
		return nil, gone
	}
	return link, err
}

// refresh asks the upstream about link's identity.
func (s *Service) refresh(ctx context.Context, r Refresher, link *linking.Link) (Rechecked, error) {
	data, err := s.open(link.Upstream)
	if err != nil {
		return Rechecked{}, fmt.Errorf("open the upstream state of %s: %w", link.Connector, err)
	}
	authAt := link.CreatedAt
	if link.UpstreamAuthAt != nil {
		authAt = *link.UpstreamAuthAt
	}
	id := login.Identity{Connector: link.Connector, Subject: link.Subject, Username: link.Username, Email: link.Email, Upstream: data}
	return r.Refresh(ctx, id, authAt)
}
