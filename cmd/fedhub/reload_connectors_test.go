package main

import (
	"context"
	"log/slog"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
	"github.com/fedhub/fedhub/metrics"
)

// TestRebuildConnectorsComparesBlocks: a reload keeps the connector whose
// settings, its type's block included, did not change, and rebuilds one
// whose block or common keys did.
func TestRebuildConnectorsComparesBlocks(t *testing.T) {
	const base = `issuer: https://login.example.com
connectors:
  - id: kept
    type: oidc
    oidc: {issuer: https://a.example, client_id: a, client_secret: "${SECRET}"}
  - id: edited
    type: oidc
    label: Sign in with B
    oidc: {issuer: https://b.example, client_id: b, client_secret: "${SECRET}"}
`
	parse := func(t *testing.T, yaml string) *config.Config {
		t.Helper()
		cfg, err := config.Parse([]byte(yaml), func(string) (string, bool) { return "s", true }, connectors.Types())
		if err != nil {
			t.Fatal(err)
		}
		return cfg
	}
	for _, c := range []struct {
		name, old, new string
		rebuilt        bool // edited is rebuilt
	}{
		{"nothing changed", "", "", false},
		{"a key of the block", "client_id: b", "client_id: b2", true},
		{"a key added to the block", "client_id: b,", "client_id: b, use_userinfo: true,", true},
		{"a common key", "label: Sign in with B", "label: Sign in with Bee", true},
	} {
		t.Run(c.name, func(t *testing.T) {
			ctx, log := context.Background(), slog.New(slog.DiscardHandler)
			a := &app{metrics: metrics.New(), inForce: []brokers.Connector{{ID: "local"}}}
			running := parse(t, base)
			list, _, err := a.rebuildConnectors(ctx, &config.Config{}, running, log)
			if err != nil {
				t.Fatal(err)
			}
			a.inForce = list
			list, replaced, err := a.rebuildConnectors(ctx, running, parse(t, strings.Replace(base, c.old, c.new, 1)), log)
			if err != nil {
				t.Fatal(err)
			}
			if len(list) != 3 || list[0].ID != "local" || list[1].Impl != a.inForce[1].Impl {
				t.Errorf("the unchanged connector was not kept: %+v", list)
			}
			if rebuilt := list[2].Impl != a.inForce[2].Impl; rebuilt != c.rebuilt {
				t.Errorf("edited rebuilt = %v, want %v", rebuilt, c.rebuilt)
			}
			if wantReplaced := map[bool]int{false: 0, true: 1}[c.rebuilt]; len(replaced) != wantReplaced {
				t.Errorf("replaced %d connectors, want %d", len(replaced), wantReplaced)
			}
		})
	}
}
