package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/manage"
	"github.com/fedhub/fedhub/requestid"
	"github.com/fedhub/fedhub/store"
)

// newLogger is fedhub's log as configured; level holds its level, which a
// reload may change. A line logged with a request's context carries its ID.
func newLogger(w io.Writer, c config.Log, level *slog.LevelVar) *slog.Logger {
	l, _ := c.SlogLevel() // validated with the configuration
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(requestid.LogHandler(slog.NewJSONHandler(w, opts)))
	}
	return slog.New(requestid.LogHandler(slog.NewTextHandler(w, opts)))
}

// management is what the management endpoints report: the database must
// answer (on SQLite, its file must still be there: one deleted or unmounted
// under a running fedhub still answers, from a file nobody will find again)
// and a signing key be loaded; the upstreams are reported only.
func (a *app) management(cfg *config.Config) manage.Options {
	storage := cfg.Storage
	return manage.Options{
		Metrics:   a.metrics.Handler(),
		Profiling: cfg.Management.Profiling,
		Checks: []manage.Check{
			{Name: "database", Run: func(ctx context.Context) error {
				db, err := a.db.DB()
				if err != nil {
					return err
				}
				if err := db.PingContext(ctx); err != nil {
					return fmt.Errorf("the database does not answer: %w", err)
				}
				if storage.Driver == "sqlite" {
					if _, err := os.Stat(store.SQLitePath(storage.DSN)); err != nil {
						return fmt.Errorf("the database file is gone: %w", err)
					}
				}
				return nil
			}},
			{Name: "signing_key", Run: func(context.Context) error {
				if a.issuer.Keys().SigningSince().IsZero() {
					return errors.New("no signing key is loaded")
				}
				return nil
			}},
		},
		Upstreams: func(ctx context.Context) any { return a.broker.Status(ctx) },
	}
}
