// Package certreload serves a TLS certificate from files that an operator or
// a tool (certbot, cert-manager) replaces while fedhub runs: the files are
// checked at most once a second and a changed pair is loaded without a restart.
package certreload
