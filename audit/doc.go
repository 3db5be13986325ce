// Package audit records security events — logins, revocations, admin actions —
// in the database, where every node writes and the admin pages read.
package audit
