package linking

import (
	"context"
	"fmt"
	"time"

	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
	"gorm.io/gorm"
)

// LinkOf returns the link of an upstream identity (ErrNotLinked when none).
func (s *Service) LinkOf(ctx context.Context, connector, subject string) (*Link, error) {
	var l Link
	err := s.db.WithContext(ctx).Take(&l, "connector = ? AND subject = ?", connector, subject).Error
	if store.IsNotFound(err) {
		return nil, ErrNotLinked
	}
	if err != nil {
		return nil, fmt.Errorf("find link: %w", err)
	}
	return &l, nil
}

// SignedInThrough records that the person just signed in through an upstream
// identity, which authenticated them at authAt: data is its connector's new
// upstream state, and the upstream vouched for the identity now.
func (s *Service) SignedInThrough(ctx context.Context, connector, subject string, data []byte, authAt time.Time) error {
	now := s.now()
	err := s.db.WithContext(ctx).Model(&Link{}).Where("connector = ? AND subject = ?", connector, subject).
		Updates(map[string]any{"upstream": data, "upstream_auth_at": authAt.UTC(), "checked_at": now}).Error
	if err != nil {
		return fmt.Errorf("record the upstream login of %s: %w", connector, err)
	}
	return nil
}

// Rechecked records that the upstream vouched again for the identity of
// link id; data is its connector's upstream state after the check.
func (s *Service) Rechecked(ctx context.Context, id uint, data []byte) error {
	err := s.db.WithContext(ctx).Model(&Link{}).Where("id = ?", id).
		Updates(map[string]any{"upstream": data, "checked_at": s.now()}).Error
	if err != nil {
		return fmt.Errorf("record the re-check of link %d: %w", id, err)
	}
	return nil
}

// ClaimRecheck marks link id as re-checked now unless a re-check after
// staleBefore did so already: of the requests that find the upstream's last
// yes stale, one asks the upstream. (An OIDC upstream that rotates refresh
// tokens would take a second, concurrent use for a replay.)
func (s *Service) ClaimRecheck(ctx context.Context, id uint, staleBefore time.Time) (bool, error) {
	res := s.db.WithContext(ctx).Model(&Link{}).Where("id = ? AND (checked_at IS NULL OR checked_at <= ?)", id, staleBefore).
		Update("checked_at", s.now())
	if res.Error != nil {
		return false, fmt.Errorf("claim the re-check of link %d: %w", id, res.Error)
	}
	return res.RowsAffected == 1, nil
}

// ReleaseRecheck gives back a claim whose re-check got no answer: the link's
// last yes stays lastYes, so that the next request asks again.
func (s *Service) ReleaseRecheck(ctx context.Context, id uint, lastYes *time.Time) error {
	if err := s.db.WithContext(ctx).Model(&Link{}).Where("id = ?", id).Update("checked_at", lastYes).Error; err != nil {
		return fmt.Errorf("release the re-check of link %d: %w", id, err)
	}
	return nil
}

// UpstreamStates are the links' upstream states as brokers sealed them with
// secrets, for re-sealing with the current key (fedhub secrets rekey).
type UpstreamStates struct {
	s       *Service
	secrets *secret.Keyring
}

// UpstreamStates returns the links' upstream states sealed with secrets.
func (s *Service) UpstreamStates(secrets *secret.Keyring) UpstreamStates {
	return UpstreamStates{s: s, secrets: secrets}
}

// Reseal seals every link's upstream state with the current key and says how
// many it changed of how many there are.
func (u UpstreamStates) Reseal(ctx context.Context) (changed, total int, err error) {
	var links []Link
	err = u.s.db.WithContext(ctx).Select("id", "upstream").Where("upstream IS NOT NULL").
		FindInBatches(&links, 500, func(*gorm.DB, int) error {
			for _, l := range links {
				total++
				sealed, did, err := u.secrets.Reseal(l.Upstream)
				if err != nil {
					return fmt.Errorf("link %d: %w", l.ID, err)
				}
				if !did {
					continue
				}
				// Only if unchanged since read: a newer login's state stays.
				if err := u.s.db.WithContext(ctx).Model(&Link{}).Where("id = ? AND upstream = ?", l.ID, l.Upstream).
					Update("upstream", sealed).Error; err != nil {
					return fmt.Errorf("link %d: %w", l.ID, err)
				}
				changed++
			}
			return nil
		}).Error
	if err != nil {
		return changed, total, fmt.Errorf("reseal upstream states: %w", err)
	}
	return changed, total, nil
}
