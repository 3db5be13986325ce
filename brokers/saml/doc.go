// Package saml is fedhub's SAML 2.0 service-provider connector: a
// brokers.RedirectConnector whose upstream is a SAML identity provider.
//
// # Flow
//
// Begin sends an AuthnRequest (HTTP-Redirect binding by default, HTTP-POST on
// request; signed with RSA-SHA256 when SignRequests is set) with RelayState =
// flow.State, an opaque server-side reference, and stores the request ID in
// flow.Data["request_id"]. The IdP posts its Response to the flow's Callback,
// which is the ACS URL (BaseURL + "/broker/" + ID + "/callback"); brokers finds
// the flow by RelayState and calls Finish. IdP-initiated responses reach
// FinishUnsolicited, which refuses them unless AllowIDPInitiated is set.
// RelayState is never used as a URL.
//
// # What is verified
//
// crewjam/saml's ServiceProvider.ParseXMLResponse does the XML work: it
// rejects XML that does not survive a round trip, checks the Response
// Destination, Issuer, IssueInstant (MaxIssueDelay) and Status, verifies the
// Response signature or, when the Response is unsigned, each Assertion's
// signature against the signing certificates of the IdP metadata (goxmldsig,
// which also requires the certificate to be valid now), decrypts
// EncryptedAssertions with the SP key, checks the Assertion Issuer,
// IssueInstant, Conditions NotBefore/NotOnOrAfter (with MaxClockSkew) and,
// for every SubjectConfirmation, Recipient = ACS URL, NotOnOrAfter and
// InResponseTo, and returns the data of the verified element.
//
// It does not check, and this package adds:
//   - exactly one Assertion or EncryptedAssertion in a samlp:Response, and
//     no other Assertion anywhere in it (signature-wrapping shapes), no DTD;
//   - the Response InResponseTo equals this flow's request ID exactly, and
//     an empty request ID is refused (crewjam matches against a list, and
//     "" would match a response that answers nothing);
//   - at least one SubjectConfirmation with Method bearer, data,
//     Recipient = ACS URL, a NotOnOrAfter that has not passed and
//     InResponseTo = the request ID (crewjam accepts an assertion with no
//     SubjectConfirmation at all, and ignores the method);
//   - at least one AudienceRestriction, and every AudienceRestriction names
//     our entity ID (crewjam accepts none at all, or any one matching);
//   - a replay cache: the assertion ID (with the issuer) is recorded through
//     brokers.ConnectorStore.Once until the latest of its NotOnOrAfter times
//     plus MaxClockSkew, so a second use is refused on every node;
//   - IdP-initiated login: crewjam's AllowIDPInitiated turns off every
//     InResponseTo check. Here an unsolicited response is refused unless
//     AllowIDPInitiated is set, and even then it must not answer a request
//     (no InResponseTo anywhere: a stolen solicited response cannot be
//     replayed through the unsolicited path) and goes through the replay
//     cache;
//   - Finish also requires the posted RelayState to equal flow.State and the
//     SAMLResponse to come in the POST body; the artifact binding is not
//     offered (crewjam would resolve a posted SAMLart);
//   - a panic inside the XML libraries is turned into a refusal (crewjam
//     dereferences a missing SubjectConfirmationData).
//
// Known limits: crewjam keeps one Audience per AudienceRestriction (the
// last), so an IdP listing several audiences in one restriction must list
// ours last; IdP signatures with RSA-SHA1 are still accepted (goxmldsig);
// the IdP metadata's validUntil is not enforced and the metadata itself is
// trusted by its transport (https, or a file).
//
// # Identity
//
// Subject is the IdP entity ID + "!" + the NameID when its Format is
// persistent (or is the configured NameIDFormat, when that is neither
// transient nor emailAddress). Transient, emailAddress or other NameIDs are
// refused (ErrNoStableSubject) unless Attributes["subject"] names an
// attribute with exactly one value, which is then used instead
// (entity ID + "!" + value); a configured subject attribute always wins.
//
// Attributes are matched by Name or FriendlyName. Defaults, tried in order
// (a configured name replaces the list):
//
//	username: uid, urn:oid:0.9.2342.19200300.100.1.1
//	email:    mail, email, urn:oid:0.9.2342.19200300.100.1.3,
//	          http://schemas.xmlsoap.org/ws/2005/05/identity/claims/emailaddress
//	name:     displayName, urn:oid:2.16.840.1.113730.3.1.241, cn, urn:oid:2.5.4.3
//	groups:   groups, memberOf, urn:oid:1.2.840.113556.1.2.102,
//	          http://schemas.microsoft.com/ws/2008/06/identity/claims/groups
//	subject:  (none: the NameID)
//	email_verified: (none: SAML has no such notion, so EmailVerified is false
//	          unless this names an attribute whose value is "true" or "1")
//
// Raw holds every attribute as []string, under its Name and, when free, its
// FriendlyName.
//
// AuthTime and ACR come from the verified assertion's AuthnStatement
// (AuthnInstant, AuthnContextClassRef; the latest statement when there are
// several), never from anything outside the signed element. MultiFactor
// reports whether the ACR is one of Config.MFAContextClasses.
//
// # Step-up
//
// A flow with ForceAuthn sends ForceAuthn="true" in the AuthnRequest and
// Finish refuses (ErrNotReauthenticated) an assertion whose AuthnInstant is
// missing or earlier than the flow's start minus AuthnInstantSkew: an IdP
// that ignored ForceAuthn and answered from its SSO session. The flow's
// MaxAge has no SAML equivalent and is not sent. Config.Now is the clock for
// the flow's start.
//
// # Errors
//
// Finish returns ErrInvalidResponse for anything the verification refuses and
// a few *login.UserError values for cases a person can act on (ErrReplayed,
// ErrUnsolicited, ErrUnknownLogin, ErrNoStableSubject, ErrIDPDenied,
// ErrIDPUnavailable). None of them carries upstream XML or error text: the
// reason is logged with slog.
//
// # Keys and metadata
//
// The SP key and certificate come from SPKeyFile/SPCertFile, or are generated
// once (RSA 3072, self-signed, ten years) and kept in the connector store
// under "sp-key" so that every node uses the same pair. The SP metadata
// (Routes: GET /saml/metadata) publishes the certificate for signing and
// encryption, and only the HTTP-POST ACS.
//
// IdP metadata comes from a file (read at New, which fails if it is invalid)
// or a URL (fetched lazily: New never fails because the IdP is down; Begin
// returns ErrIDPUnavailable until it can be fetched). Either is reloaded in
// the background when older than MetadataRefresh; a failed reload keeps the
// last good metadata and is reported by Health.
//
// Configuration: [Config] is the saml block of a connector of type saml in the
// configuration file (brokers.Settings). [Config.Validate] names the keys of
// the block it refuses, for check-config and serve alike, and [New] runs it
// too; [Config.Open] builds the connector from the block and brokers.Deps.
package saml
