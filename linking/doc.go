// Package linking owns fedhub's users, their groups and roles, and the links
// between a user and the upstream identities (connector, stable subject) that may
// sign in as that user. A local password is one more link, to the "local" connector,
// so every way to log in is a row here and "the last way to log in" is countable.
package linking
