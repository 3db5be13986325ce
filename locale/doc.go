// Package locale holds the message catalogs of the person-facing pages and
// chooses each request's language: the OIDC ui_locales of the login, else the
// browser's Accept-Language, else the configured default. English and German
// are built in; a theme's i18n/ folder overrides their messages or adds
// languages, so an organisation can reword or translate the pages without
// forking.
package locale
