// Package kerberos is the connector that signs people in with the Kerberos
// ticket their browser already holds: HTTP Negotiate (RFC 4559), SPNEGO
// (RFC 4178) carrying a Kerberos AP-REQ (RFC 4120), verified with the
// service's keytab through github.com/jcmturner/gokrb5/v8.
//
// A token is accepted only when all of these hold: it is an AP-REQ for
// exactly the configured service principal in the configured realm; the
// ticket decrypts with the keytab's key; the client is of that realm; the
// ticket is valid now (start and end times, within the clock skew); the
// authenticator decrypts with the ticket's session key, names the ticket's
// client and was made within the clock skew of now; and it was never seen
// before (a replay cache in the database, shared by every node, keeps each
// authenticator until it could no longer pass the skew check). Every time
// check uses the connector's injected clock.
//
// The subject of the identity is the principal's name (alice@EXAMPLE.TEST),
// unless resolve_with names an Active Directory connector: the principal is
// then looked up in that directory (see [Resolver]) and the identity is the
// directory connector's own, with its stable subject (objectGUID), so that a
// person has one linked identity whether they typed a password or not. A
// disabled, locked or expired account is refused there even though the KDC
// issued its ticket earlier.
package kerberos
