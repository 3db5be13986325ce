// Package store opens fedhub's database — embedded SQLite by default, PostgreSQL
// when several nodes share one — and migrates the models each package registers.
package store
