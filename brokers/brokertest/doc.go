// Package brokertest has fake connectors for in-process tests of the whole
// sign-in (the application's request, the login page, the connector, first
// login, the code and the tokens) without real upstreams: a
// [PasswordConnector] and a [RedirectConnector] whose upstream answers at
// once; and a [Directory] for the directory sync. Each proves the identities
// of a table the test fills, so a test says who signs in and the broker does
// everything else as it does in production.
//
// They are fakes of the connector interfaces only; the broker, first login and
// the issuer under test are the real ones.
package brokertest
