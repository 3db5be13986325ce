// Package local is the connector for fedhub's own username/password accounts.
package local
