// Package config owns fedhub's YAML configuration: its schema, defaults, ${ENV}
// expansion and validation. Every error names the key and the line it came from,
// and unknown keys are errors, so a typo never silently becomes a default.
//
// Of a connector, config owns the common keys (id, name, first_login, mappers,
// sync, recheck_interval, mfa…). The block named after its type (ldap:,
// saml:, oidc:…) belongs to the type: Parse is given the ConnectorTypes (the
// registry, package connectors), walks the block against the type's own
// struct (strict keys, ${ENV} expansion, lines), decodes it into
// Connector.Settings and runs its Validate, whose errors name keys relative to
// the block; Parse prefixes them and adds the line. config imports no
// connector.
package config
