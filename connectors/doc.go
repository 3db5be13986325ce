// Package connectors is the registry of connector types: the one place that
// names them. A connector type is a package whose configuration block
// implements brokers.Settings (its yaml keys, Validate naming them, Open
// building the connector from them and brokers.Deps); adding one is that
// package and one line in the registry.
//
// config reads the common keys of a connector (id, name, first_login,
// mappers, sync, recheck, mfa…) and hands the block named after its type
// (ldap:, saml:, oidc:…) to the type registered here: decoded strictly,
// every error naming its key and line. check-config and serve both load
// through LoadFile, so they accept and refuse the same files with the same
// messages.
package connectors
