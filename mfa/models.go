package mfa

import "time"

// KindTOTP is the Kind of a TOTP factor.
const KindTOTP = "totp"

// Factor is one second factor of a user. A TOTP factor's Secret is the base32 key that the
// person's authenticator app holds as well, sealed with the operator's key when one is set
// (package secret); it is never shown again once confirmed. A sealed key is never equal to
// another, so no unique index can keep a key from being confirmed twice: ConfirmTOTP checks
// it under a lock of the user (the index that did, idx_mfa_factors_user_secret, is dropped).
type Factor struct {
	ID         string `gorm:"primaryKey;size:36"`
	UserID     string `gorm:"size:36;not null;index"`
	Kind       string `gorm:"size:16;not null"`
	Name       string `gorm:"size:64;not null"` // the person's label, "Phone"
	CreatedAt  time.Time
	LastUsedAt *time.Time
	Secret     string `gorm:"size:255;not null" json:"-"` // a 64-byte key sealed is 175 characters
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
