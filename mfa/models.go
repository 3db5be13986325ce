package mfa

import "time"

// KindTOTP is the Kind of a TOTP factor.
const KindTOTP = "totp"

// Factor is one second factor of a user. A TOTP factor's Secret is the base32 key that the
// person's authenticator app holds as well; it is never shown again once confirmed.
type Factor struct {
	ID         string `gorm:"primaryKey;size:36"`
	UserID     string `gorm:"size:36;not null;uniqueIndex:idx_mfa_factors_user_secret,priority:1"`
	Kind       string `gorm:"size:16;not null"`
	Name       string `gorm:"size:64;not null"` // the person's label, "Phone"
	CreatedAt  time.Time
	LastUsedAt *time.Time
	Secret     string `gorm:"size:128;not null;uniqueIndex:idx_mfa_factors_user_secret,priority:2" json:"-"`
}

// TableName keeps the package's tables together.
func (Factor) TableName() string { return "mfa_factors" }

// UsedStep says that a TOTP code of a factor's time step was accepted. The primary key
// (factor, step) is what makes a code single-use across nodes.
type UsedStep struct {
	FactorID string `gorm:"primaryKey;size:36"`
	Step     int64  `gorm:"primaryKey;autoIncrement:false;index"`
}

// TableName keeps the package's tables together.
func (UsedStep) TableName() string { return "mfa_used_steps" }

// RecoveryCode is an unused recovery code of a user, as the SHA-256 of its normalised form.
type RecoveryCode struct {
	UserID    string `gorm:"primaryKey;size:36"`
	CodeHash  string `gorm:"primaryKey;size:64"`
	CreatedAt time.Time
}

// TableName keeps the package's tables together.
func (RecoveryCode) TableName() string { return "mfa_recovery_codes" }

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&Factor{}, &UsedStep{}, &RecoveryCode{}} }
