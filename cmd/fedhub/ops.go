package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/manage"
)

// newLogger is fedhub's log as configured; level holds its level, which a
// reload may change.
func newLogger(w io.Writer, c config.Log, level *slog.LevelVar) *slog.Logger {
	l, _ := c.SlogLevel() // validated with the configuration
	level.Set(l)
	opts := &slog.HandlerOptions{Level: level}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}

// management is what the management endpoints report: the database must
// answer and a signing key be loaded; the upstreams are reported only.
func (a *app) management() manage.Options {
	return manage.Options{
		Metrics: a.metrics.Handler(),
		Checks: []manage.Check{
			{Name: "database", Run: func(ctx context.Context) error {
				db, err := a.db.DB()
				if err != nil {
					return err
				}
				if err := db.PingContext(ctx); err != nil {
					return fmt.Errorf("the database does not answer: %w", err)
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
