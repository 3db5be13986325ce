#!/bin/sh
# Seeds a new directory once (the cn=config database, then the demo users with their passwords
# hashed), then runs slapd in the foreground on an unprivileged port.
set -eu
dir=${LDAP_DIR:-/var/lib/openldap}
seed=${LDAP_SEED:-/etc/ldap/seed}
: "${LDAP_ADMIN_PASSWORD:?set LDAP_ADMIN_PASSWORD}"
if [ ! -d "$dir/slapd.d" ]; then
	mkdir -p "$dir/slapd.d" "$dir/data"
	sed -e "s|@DIR@|$dir|g" -e "s|@ADMIN_PASSWORD@|$(slappasswd -s "$LDAP_ADMIN_PASSWORD")|" "$seed/config.ldif" >"$dir/config.ldif"
	slapadd -n0 -F "$dir/slapd.d" -l "$dir/config.ldif"
	rm "$dir/config.ldif"
	sed -e "s|@ALICE_PASSWORD@|$(slappasswd -s "${LDAP_ALICE_PASSWORD:-alice-password}")|" \
		-e "s|@BOB_PASSWORD@|$(slappasswd -s "${LDAP_BOB_PASSWORD:-bob-password}")|" "$seed/users.ldif" >"$dir/users.ldif"
	slapadd -n1 -F "$dir/slapd.d" -l "$dir/users.ldif"
	rm "$dir/users.ldif"
fi
exec slapd -d "${LDAP_DEBUG:-0}" -F "$dir/slapd.d" -h "ldap://0.0.0.0:${LDAP_PORT:-1389}/"
