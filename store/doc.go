// Package store opens fedhub's database — embedded SQLite by default, PostgreSQL
// when several nodes share one — and migrates the models each package registers,
// once per schema (MigrateSchema), so that a start on an up-to-date database
// asks it nothing about its tables. Bulk and Settle serve large imports.
package store
