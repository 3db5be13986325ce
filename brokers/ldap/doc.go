// Package ldap is the password connector for LDAP directories and Active Directory.
//
// A login runs in three steps, each with a timeout:
//
//  1. Find the person: a service-account connection, taken from a small pool, searches
//     UserBase for exactly one entry matching the typed username (escaped with
//     [ldap.EscapeFilter]). No entry means "invalid username or password"; more than one is a
//     configuration or directory error, logged and reported as a generic failure.
//  2. Check the password: a fresh connection, never a pooled one, binds as that entry's DN.
//     An empty password is refused before any network I/O, since an LDAP server treats a
//     simple bind without a password as an anonymous bind that succeeds (RFC 4513 §5.1.2).
//     Result 49 is "invalid username or password"; Active Directory's sub-codes (data 52e,
//     525, 530, 531, 532, 533, 701, 773, 775) are logged, and an expired password or account,
//     a password that must be changed and a locked account get a message of their own
//     ([login.UserError]); a disabled account is [login.ErrAccountDisabled]. The bind asks
//     for the password policy control (draft-behera, OpenLDAP's ppolicy), whose expired,
//     locked and must-change answers get the same messages; a bind that succeeds only to
//     change the password (changeAfterReset) is refused like one that fails.
//  3. Read the groups with the service account: on Active Directory every group the entry
//     belongs to, nested ones included (LDAP_MATCHING_RULE_IN_CHAIN, 1.2.840.113556.1.4.1941);
//     elsewhere the groups whose member attribute names the entry.
//
// The subject of the identity is stable across renames: Active Directory's objectGUID,
// formatted as a GUID string, or an LDAP server's entryUUID; the DN only where neither exists.
//
// On Active Directory a username may be typed as sAMAccountName ("alice"), down-level logon
// name ("EXAMPLE\alice", the domain must be Config.Domain) or user principal name
// ("alice@example.test"); disabled accounts (userAccountControl bit 2) are never found.
//
// Transport: ldaps:// or ldap:// with StartTLS, verifying the server's certificate against
// the system pool or Config.CAFile, for Config.ServerName (default: the server's host). Plain
// ldap:// and unverified TLS need Config.Insecure. Servers are listed in failover order, or
// discovered through DNS SRV records (_ldap._tcp.DOMAIN, ordered as RFC 2782 says); a server
// that cannot be reached is skipped for the next one. Referrals are never followed, with any
// credentials.
//
// For the directory sync, [Connector.Walk] reads every entry of the user filter in paged
// searches (RFC 2696, 1,000 entries a page) on a connection of its own, with the groups read
// once for the whole walk; on Active Directory it can start from the highestCommittedUSN of
// an earlier walk (uSNChanged). [Connector.Subjects] lists the subjects alone.
//
// [New] does not connect: fedhub starts while the directory is down, and [Connector.Health]
// tells the admin page whether the service account can bind.
//
// Configuration: [Config] is the ldap block of a connector of type ldap in the
// configuration file (brokers.Settings). [Config.Validate] names the keys of
// the block it refuses, for check-config and serve alike, and [New] runs it
// too; [Config.Open] builds the connector from the block and brokers.Deps.
package ldap
