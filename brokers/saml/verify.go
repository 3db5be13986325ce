package saml

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/fedhub/fedhub/login"

	"github.com/crewjam/saml"
)

const (
	protocolNS  = "urn:oasis:names:tc:SAML:2.0:protocol"
	assertionNS = "urn:oasis:names:tc:SAML:2.0:assertion"
)

// shape is what inspect learns from the unverified response: only used to
// refuse early or to pick a message, never to accept.
type shape struct {
	inResponseTo string
}

// inspect refuses response shapes fedhub never accepts: a root other than
// samlp:Response, a DTD, or anything but exactly one Assertion or
// EncryptedAssertion (as a child of the Response) in the whole document.
func inspect(raw []byte) (shape, error) {
	var sh shape
	d := xml.NewDecoder(bytes.NewReader(raw))
	depth, assertions, direct := 0, 0, 0
	for {
		tok, err := d.Token()
		if err == io.EOF {
			break
		}
		if err != nil {
			return sh, fmt.Errorf("malformed XML: %w", err)
		}
		switch t := tok.(type) {
		case xml.StartElement:
			depth++
			if depth == 1 {
				if t.Name.Space != protocolNS || t.Name.Local != "Response" {
					return sh, fmt.Errorf("root element is {%s}%s, not samlp:Response", t.Name.Space, t.Name.Local)
				}
				for _, a := range t.Attr {
					if a.Name.Space == "" && a.Name.Local == "InResponseTo" {
						sh.inResponseTo = a.Value
					}
				}
			}
			if t.Name.Space == assertionNS && (t.Name.Local == "Assertion" || t.Name.Local == "EncryptedAssertion") {
				assertions++
				if depth == 2 {
					direct++
				}
			}
		case xml.EndElement:
			depth--
		case xml.Directive:
			return sh, errors.New("DTDs are not allowed")
		}
	}
	if depth != 0 {
		return sh, errors.New("malformed XML: unclosed elements")
	}
	if assertions != 1 || direct != 1 {
		return sh, fmt.Errorf("the response holds %d assertions (%d as children of the Response); exactly one is accepted", assertions, direct)
	}
	return sh, nil
}

// verify checks a decoded SAMLResponse. requestID is the flow's AuthnRequest
// ID; "" means IdP-initiated. A non-zero freshSince is the earliest
// AuthnInstant accepted (a forced authentication).
func (c *Connector) verify(ctx context.Context, raw []byte, requestID string, freshSince time.Time) (login.Identity, error) {
	unsolicited := requestID == ""
	sh, err := inspect(raw)
	if err != nil {
		return login.Identity{}, c.refuse("response shape", err)
	}
	if unsolicited && sh.inResponseTo != "" {
		c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID,
			"reason", "an answer to an AuthnRequest arrived with no login in progress; it is not an IdP-initiated response")
		return login.Identity{}, ErrUnknownLogin
	}
	md, err := c.current(ctx)
	if err != nil {
		return login.Identity{}, ErrIDPUnavailable
	}

	sp := c.serviceProvider(md)
	var ids []string
	if unsolicited {
		// crewjam then skips every InResponseTo check; ours follow.
		sp.AllowIDPInitiated = true
	} else {
		ids = []string{requestID}
	}
	sp.ValidateRequestID = func(resp saml.Response, _ []string) error {
		if unsolicited {
			if resp.InResponseTo != "" {
				return errors.New("Response InResponseTo is set on an IdP-initiated response")
			}
			return nil
		}
		if resp.InResponseTo != requestID {
			return fmt.Errorf("Response InResponseTo %q is not this login's AuthnRequest %q", resp.InResponseTo, requestID)
		}
		return nil
	}
	sp.ValidateAudienceRestriction = c.checkAudience

	now := saml.TimeNow()
	a, err := parse(sp, raw, ids, c.acsURL)
	if err != nil {
		reason := err
		var ivr *saml.InvalidResponseError
		if errors.As(err, &ivr) && ivr.PrivateErr != nil {
			reason = ivr.PrivateErr
		}
		var status saml.ErrBadStatus
		if errors.As(reason, &status) {
			c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID, "reason", "IdP status is not success", "status", status.Status)
			return login.Identity{}, ErrIDPDenied
		}
		return login.Identity{}, c.refuse("verification failed", reason)
	}
	if err := c.checkAssertion(a, requestID, now); err != nil {
		return login.Identity{}, c.refuse("assertion", err)
	}
	// Only the verified assertion says how the person authenticated.
	authTime, acr := authnContext(a, now)
	if !freshSince.IsZero() && (authTime.IsZero() || authTime.Before(freshSince)) {
		c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID,
			"reason", "ForceAuthn: the AuthnInstant is before the login began (or missing); the IdP answered from its session",
			"authn_instant", authTime, "earliest", freshSince)
		return login.Identity{}, ErrNotReauthenticated
	}
	id, err := c.identity(a, md.ed.EntityID)
	if err != nil {
		return login.Identity{}, err
	}
	id.AuthTime, id.ACR = authTime, acr

	first, err := c.store.Once(ctx, replayKey(a.Issuer.Value, a.ID), replayUntil(a))
	if err != nil {
		return login.Identity{}, fmt.Errorf("saml: replay cache: %w", err)
	}
	if !first {
		c.log.WarnContext(ctx, "SAML response refused", "connector", c.cfg.ID, "reason", "replay: assertion already used",
			"assertion_id", a.ID)
		return login.Identity{}, ErrReplayed
	}
	return id, nil
}

// authnContext is the AuthnInstant (never later than now) and
// AuthnContextClassRef of the assertion's latest AuthnStatement; zero values
// when it has none.
func authnContext(a *saml.Assertion, now time.Time) (time.Time, string) {
	var at time.Time
	var acr string
	for _, st := range a.AuthnStatements {
		if st.AuthnInstant.IsZero() || (!at.IsZero() && !st.AuthnInstant.After(at)) {
			continue
		}
		at, acr = st.AuthnInstant, ""
		if ref := st.AuthnContext.AuthnContextClassRef; ref != nil {
			acr = strings.TrimSpace(ref.Value)
		}
	}
	if at.After(now) {
		at = now
	}
	return at, acr
}

// parse runs crewjam's verification; a panic in the XML code is a refusal.
// ids only feeds crewjam's SubjectConfirmation InResponseTo check: the
// Response's own InResponseTo goes through sp.ValidateRequestID.
func parse(sp *saml.ServiceProvider, raw []byte, ids []string, acs url.URL) (a *saml.Assertion, err error) {
	defer func() {
		if p := recover(); p != nil {
			a, err = nil, fmt.Errorf("panic while verifying: %v", p)
		}
	}()
	return sp.ParseXMLResponse(raw, ids, acs)
}

// checkAudience replaces crewjam's audience check, which accepts an assertion
// with no AudienceRestriction, or with one matching restriction among others.
func (c *Connector) checkAudience(a *saml.Assertion) error {
	if a.Conditions == nil || len(a.Conditions.AudienceRestrictions) == 0 {
		return errors.New("no AudienceRestriction")
	}
	for _, ar := range a.Conditions.AudienceRestrictions {
		if ar.Audience.Value != c.entityID {
			return fmt.Errorf("AudienceRestriction %q does not name our entity ID %q", ar.Audience.Value, c.entityID)
		}
	}
	return nil
}

// checkAssertion adds what crewjam does not check on the verified assertion.
func (c *Connector) checkAssertion(a *saml.Assertion, requestID string, now time.Time) error {
	if a.ID == "" {
		return errors.New("assertion has no ID")
	}
	if a.Subject == nil {
		return errors.New("assertion has no Subject")
	}
	if a.Conditions == nil || a.Conditions.NotOnOrAfter.IsZero() {
		return errors.New("assertion has no Conditions NotOnOrAfter")
	}
	if err := c.checkAudience(a); err != nil {
		return err
	}
	acs := c.acsURL.String()
	ok := false
	for _, sc := range a.Subject.SubjectConfirmations {
		d := sc.SubjectConfirmationData
		if d == nil {
			continue
		}
		if requestID == "" && d.InResponseTo != "" {
			return errors.New("SubjectConfirmationData InResponseTo is set on an IdP-initiated response")
		}
		if sc.Method != bearer || d.Recipient != acs || d.InResponseTo != requestID {
			continue
		}
		if d.NotOnOrAfter.IsZero() || !now.Before(d.NotOnOrAfter.Add(saml.MaxClockSkew)) {
			continue
		}
		if !d.NotBefore.IsZero() && now.Add(saml.MaxClockSkew).Before(d.NotBefore) {
			continue
		}
		ok = true
	}
	if !ok {
		return fmt.Errorf("no bearer SubjectConfirmation with Recipient %q, a NotOnOrAfter still valid and InResponseTo %q", acs, requestID)
	}
	return nil
}

// replayKey names an assertion in the replay cache.
func replayKey(issuer, id string) string {
	sum := sha256.Sum256([]byte(issuer + "\x00" + id))
	return "assertion:" + hex.EncodeToString(sum[:])
}

// replayUntil is how long the assertion must stay in the replay cache: past
// every time it could still be accepted.
func replayUntil(a *saml.Assertion) time.Time {
	until := a.IssueInstant.Add(saml.MaxIssueDelay)
	later := func(t time.Time) {
		if t.After(until) {
			until = t
		}
	}
	if a.Conditions != nil {
		later(a.Conditions.NotOnOrAfter)
	}
	if a.Subject != nil {
		for _, sc := range a.Subject.SubjectConfirmations {
			if sc.SubjectConfirmationData != nil {
				later(sc.SubjectConfirmationData.NotOnOrAfter)
			}
		}
	}
	return until.Add(saml.MaxClockSkew)
}

// identity maps the verified assertion to a login.Identity.
func (c *Connector) identity(a *saml.Assertion, idpEntityID string) (login.Identity, error) {
	type attr struct {
		name, friendly string
		values         []string
	}
	var attrs []attr
	raw := map[string]any{}
	for _, st := range a.AttributeStatements {
		for _, at := range st.Attributes {
			var vs []string
			for _, v := range at.Values {
				if v.NameID != nil {
					vs = append(vs, v.NameID.Value)
				} else {
					vs = append(vs, v.Value)
				}
			}
			attrs = append(attrs, attr{at.Name, at.FriendlyName, vs})
			if prev, ok := raw[at.Name].([]string); ok {
				raw[at.Name] = append(prev, vs...)
			} else {
				raw[at.Name] = vs
			}
		}
	}
	for _, at := range attrs {
		if at.friendly != "" {
			if _, taken := raw[at.friendly]; !taken {
				raw[at.friendly] = at.values
			}
		}
	}
	values := func(role string) []string {
		for _, name := range c.attrs[role] {
			var out []string
			found := false
			for _, at := range attrs {
				if at.name == name || at.friendly == name {
					found = true
					for _, v := range at.values {
						if v = strings.TrimSpace(v); v != "" && !slices.Contains(out, v) {
							out = append(out, v)
						}
					}
				}
			}
			if found {
				return out
			}
		}
		return nil
	}
	first := func(role string) string {
		if vs := values(role); len(vs) > 0 {
			return vs[0]
		}
		return ""
	}

	id := login.Identity{
		Connector: c.cfg.ID,
		Username:  first("username"),
		Email:     first("email"),
		Name:      first("name"),
		Groups:    values("groups"),
		Raw:       raw,
	}
	if len(c.attrs["email_verified"]) > 0 {
		v := strings.ToLower(first("email_verified"))
		id.EmailVerified = v == "true" || v == "1"
	}

	if len(c.attrs["subject"]) > 0 {
		vs := values("subject")
		if len(vs) != 1 {
			c.log.Warn("SAML response refused", "connector", c.cfg.ID,
				"reason", "the subject attribute must have exactly one value", "attribute", c.attrs["subject"][0], "values", len(vs))
			return login.Identity{}, ErrNoStableSubject
		}
		id.Subject = idpEntityID + "!" + vs[0]
		return id, nil
	}
	n := a.Subject.NameID
	if n == nil || strings.TrimSpace(n.Value) == "" {
		c.log.Warn("SAML response refused", "connector", c.cfg.ID, "reason", "no NameID and no subject attribute mapping")
		return login.Identity{}, ErrNoStableSubject
	}
	format := n.Format
	if format == "" {
		format = string(saml.UnspecifiedNameIDFormat)
	}
	stable := format == NameIDPersistent ||
		(format == c.nameID && c.nameID != NameIDTransient && c.nameID != nameIDEmail)
	if !stable {
		c.log.Warn("SAML response refused", "connector", c.cfg.ID,
			"reason", "the NameID is not persistent, so it cannot identify the account; configure the IdP to send a persistent NameID or set attributes.subject",
			"nameid_format", format)
		return login.Identity{}, ErrNoStableSubject
	}
	id.Subject = idpEntityID + "!" + n.Value
	return id, nil
}
