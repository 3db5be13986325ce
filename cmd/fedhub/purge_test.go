package main

import (
	"context"
	"log/slog"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/admin"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/passkey"
	"github.com/fedhub/fedhub/store"
	"github.com/fedhub/fedhub/throttle"
)

// How the rows of every table end. A new table must say here how its rows
// end: a test of its own or a purger wired in app.go, or why they are kept.
var tableEnds = map[string]string{
	"users": "kept", "user_roles": "kept", "user_groups": "kept", "links": "kept",
	"clients": "kept: the configuration's", "client_versions": "kept: one row", "events": "kept: the audit trail",
	"passkey_credentials": "kept", "fedhub_schema": "kept: one row, the schema the database was migrated to", "dirsync_states": "kept: one row per connector that imports its directory", "mfa_factors": "kept", "mfa_recovery_codes": "kept until used or replaced",
	"mfa_used_steps":        "purged: mfa.Service.Purge (tested in mfa)",
	"signing_keys":          "purged: issuer.Maintain",
	"auth_codes":            "purged: issuer.Maintain",
	"grants":                "purged: issuer.Maintain",
	"refresh_tokens":        "purged: issuer.Maintain",
	"revoked_access_tokens": "purged: issuer.Maintain",
	"sessions":              "purged: issuer.Maintain",
	"used_assertions":       "purged: issuer.Maintain",
	"device_authorizations": "purged: issuer.Maintain",
	"consent_requests":      "purged: issuer.Maintain",
	"consents":              "kept until the user revokes it",
	"logout_notices":        "deleted once delivered or given up: issuer.DeliverLogouts (tested in issuer)",
	// Purged by app.purge, tested below.
	"failures":           "purged",
	"connector_values":   "purged",
	"login_transactions": "purged",
	"passkey_challenges": "purged",
	"admin_sessions":     "purged",
}

// TestEveryExpiringTableIsPurged: every table is accounted for, and one run
// of the purgers that fedhub wires deletes an expired row of each table they
// own and keeps a live one.
func TestEveryExpiringTableIsPurged(t *testing.T) {
	ctx := context.Background()
	cfg := config.Defaults()
	cfg.Issuer = "http://localhost:8080" // a domain name: passkeys are offered, and their purger wired
	cfg.Storage = config.Storage{Driver: "sqlite", DSN: filepath.Join(t.TempDir(), "purge.db")}
	cfg.Signing.Algorithm = "ES256"
	if err := cfg.Validate(); err != nil {
		t.Fatal(err)
	}
	a, err := newApp(ctx, &cfg, slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelError})))
	if err != nil {
		t.Fatal(err)
	}
	defer store.Close(a.db)

	tables, err := a.db.Migrator().GetTables()
	if err != nil {
		t.Fatal(err)
	}
	for _, table := range tables {
		if strings.HasPrefix(table, "sqlite_") {
			continue // SQLite's own
		}
		if _, ok := tableEnds[table]; !ok {
			t.Errorf("table %s: say in tableEnds how its rows end", table)
		}
	}

	now := time.Now().UTC()
	past, future := now.Add(-13*time.Hour), now.Add(time.Hour)
	rows := []struct {
		table       string
		gone, stays any
	}{
		{"failures", &throttle.Failure{Key: "ip:192.0.2.1", Count: 1, LastAt: past},
			&throttle.Failure{Key: "ip:192.0.2.2", Count: 1, LastAt: now}},
		{"connector_values", &brokers.ConnectorValue{Key: "saml:gone", ExpiresAt: &past},
			&brokers.ConnectorValue{Key: "saml:stays", ExpiresAt: &future}},
		{"login_transactions",
			&login.Transaction{ID: "gone", TokenHash: "gone", BrowserHash: "b", Purpose: login.ForClient, Step: login.StepChoose, Version: 1, ExpiresAt: past},
			&login.Transaction{ID: "stays", TokenHash: "stays", BrowserHash: "b", Purpose: login.ForClient, Step: login.StepChoose, Version: 1, ExpiresAt: future}},
		{"passkey_challenges", &passkey.Challenge{Ceremony: "login", BindingHash: "gone", Session: "{}", ExpiresAt: past},
			&passkey.Challenge{Ceremony: "login", BindingHash: "stays", Session: "{}", ExpiresAt: future}},
		{"admin_sessions", &admin.Session{TokenHash: "gone", UserID: "u", CSRF: "c", ExpiresAt: past},
			&admin.Session{TokenHash: "stays", UserID: "u", CSRF: "c", ExpiresAt: future}},
	}
	var purged []string
	for _, r := range rows {
		if err := a.db.Create(r.gone).Error; err != nil {
			t.Fatalf("%s: %v", r.table, err)
		}
		if err := a.db.Create(r.stays).Error; err != nil {
			t.Fatalf("%s: %v", r.table, err)
		}
		purged = append(purged, r.table)
	}
	for table, end := range tableEnds {
		if end == "purged" && !slices.Contains(purged, table) {
			t.Errorf("table %s is said to be purged by app.purge but has no rows here", table)
		}
	}

	a.purgeOnce(ctx, slog.New(slog.NewTextHandler(t.Output(), nil)))
	for _, r := range rows {
		var n int64
		if err := a.db.Table(r.table).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		if err := a.db.Take(r.stays).Error; err != nil || n != 1 { // found by its primary key
			t.Errorf("%s after one purge: %d rows (%v), want only the live one", r.table, n, err)
		}
	}
}
