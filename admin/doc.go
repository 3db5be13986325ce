// Package admin is fedhub's administration: server-rendered pages under
// /admin and a JSON API under /api/admin/v1 over users, their linked upstream
// identities, sessions, connectors, clients and the audit log.
//
// The pages sign in through fedhub's own issuer as its built-in client
// fedhub-admin (code flow with PKCE); the API takes bearer access tokens of
// that issuer with the fedhub:admin scope. Only users with the admin role get
// in; destructive actions on the pages need a login younger than a configured age.
package admin
