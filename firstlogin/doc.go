// Package firstlogin decides what happens when an upstream identity has no
// link yet — ENROLL (create a local user), LINK (attach it to an existing user
// who proves control of that account), AUTH (already linked) or DENY — and
// runs the steps and pages of that decision. An email match only ever
// proposes a link; linking automatically needs a connector marked
// trust_email, the upstream's email_verified and a verified local email.
//
// Pending first logins live in the database, bound to the browser and to the
// exact upstream identity, single-use and short-lived; the user and the link
// are written in one transaction at the end, so an abandoned flow leaves nothing.
package firstlogin
