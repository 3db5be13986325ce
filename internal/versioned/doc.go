// Package versioned keeps, on each node, a copy of something the database
// holds and that changes rarely — the clients, the role and group
// definitions — checked against a version number that every writer raises:
// one small read per check instead of the whole data per request.
package versioned
