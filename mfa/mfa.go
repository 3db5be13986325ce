package mfa

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/subtle"
	"encoding/base32"
	"errors"
	"fmt"
	"hash/fnv"
	"image/png"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/pquerna/otp"
	"github.com/pquerna/otp/hotp"
	"github.com/pquerna/otp/totp"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store"
)

// Errors callers tell apart (with errors.Is).
var (
	ErrInvalidCode    = errors.New("invalid code")
	ErrCodeUsed       = errors.New("code already used")
	ErrNotFound       = errors.New("second factor not found")
	ErrInvalidKey     = errors.New("invalid TOTP key")
	ErrInvalidName    = errors.New("invalid name")
	ErrTooManyFactors = errors.New("too many second factors")
)

const (
	// period is the TOTP time step; digits the length of a code. Both are what every
	// authenticator app assumes (and what the otpauth URL says).
	period = 30
	digits = otp.DigitsSix
	// skew is how many steps either side of now a code is accepted.
	skew = 1
	// keepSteps is how many steps back Purge keeps spent steps: more than skew, so that
	// nodes whose clocks differ a little still see them.
	keepSteps = 3
	// secretSize is the size of a new TOTP key in bytes (RFC 4226 recommends 160 bits).
	secretSize = 20
	// minSecretSize and maxSecretSize bound the keys ConfirmTOTP takes (RFC 4226: at least 128 bits).
	minSecretSize = 16
	maxSecretSize = 64
	// qrSize is the width and height of the QR code image in pixels.
	qrSize = 200

	// MaxFactors is how many TOTP factors one user may have.
	MaxFactors = 10

	maxUserIDLen      = 36  // Factor.UserID's column
	maxNameLen        = 64  // Factor.Name's column, in characters
	maxAccountNameLen = 255 // a username or an email address
	maxCodeLen        = 64  // any code as typed, before normalisation
)

// Key is a new TOTP key, not yet saved: the caller keeps Secret (server side) until the
// person confirms it with a code, and shows URL or QRPNG (a 200×200 PNG of URL) to them.
type Key struct {
	Secret string // base32, no padding
	URL    string // otpauth://totp/...
	QRPNG  []byte
}

// Service reads and writes second factors.
type Service struct {
	db      *gorm.DB
	secrets *secret.Keyring // seals TOTP keys; nil stores them as they are
	issuer  string
	now     func() time.Time
}

// New returns a service over db. secrets seals the TOTP keys (nil: no key is
// configured); issuerName is what authenticator apps show above the account
// ("fedhub"); now is the clock.
func New(db *gorm.DB, secrets *secret.Keyring, issuerName string, now func() time.Time) *Service {
	if now == nil {
		panic("mfa.New: nil clock")
	}
	return &Service{db: db, secrets: secrets, issuer: issuerName, now: now}
}

// NewTOTPKey makes a new random TOTP key for accountName (what the app shows: a username
// or email address). Nothing is saved; see ConfirmTOTP.
func (s *Service) NewTOTPKey(accountName string) (*Key, error) {
	return s.KeyFor(NewSecret(), accountName)
}

// NewSecret returns a new random TOTP key, base32 as authenticator apps take it.
func NewSecret() string {
	raw := make([]byte, secretSize)
	_, _ = rand.Read(raw) // never fails (crypto/rand docs)
	return base32.StdEncoding.WithPadding(base32.NoPadding).EncodeToString(raw)
}

// KeyFor is the TOTP key secret (from NewSecret) for accountName, with its
// otpauth URL and QR code: the enrolment page shows the same key on every view.
func (s *Service) KeyFor(secret, accountName string) (*Key, error) {
	// The otpauth label is "issuer:account": neither may hold a colon (Key Uri Format).
	if s.issuer == "" || strings.Contains(s.issuer, ":") || len(s.issuer) > maxAccountNameLen {
		return nil, fmt.Errorf("new TOTP key: invalid issuer name %q", s.issuer)
	}
	if err := checkLabel(accountName, maxAccountNameLen); err != nil || strings.Contains(accountName, ":") {
		return nil, fmt.Errorf("new TOTP key: invalid account name %q", accountName)
	}
	raw, err := base32.StdEncoding.WithPadding(base32.NoPadding).DecodeString(secret)
	if err != nil || len(raw) != secretSize {
		return nil, fmt.Errorf("new TOTP key: %w", ErrInvalidKey)
	}
	k, err := totp.Generate(totp.GenerateOpts{
		Issuer:      s.issuer,
		AccountName: accountName,
		Period:      period,
		Secret:      raw,
		Digits:      digits,
		Algorithm:   otp.AlgorithmSHA1,
	})
	if err != nil {
		return nil, fmt.Errorf("new TOTP key: %w", err)
	}
	img, err := k.Image(qrSize, qrSize)
	if err != nil {
		return nil, fmt.Errorf("new TOTP key: QR code: %w", err)
	}
	var buf bytes.Buffer
	if err := png.Encode(&buf, img); err != nil {
		return nil, fmt.Errorf("new TOTP key: QR code: %w", err)
	}
	return &Key{Secret: k.Secret(), URL: k.URL(), QRPNG: buf.Bytes()}, nil
}

// ConfirmTOTP saves the key as the user's TOTP factor if code is valid for it (±1 step).
// The code's time step counts as used (so it cannot be replayed at login). If the user had
// no recovery codes, 10 are made and returned (shown once to the person); otherwise codes
// is nil. name is the person's label ("Phone").
//
// A key that is already one of the user's factors is refused with ErrCodeUsed (a form sent
// twice); a user with MaxFactors factors gets ErrTooManyFactors.
func (s *Service) ConfirmTOTP(ctx context.Context, userID, name, secret, code string) (f Factor, codes []string, err error) {
	if err := checkUserID(userID); err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	name = strings.TrimSpace(name)
	if err := checkLabel(name, maxNameLen); err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: name: %w", err)
	}
	secret, err = normaliseSecret(secret)
	if err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	code, ok := normaliseTOTPCode(code)
	if !ok {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", ErrInvalidCode)
	}
	now := s.now()
	steps, err := matchingSteps(secret, code, now)
	if err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	if len(steps) == 0 {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", ErrInvalidCode)
	}

	sealed, err := s.secrets.Seal([]byte(secret))
	if err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	f = Factor{ID: newID(), UserID: userID, Kind: KindTOTP, Name: name, CreatedAt: dbTime(now), Secret: string(sealed)}
	err = s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockUser(tx, userID); err != nil {
			return err
		}
		// Sealed keys differ even when equal (random nonces): a key already
		// confirmed is found by opening the user's others, under the lock.
		var others []Factor
		if err := tx.Where("user_id = ? AND kind = ?", userID, KindTOTP).Find(&others).Error; err != nil {
			return fmt.Errorf("read factors: %w", err)
		}
		if len(others) >= MaxFactors {
			return ErrTooManyFactors
		}
		for _, o := range others {
			key, err := s.secrets.Open([]byte(o.Secret))
			if err != nil {
				return fmt.Errorf("factor %s: %w", o.ID, err)
			}
			if string(key) == secret {
				return fmt.Errorf("key already confirmed: %w", ErrCodeUsed)
			}
		}
		if err := tx.Create(&f).Error; err != nil {
			return fmt.Errorf("save factor: %w", err)
		}
		for _, step := range steps {
			if err := tx.Create(&UsedStep{FactorID: f.ID, Step: step}).Error; err != nil {
				return fmt.Errorf("spend the confirmation code: %w", err)
			}
		}
		var left int64
		if err := tx.Model(&RecoveryCode{}).Where("user_id = ?", userID).Count(&left).Error; err != nil {
			return fmt.Errorf("count recovery codes: %w", err)
		}
		if left == 0 {
			c, err := replaceRecoveryCodes(tx, userID, now)
			if err != nil {
				return err
			}
			codes = c
		}
		return nil
	})
	if err != nil {
		return Factor{}, nil, fmt.Errorf("confirm TOTP: %w", err)
	}
	return f, codes, nil
}

// VerifyTOTP checks code against every TOTP factor of the user, one step either side of
// now, and returns the factor it belongs to. A code whose time step was already accepted
// for that factor, here or on another node, is refused with ErrCodeUsed; a code that fits
// no factor with ErrInvalidCode; a user without TOTP factors gets ErrNotFound.
func (s *Service) VerifyTOTP(ctx context.Context, userID, code string) (Factor, error) {
	if err := checkUserID(userID); err != nil {
		return Factor{}, fmt.Errorf("verify TOTP: %w", err)
	}
	code, ok := normaliseTOTPCode(code)
	if !ok {
		return Factor{}, fmt.Errorf("verify TOTP: %w", ErrInvalidCode)
	}
	var factors []Factor
	if err := s.db.WithContext(ctx).Where("user_id = ? AND kind = ?", userID, KindTOTP).
		Order("created_at, id").Find(&factors).Error; err != nil {
		return Factor{}, fmt.Errorf("verify TOTP: read factors: %w", err)
	}
	if len(factors) == 0 {
		return Factor{}, fmt.Errorf("verify TOTP: %w", ErrNotFound)
	}
	now := s.now()
	used := false
	for _, f := range factors {
		key, err := s.secrets.Open([]byte(f.Secret))
		if err != nil {
			return Factor{}, fmt.Errorf("verify TOTP: factor %s: %w", f.ID, err)
		}
		steps, err := matchingSteps(string(key), code, now)
		if err != nil {
			return Factor{}, fmt.Errorf("verify TOTP: factor %s: %w", f.ID, err)
		}
		for _, step := range steps {
			// Insert or fail: of all nodes trying the same step of the same factor, one inserts.
			err := s.db.WithContext(ctx).Create(&UsedStep{FactorID: f.ID, Step: step}).Error
			if store.IsDuplicate(err) {
				used = true
				continue
			}
			if err != nil {
				return Factor{}, fmt.Errorf("verify TOTP: spend code: %w", err)
			}
			t := dbTime(now)
			res := s.db.WithContext(ctx).Model(&Factor{}).Where("id = ? AND user_id = ?", f.ID, userID).
				Update("last_used_at", t)
			if res.Error != nil {
				return Factor{}, fmt.Errorf("verify TOTP: record use: %w", res.Error)
			}
			if res.RowsAffected == 0 {
				// Removed since it was read: its codes no longer count.
				if err := s.db.WithContext(ctx).Delete(&UsedStep{}, "factor_id = ?", f.ID).Error; err != nil {
					return Factor{}, fmt.Errorf("verify TOTP: %w", err)
				}
				break
			}
			f.LastUsedAt = &t
			return f, nil
		}
	}
	if used {
		return Factor{}, fmt.Errorf("verify TOTP: %w", ErrCodeUsed)
	}
	return Factor{}, fmt.Errorf("verify TOTP: %w", ErrInvalidCode)
}

// CheckSecrets refuses TOTP keys sealed with a key that is not configured, so
// that fedhub does not start rather than fail at someone's sign-in. Only the
// distinct headers are read: they name the key.
func (s *Service) CheckSecrets(ctx context.Context) error {
	var headers []string
	if err := s.db.WithContext(ctx).Raw("SELECT DISTINCT substr(secret, 1, ?) FROM mfa_factors", secret.HeaderLen).
		Scan(&headers).Error; err != nil {
		return fmt.Errorf("check TOTP keys: %w", err)
	}
	for _, h := range headers {
		if err := s.secrets.Readable([]byte(h)); err != nil {
			return fmt.Errorf("TOTP keys: %w", err)
		}
	}
	return nil
}

// Reseal seals every TOTP key with the current key (fedhub secrets rekey) and
// says how many it changed of how many there are.
func (s *Service) Reseal(ctx context.Context) (changed, total int, err error) {
	var factors []Factor
	err = s.db.WithContext(ctx).Select("id", "secret").FindInBatches(&factors, 500, func(tx *gorm.DB, _ int) error {
		for _, f := range factors {
			total++
			sealed, did, err := s.secrets.Reseal([]byte(f.Secret))
			if err != nil {
				return fmt.Errorf("factor %s: %w", f.ID, err)
			}
			if !did {
				continue
			}
			// Only if unchanged since read: a factor removed meanwhile stays removed.
			if err := s.db.WithContext(ctx).Model(&Factor{}).Where("id = ? AND secret = ?", f.ID, f.Secret).
				Update("secret", string(sealed)).Error; err != nil {
				return fmt.Errorf("factor %s: %w", f.ID, err)
			}
			changed++
		}
		return nil
	}).Error
	if err != nil {
		return changed, total, fmt.Errorf("reseal TOTP keys: %w", err)
	}
	return changed, total, nil
}

// Factors returns the user's second factors, oldest first.
func (s *Service) Factors(ctx context.Context, userID string) ([]Factor, error) {
	if err := checkUserID(userID); err != nil {
		return nil, nil
	}
	var factors []Factor
	if err := s.db.WithContext(ctx).Where("user_id = ?", userID).Order("created_at, id").Find(&factors).Error; err != nil {
		return nil, fmt.Errorf("read factors: %w", err)
	}
	return factors, nil
}

// Remove deletes one of the user's factors (ErrNotFound if the user has no such factor).
// Removing the last TOTP factor also removes the recovery codes.
func (s *Service) Remove(ctx context.Context, userID, factorID string) error {
	if err := checkUserID(userID); err != nil {
		return fmt.Errorf("remove factor: %w", err)
	}
	if factorID == "" || len(factorID) > 36 {
		return fmt.Errorf("remove factor: %w", ErrNotFound)
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockUser(tx, userID); err != nil {
			return err
		}
		res := tx.Where("id = ? AND user_id = ?", factorID, userID).Delete(&Factor{})
		if res.Error != nil {
			return res.Error
		}
		if res.RowsAffected == 0 {
			return ErrNotFound
		}
		if err := tx.Where("factor_id = ?", factorID).Delete(&UsedStep{}).Error; err != nil {
			return err
		}
		var left int64
		if err := tx.Model(&Factor{}).Where("user_id = ? AND kind = ?", userID, KindTOTP).Count(&left).Error; err != nil {
			return err
		}
		if left == 0 {
			return tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("remove factor: %w", err)
	}
	return nil
}

// Reset deletes every TOTP factor and recovery code of the user (an admin's reset, or a
// deleted user).
func (s *Service) Reset(ctx context.Context, userID string) error {
	if err := checkUserID(userID); err != nil {
		return nil // no such user has anything
	}
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		if err := lockUser(tx, userID); err != nil {
			return err
		}
		var ids []string
		if err := tx.Model(&Factor{}).Where("user_id = ? AND kind = ?", userID, KindTOTP).Pluck("id", &ids).Error; err != nil {
			return err
		}
		if len(ids) > 0 {
			if err := tx.Where("factor_id IN ?", ids).Delete(&UsedStep{}).Error; err != nil {
				return err
			}
			if err := tx.Where("id IN ?", ids).Delete(&Factor{}).Error; err != nil {
				return err
			}
		}
		return tx.Where("user_id = ?", userID).Delete(&RecoveryCode{}).Error
	})
	if err != nil {
		return fmt.Errorf("reset second factors: %w", err)
	}
	return nil
}

// Purge deletes the spent time steps that are more than three steps old: their codes are
// refused as too old anyway.
func (s *Service) Purge(ctx context.Context) error {
	cur := stepAt(s.now())
	if err := s.db.WithContext(ctx).Where("step < ?", cur-keepSteps).Delete(&UsedStep{}).Error; err != nil {
		return fmt.Errorf("purge spent TOTP steps: %w", err)
	}
	return nil
}

// stepAt is the TOTP time step (RFC 6238's T) of t.
func stepAt(t time.Time) int64 {
	u := t.Unix()
	if u < 0 {
		return -1 // before 1970: no step is valid
	}
	return u / period
}

// matchingSteps returns the steps within the skew around now whose code is code.
func matchingSteps(secret, code string, now time.Time) ([]int64, error) {
	cur := stepAt(now)
	var steps []int64
	for step := cur - skew; step <= cur+skew; step++ {
		if step < 0 {
			continue
		}
		want, err := hotp.GenerateCodeCustom(secret, uint64(step), hotp.ValidateOpts{Digits: digits, Algorithm: otp.AlgorithmSHA1})
		if err != nil {
			return nil, fmt.Errorf("TOTP code: %w", err)
		}
		if subtle.ConstantTimeCompare([]byte(want), []byte(code)) == 1 {
			steps = append(steps, step)
		}
	}
	return steps, nil
}

// normaliseTOTPCode returns code without spaces (apps show "123 456") if it is then six
// ASCII digits.
func normaliseTOTPCode(code string) (string, bool) {
	if len(code) > maxCodeLen {
		return "", false
	}
	code = strings.ReplaceAll(code, " ", "")
	if len(code) != digits.Length() {
		return "", false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return "", false
		}
	}
	return code, true
}

var b32NoPadding = base32.StdEncoding.WithPadding(base32.NoPadding)

// normaliseSecret returns a base32 TOTP key in upper case without padding or spaces, if it
// decodes to a key of an acceptable size.
func normaliseSecret(secret string) (string, error) {
	if len(secret) > 2*maxSecretSize*8/5 {
		return "", ErrInvalidKey
	}
	secret = strings.ToUpper(strings.TrimRight(strings.ReplaceAll(secret, " ", ""), "="))
	b, err := b32NoPadding.DecodeString(secret)
	if err != nil || len(b) < minSecretSize || len(b) > maxSecretSize {
		return "", ErrInvalidKey
	}
	return secret, nil
}

// checkUserID refuses IDs that no user can have, before the database is asked.
func checkUserID(userID string) error {
	if userID == "" || len(userID) > maxUserIDLen {
		return ErrNotFound
	}
	return nil
}

// checkLabel accepts a non-empty, printable, valid UTF-8 string of at most max characters.
func checkLabel(s string, max int) error {
	if s == "" || !utf8.ValidString(s) || utf8.RuneCountInString(s) > max {
		return ErrInvalidName
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return ErrInvalidName
		}
	}
	return nil
}

// lockUser serialises the transactions that change one user's factors (so that two
// confirmations at once make one set of recovery codes). On PostgreSQL a transaction
// advisory lock does it; SQLite's transactions begin IMMEDIATE (store's DSN), which
// serialises writers already.
func lockUser(tx *gorm.DB, userID string) error {
	if tx.Dialector.Name() != "postgres" {
		return nil
	}
	h := fnv.New64a()
	h.Write([]byte("mfa:" + userID))
	if err := tx.Exec("SELECT pg_advisory_xact_lock(?)", int64(h.Sum64())).Error; err != nil {
		return fmt.Errorf("lock user: %w", err)
	}
	return nil
}

// dbTime is t as every database stores it (UTC, microseconds).
func dbTime(t time.Time) time.Time { return t.UTC().Truncate(time.Microsecond) }

// newID returns a random UUID (version 4), as linking's user IDs.
func newID() string {
	b := make([]byte, 16)
	_, _ = rand.Read(b) // never fails (crypto/rand docs)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	return fmt.Sprintf("%x-%x-%x-%x-%x", b[0:4], b[4:6], b[6:8], b[8:10], b[10:])
}
