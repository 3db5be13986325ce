// Command fedhub is the identity broker's single binary: `serve` runs it and
// `check-config`, `migrate`, `users …`, `keys rotate` and `hash-secret` manage
// it. This is the only place where the packages are wired together.
package main
