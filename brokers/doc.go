// Package brokers is the one path every login takes: the login page, the
// /broker/{id}/… routes, the connector interfaces and the orchestration that
// turns an upstream login.Identity into a local user and hands it to the issuer.
// Connectors live in sub-packages and know nothing but this package's types
// and, for their configuration block, package config: each implements
// Settings (its block's yaml keys, Validate, Open with Deps), and the
// registry in package connectors names them.
package brokers
