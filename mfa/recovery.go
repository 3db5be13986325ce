package mfa

import (
	"context"
	"crypto/rand"
	"fmt"
	"strings"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
)

const (
	// RecoveryCodeCount is how many recovery codes a user gets at a time.
	RecoveryCodeCount = 10
	// recoveryAlphabet is Crockford's base32 in lower case (no i, l, o, u): 5 bits a character.
	recoveryAlphabet = "0123456789abcdefghjkmnpqrstvwxyz"
	// recoveryCodeLen characters make 60 bits, shown as three groups of four.
	recoveryCodeLen = 12
)

// UseRecoveryCode spends one of the user's recovery codes: it works once. Case, spaces and
// dashes do not matter (nor o for 0, i and l for 1). A wrong or spent code is ErrInvalidCode.
func (s *Service) UseRecoveryCode(ctx context.Context, userID, code string) error {
	if err := checkUserID(userID); err != nil {
		return fmt.Errorf("use recovery code: %w", ErrInvalidCode)
	}
	norm, ok := normaliseRecoveryCode(code)
	if !ok {
		return fmt.Errorf("use recovery code: %w", ErrInvalidCode)
	}
	// Deleting is the check: of two tries at once, one deletes the row.
	res := s.db.WithContext(ctx).Where("user_id = ? AND code_hash = ?", userID, secret.Hash(norm)).Delete(&RecoveryCode{})
	if res.Error != nil {
		return fmt.Errorf("use recovery code: %w", res.Error)
	}
	if res.RowsAffected == 0 {
		return fmt.Errorf("use recovery code: %w", ErrInvalidCode)
	}
	return nil
}

// NewRecoveryCodes replaces all of the user's recovery codes with RecoveryCodeCount new
// ones, returned to be shown once. A user without a TOTP factor gets ErrNotFound: recovery
// codes stand in for a factor.
func (s *Service) NewRecoveryCodes(ctx context.Context, userID string) ([]string, error) {
	if err := checkUserID(userID); err != nil {
		return nil, fmt.Errorf("new recovery codes: %w", err)
	}
	var codes []string
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockUser(tx, userID); err != nil {
			return err
		}
		var n int64
		if err := tx.Model(&Factor{}).Where("user_id = ? AND kind = ?", userID, KindTOTP).Count(&n).Error; err != nil {
			return fmt.Errorf("count factors: %w", err)
		}
		if n == 0 {
			return ErrNotFound
		}
		c, err := replaceRecoveryCodes(tx, userID, s.now())
		codes = c
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("new recovery codes: %w", err)
	}
	return codes, nil
}

// RecoveryCodesLeft returns how many unused recovery codes the user has.
func (s *Service) RecoveryCodesLeft(ctx context.Context, userID string) (int, error) {
	if err := checkUserID(userID); err != nil {
		return 0, nil
	}
	var n int64
	if err := s.db.WithContext(ctx).Model(&RecoveryCode{}).Where("user_id = ?", userID).Count(&n).Error; err != nil {
		return 0, fmt.Errorf("count recovery codes: %w", err)
	}
	return int(n), nil
}

// replaceRecoveryCodes deletes the user's recovery codes and stores the hashes of new ones.
func replaceRecoveryCodes(tx *gorm.DB, userID string, now time.Time) ([]string, error) {
	if err := tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error; err != nil {
		return nil, fmt.Errorf("delete recovery codes: %w", err)
	}
	codes := make([]string, 0, RecoveryCodeCount)
	rows := make([]RecoveryCode, 0, RecoveryCodeCount)
	seen := map[string]bool{}
	for len(codes) < RecoveryCodeCount {
		c := newRecoveryCode()
		norm, _ := normaliseRecoveryCode(c)
		if seen[norm] { // 2^-60: never, but the primary key would refuse it
			continue
		}
		seen[norm] = true
		codes = append(codes, c)
		rows = append(rows, RecoveryCode{UserID: userID, CodeHash: secret.Hash(norm), CreatedAt: dbTime(now)})
	}
	if err := tx.Create(&rows).Error; err != nil {
		return nil, fmt.Errorf("save recovery codes: %w", err)
	}
	return codes, nil
}

// newRecoveryCode returns a random code such as "7k2m-q9xd-4hfa".
func newRecoveryCode() string {
	b := make([]byte, recoveryCodeLen)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	var sb strings.Builder
	for i, x := range b {
		if i > 0 && i%4 == 0 {
			sb.WriteByte('-')
		}
		sb.WriteByte(recoveryAlphabet[x%32]) // 256 is a multiple of 32: uniform
	}
	return sb.String()
}

// normaliseRecoveryCode returns code in the form it is hashed in: lower case, without
// spaces and dashes, with Crockford's readings of look-alike letters; ok is false if it
// cannot be a recovery code.
func normaliseRecoveryCode(code string) (norm string, ok bool) {
	if len(code) > maxCodeLen {
		return "", false
	}
	var sb strings.Builder
	for i := 0; i < len(code); i++ {
		c := code[i]
		if 'A' <= c && c <= 'Z' {
			c += 'a' - 'A'
		}
		switch c {
		case ' ', '-':
			continue
		case 'o':
			c = '0'
		case 'i', 'l':
			c = '1'
		}
		if strings.IndexByte(recoveryAlphabet, c) < 0 {
			return "", false
		}
		sb.WriteByte(c)
	}
	if sb.Len() != recoveryCodeLen {
		return "", false
	}
	return sb.String(), true
}
