package passkey

import (
	"bytes"
	"context"
	"crypto/subtle"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"slices"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"

	"github.com/fedhub/fedhub/store"
)

// BeginRegistration starts registering a credential for u and returns the options for
// navigator.credentials.create (a CredentialCreation: {"publicKey": {...}}, binary members
// base64url-encoded). A discoverable credential and user verification are preferred; the
// user's existing credentials are excluded.
func (s *Service) BeginRegistration(ctx context.Context, binding string, u User) (options []byte, err error) {
	const op = "begin passkey registration"
	if err := checkBinding(binding); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := u.check(); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	existing, err := s.Credentials(ctx, u.ID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	creds, err := toWebAuthn(existing)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	display := u.DisplayName
	if display == "" {
		display = u.Username
	}
	user := waUser{id: u.ID, name: u.Username, displayName: display, credentials: creds}
	creation, session, err := s.wa.BeginRegistration(user,
		webauthn.WithExclusions(webauthn.Credentials(creds).CredentialDescriptors()),
		webauthn.WithExtensions(webauthn.WithExtensionCredProps()))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.begin(ctx, op, ceremonyRegister, binding, u.ID, creation, session)
}

// FinishRegistration verifies the browser's response to BeginRegistration's options (the
// JSON of the PublicKeyCredential that navigator.credentials.create returned) and stores the
// new credential under name (trimmed and cut to MaxNameLength; DefaultName when empty).
func (s *Service) FinishRegistration(ctx context.Context, binding string, u User, name string, response []byte) (Credential, error) {
	const op = "finish passkey registration"
	row, session, err := s.takeChallenge(ctx, ceremonyRegister, binding)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	if row.UserID != u.ID {
		return Credential{}, fmt.Errorf("%s: %w: it was for another user", op, ErrChallenge)
	}
	if len(response) > MaxResponseSize {
		return Credential{}, fmt.Errorf("%s: %w: response larger than %d bytes", op, ErrVerification, MaxResponseSize)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, verificationError(op, err)
	}
	if err := sameChallenge(session, parsed.Response.CollectedClientData.Challenge); err != nil {
		return Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	wc, err := s.wa.CreateCredential(waUser{id: u.ID}, *session, parsed)
	if err != nil {
		return Credential{}, verificationError(op, err)
	}
	if len(wc.ID) == 0 || len(wc.ID) > maxCredentialID {
		return Credential{}, fmt.Errorf("%s: %w: credential ID of %d bytes", op, ErrVerification, len(wc.ID))
	}
	if name = cleanName(name); name == "" {
		name = DefaultName
	}
	rk := parsed.ClientExtensionResults.CredProps
	c := Credential{
		ID:                base64.RawURLEncoding.EncodeToString(wc.ID),
		UserID:            u.ID,
		Name:              name,
		CreatedAt:         s.now(),
		Discoverable:      rk != nil && rk.RK != nil && *rk.RK,
		PublicKey:         wc.PublicKey,
		SignCount:         wc.Authenticator.SignCount,
		AAGUID:            wc.Authenticator.AAGUID,
		Transports:        joinTransports(wc.Transport),
		Attachment:        string(wc.Authenticator.Attachment),
		AttestationFormat: wc.AttestationFormat,
		AttestationType:   wc.AttestationType,
		UserVerified:      wc.Flags.UserVerified,
		BackupEligible:    wc.Flags.BackupEligible,
		BackupState:       wc.Flags.BackupState,
	}
	if err := s.db.WithContext(ctx).Create(&c).Error; err != nil {
		if store.IsDuplicate(err) {
			return Credential{}, fmt.Errorf("%s: %w", op, ErrExists)
		}
		return Credential{}, fmt.Errorf("%s: save: %w", op, err)
	}
	return c, nil
}

// BeginLogin starts a second-factor login of a known user and returns the options for
// navigator.credentials.get (a CredentialAssertion: {"publicKey": {...}}) that allow the
// user's credentials, with user verification preferred. A user without credentials is
// ErrNotFound.
func (s *Service) BeginLogin(ctx context.Context, binding, userID string) (options []byte, err error) {
	const op = "begin passkey login"
	if err := checkBinding(binding); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := checkUserID(userID); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	stored, err := s.Credentials(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if len(stored) == 0 {
		return nil, fmt.Errorf("%s: %w: the user has no passkey", op, ErrNotFound)
	}
	creds, err := toWebAuthn(stored)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	assertion, session, err := s.wa.BeginLogin(waUser{id: userID, credentials: creds},
		webauthn.WithUserVerification(protocol.VerificationPreferred))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.begin(ctx, op, ceremonyLogin, binding, userID, assertion, session)
}

// FinishLogin verifies the browser's response to BeginLogin's options (the JSON of the
// PublicKeyCredential that navigator.credentials.get returned) for userID and returns the
// credential used, its sign count and LastUsedAt updated. A credential that is not one of
// userID's is ErrNotFound.
func (s *Service) FinishLogin(ctx context.Context, binding, userID string, response []byte) (Credential, error) {
	const op = "finish passkey login"
	row, session, err := s.takeChallenge(ctx, ceremonyLogin, binding)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	if row.UserID != userID {
		return Credential{}, fmt.Errorf("%s: %w: it was for another user", op, ErrChallenge)
	}
	parsed, err := parseAssertion(op, session, response)
	if err != nil {
		return Credential{}, err
	}
	stored, err := s.Credentials(ctx, userID)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	id := base64.RawURLEncoding.EncodeToString(parsed.RawID)
	i := -1
	for j := range stored {
		if stored[j].ID == id {
			i = j
		}
	}
	if i < 0 {
		return Credential{}, fmt.Errorf("%s: %w: the credential is not one of the user's", op, ErrNotFound)
	}
	creds, err := toWebAuthn(stored)
	if err != nil {
		return Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	// go-webauthn refuses a login when any allowed credential is no longer the user's; one
	// removed since Begin (on the account page, say) must not stop the others.
	session.AllowedCredentialIDs = slices.DeleteFunc(session.AllowedCredentialIDs, func(id []byte) bool {
		return !slices.ContainsFunc(creds, func(c webauthn.Credential) bool { return bytes.Equal(c.ID, id) })
	})
	wc, err := s.wa.ValidateLogin(waUser{id: userID, credentials: creds}, *session, parsed)
	if err != nil {
		return Credential{}, verificationError(op, err)
	}
	return s.used(ctx, op, stored[i], wc, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), false)
}

// BeginDiscoverableLogin starts a passwordless login, in which the authenticator says whose
// credential it is, and returns the options for navigator.credentials.get, with no
// allowCredentials and user verification required. Add "mediation": "conditional" in the
// page for passkey autofill.
func (s *Service) BeginDiscoverableLogin(ctx context.Context, binding string) (options []byte, err error) {
	const op = "begin passkey discoverable login"
	if err := checkBinding(binding); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	assertion, session, err := s.wa.BeginDiscoverableLogin(webauthn.WithUserVerification(protocol.VerificationRequired))
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return s.begin(ctx, op, ceremonyDiscoverable, binding, "", assertion, session)
}

// FinishDiscoverableLogin verifies the browser's response to BeginDiscoverableLogin's
// options and returns the ID of the user whose credential it was, and the credential (sign
// count and LastUsedAt updated). The caller still checks that the user may log in (exists,
// not disabled). An unknown credential is ErrNotFound; a user handle that is not the
// credential's owner is ErrVerification.
func (s *Service) FinishDiscoverableLogin(ctx context.Context, binding string, response []byte) (userID string, c Credential, err error) {
	const op = "finish passkey discoverable login"
	_, session, err := s.takeChallenge(ctx, ceremonyDiscoverable, binding)
	if err != nil {
		return "", Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	parsed, err := parseAssertion(op, session, response)
	if err != nil {
		return "", Credential{}, err
	}
	handle := parsed.Response.UserHandle
	if len(handle) == 0 {
		return "", Credential{}, fmt.Errorf("%s: %w: no user handle (not a discoverable credential)", op, ErrVerification)
	}
	stored, err := s.credential(ctx, base64.RawURLEncoding.EncodeToString(parsed.RawID))
	if err != nil {
		return "", Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	if !bytes.Equal(handle, []byte(stored.UserID)) {
		return "", Credential{}, fmt.Errorf("%s: %w: the user handle is not the credential's owner", op, ErrVerification)
	}
	wc, err := stored.webauthn()
	if err != nil {
		return "", Credential{}, fmt.Errorf("%s: %w", op, err)
	}
	owner := waUser{id: stored.UserID, credentials: []webauthn.Credential{wc}}
	_, validated, err := s.wa.ValidatePasskeyLogin(func(_, _ []byte) (webauthn.User, error) { return owner, nil }, *session, parsed)
	if err != nil {
		return "", Credential{}, verificationError(op, err)
	}
	c, err = s.used(ctx, op, *stored, validated, parsed.Response.AuthenticatorData.Flags.HasUserVerified(), true)
	if err != nil {
		return "", Credential{}, err
	}
	return c.UserID, c, nil
}

// begin stores the challenge of a Begin and returns the options as JSON.
func (s *Service) begin(ctx context.Context, op, ceremony, binding, userID string, options any, session *webauthn.SessionData) ([]byte, error) {
	data, err := json.Marshal(options)
	if err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	if err := s.saveChallenge(ctx, ceremony, binding, userID, session); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return data, nil
}

// parseAssertion bounds and parses a login response and checks that it answers the session's
// challenge.
func parseAssertion(op string, session *webauthn.SessionData, response []byte) (*protocol.ParsedCredentialAssertionData, error) {
	if len(response) > MaxResponseSize {
		return nil, fmt.Errorf("%s: %w: response larger than %d bytes", op, ErrVerification, MaxResponseSize)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return nil, verificationError(op, err)
	}
	if err := sameChallenge(session, parsed.Response.CollectedClientData.Challenge); err != nil {
		return nil, fmt.Errorf("%s: %w", op, err)
	}
	return parsed, nil
}

// sameChallenge: the response answers the challenge of this binding, not another's.
func sameChallenge(session *webauthn.SessionData, got string) error {
	if subtle.ConstantTimeCompare([]byte(session.Challenge), []byte(got)) != 1 {
		return fmt.Errorf("%w: the response answers another challenge", ErrChallenge)
	}
	return nil
}

// used records a verified assertion (uv: it verified the user): the new sign count, flags
// and LastUsedAt. A counter
// that did not grow (go-webauthn's clone warning: either counter non-zero and the new one
// not above the stored one) flags the credential and refuses the login. The update is
// conditional on the stored counter, so that of two assertions racing, one wins.
func (s *Service) used(ctx context.Context, op string, stored Credential, wc *webauthn.Credential, uv, discoverable bool) (Credential, error) {
	db := s.db.WithContext(ctx).Model(&Credential{})
	if wc.Authenticator.CloneWarning {
		if err := db.Where("id = ?", stored.ID).Update("clone_warning", true).Error; err != nil {
			return Credential{}, fmt.Errorf("%s: flag cloned passkey: %w", op, err)
		}
		return Credential{}, fmt.Errorf("%s: %w: sign counter %d is not above the stored %d (cloned authenticator?)",
			op, ErrVerification, wc.Authenticator.SignCount, stored.SignCount)
	}
	now := s.now()
	updates := map[string]any{
		"sign_count":    wc.Authenticator.SignCount,
		"last_used_at":  now,
		"user_verified": wc.Flags.UserVerified,
		"backup_state":  wc.Flags.BackupState,
	}
	if discoverable {
		updates["discoverable"] = true
	}
	res := db.Where("id = ? AND user_id = ? AND sign_count = ?", stored.ID, stored.UserID, stored.SignCount).Updates(updates)
	if res.Error != nil {
		return Credential{}, fmt.Errorf("%s: save: %w", op, res.Error)
	}
	if res.RowsAffected != 1 {
		if _, err := s.credential(ctx, stored.ID); errors.Is(err, ErrNotFound) {
			return Credential{}, fmt.Errorf("%s: %w: removed meanwhile", op, ErrNotFound)
		}
		return Credential{}, fmt.Errorf("%s: %w: the credential was used concurrently", op, ErrVerification)
	}
	c := stored
	c.SignCount = wc.Authenticator.SignCount
	c.LastUsedAt = &now
	c.UserVerified = wc.Flags.UserVerified
	c.BackupState = wc.Flags.BackupState
	c.Discoverable = c.Discoverable || discoverable
	c.LoginUserVerified = uv
	return c, nil
}

// verificationError wraps a go-webauthn error: ErrNotFound for an unknown credential,
// ErrVerification otherwise, with the library's details.
func verificationError(op string, err error) error {
	kind := ErrVerification
	var unknown *protocol.ErrorUnknownCredential
	if errors.As(err, &unknown) {
		kind = ErrNotFound
	}
	var perr *protocol.Error
	if errors.As(err, &perr) && perr.DevInfo != "" {
		return fmt.Errorf("%s: %w: %w (%s)", op, kind, err, perr.DevInfo)
	}
	return fmt.Errorf("%s: %w: %w", op, kind, err)
}
