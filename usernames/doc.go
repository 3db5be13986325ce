// Package usernames is fedhub's one normalisation of usernames, used for
// storage, for lookups and by the brute-force limiter alike (RFC 8265: the
// PRECIS UsernameCaseMapped profile, applied to each space-separated part).
//
// [Key] is the form under which a username is stored, looked up and
// compared: "Alice", " alice", "ＡＬＩＣＥ" and "alice" are one key, as are
// "John  Smith" and "john smith". [New] checks a username that is about to
// be created and refuses, beyond what Key refuses, letters that let one name
// pass for another: mixed scripts (a Cyrillic "а" in a Latin name), Cyrillic
// or Greek names spelled only with Latin look-alikes, and phonetic letters.
package usernames
