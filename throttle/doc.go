// Package throttle counts failed password attempts per user and per client IP
// and says how long the next attempt must wait, with growing waits (Keycloak's
// model). Counts live in the database, so every node sees the same ones.
package throttle
