// Command fedhub is the identity broker's single binary: `serve` runs it and
// `check-config`, `migrate`, `users …`, `keys rotate` and `hash-secret` manage
// it. This is the only place where the packages are wired together; the
// connectors are built through the registry (package connectors), and
// check-config and serve load the file through the same connectors.LoadFile.
package main
