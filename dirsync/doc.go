// Package dirsync imports and updates the users of an LDAP or Active
// Directory connector from its directory (`sync: {import: on}`), and
// disables the users whose entries left it or were disabled there.
//
// A run walks the directory a page at a time (brokers.DirectoryWalker) and
// writes each page in one transaction: a new entry becomes a user linked by
// the connector's stable subject, as its first login would make it
// (firstlogin.Service.Import); a known one gets the profile, roles and groups
// its connector's mappers give, as a login with `sync: force` writes them
// (brokers.Connector.Map, linking.Service.SyncUser), and only when something
// changed: a second run updates nothing. Users whose entries are gone or
// disabled are disabled, never deleted; the sync re-enables only the users it
// disabled itself, never an administrator's disable.
//
// Active Directory is walked incrementally after the first complete run (by
// uSNChanged, from the highestCommittedUSN read at the start of the last run);
// as deleted objects do not show in a normal search, every incremental run
// also lists the subjects present (one attribute, paged) to find the users
// that left. Other directories are walked in full every time.
//
// One run at a time per connector, across nodes: a session advisory lock on
// PostgreSQL (it dies with its connection when a node dies), and on SQLite a
// lease row that expires, or is taken over at once when the process that held
// it on this host is gone. The lease row also holds the progress and the
// counts of the last run, so that every node's admin page shows them, and the
// high-water mark of the next incremental run. A run that is killed leaves
// whole pages behind; the next one is full and finishes the work (links are
// unique on connector and subject: never a duplicate).
package dirsync
