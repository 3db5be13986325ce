// Package firstlogin decides what happens when an upstream identity has no
// link yet — ENROLL (create a local user), LINK (attach it to an existing user
// who proves control of that account), AUTH (already linked) or DENY — and
// does the work of each step: creating the user, linking after a proof of
// control, and the views of its pages. An email match only ever proposes a
// link; linking automatically needs a connector marked trust_email, the
// upstream's email_verified and a verified local email.
//
// It is one kind of step of a sign-in: the broker's dispatcher keeps the
// state in the sign-in's login.Transaction, calls these functions and decides
// what comes next; nothing here calls back into the broker. The user and the
// link are written in one database transaction with the step's own move, so
// an abandoned or repeated step leaves nothing half-done.
package firstlogin
