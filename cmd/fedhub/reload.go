package main

import (
	"context"
	"io"
	"log/slog"
	"reflect"
	"slices"
	"strings"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/config"
)

// reload applies the configuration that load reads now: the connectors and
// their directory sync schedules, the branding, the clients (added, changed,
// removed — in the database, so every node sees them at once), new bootstrap
// users and the log level. Sign-ins in
// flight are records in the database and go on. A file that does not load,
// a connector that cannot be built or a theme that does not parse is refused
// whole, and the running configuration kept; what else changed since the
// start needs a restart, and the log says which keys. It returns the
// configuration in force.
func (a *app) reload(ctx context.Context, load func() (*config.Config, error), started, running *config.Config, level *slog.LevelVar, log *slog.Logger) *config.Config {
	cfg, err := load()
	if err != nil {
		log.Error("configuration reload refused: the file is invalid, the running configuration is kept", "err", err)
		return running
	}
	l, _ := cfg.Log.SlogLevel() // validated by load
	conns, replaced, err := a.rebuildConnectors(ctx, running, cfg, log)
	if err != nil {
		log.Error("configuration reload refused: a connector cannot be built, the running configuration is kept", "err", err)
		return running
	}
	if err := a.pages.Load(theme(cfg.Branding)); err != nil {
		closeConnectors(without(conns, a.inForce), 0)
		log.Error("configuration reload refused: the theme does not load, the running configuration is kept", "err", err)
		return running
	}
	a.broker.SetConnectors(conns)
	a.inForce = conns
	a.sync.SetImports(imports(cfg))
	closeConnectors(replaced, closeGrace) // after the requests that still use them
	if err := a.issuer.SyncClients(ctx, cfg); err != nil {
		log.Error("configuration reload: the clients could not be applied", "err", err)
		return cfg
	}
	if err := applyDefinitions(ctx, a.users, cfg); err != nil {
		log.Error("configuration reload: the groups and roles could not be applied", "err", err)
		return cfg
	}
	if err := bootstrapUsers(ctx, a.users, cfg.Users, log); err != nil {
		log.Error("configuration reload: the bootstrap users could not be created", "err", err)
		return cfg
	}
	level.Set(l)
	log.Info("configuration reloaded", "connectors", len(cfg.Connectors), "clients", len(cfg.Clients), "log_level", cfg.Log.Level)
	if keys := needRestart(started, cfg); len(keys) > 0 {
		log.Warn("configuration reload: these keys changed and apply at the next restart", "keys", strings.Join(keys, ", "))
	}
	return cfg
}

// closeGrace is how long a replaced connector stays open for the requests
// that were using it.
const closeGrace = time.Minute

// rebuildConnectors builds the connectors of cfg: one whose configuration
// (its common keys and its type's decoded block) is unchanged since running
// is kept as it is (its pool, its cached metadata),
// the others are new. The local connector and those not from the file (the
// tests' fakes) stay where they are, the local one first. It returns the
// list and the connectors it replaces.
func (a *app) rebuildConnectors(ctx context.Context, running, cfg *config.Config, log *slog.Logger) (list, replaced []brokers.Connector, err error) {
	was := map[string]config.Connector{}
	for _, c := range running.Connectors {
		was[c.ID] = c
	}
	current := map[string]brokers.Connector{}
	var fixed []brokers.Connector // local first, then the fakes
	for _, conn := range a.inForce {
		if _, fromFile := was[conn.ID]; fromFile {
			current[conn.ID] = conn
		} else {
			fixed = append(fixed, conn)
		}
	}
	list = append(list, fixed[0])
	for _, c := range cfg.Connectors {
		// A Kerberos connector is built again: the connector it resolves with may be new.
		if old, ok := was[c.ID]; ok && reflect.DeepEqual(old, c) && c.Type != "kerberos" {
			list = append(list, current[c.ID])
			continue
		}
		conn, err := upstreamConnector(ctx, cfg, c, list, a.db, a.secrets, log, a.metrics)
		if err != nil {
			closeConnectors(without(list, a.inForce), 0)
			return nil, nil, err
		}
		list = append(list, conn)
	}
	return append(list, fixed[1:]...), without(a.inForce, list), nil
}

// without lists the connectors of list whose implementation is not in keep.
func without(list, keep []brokers.Connector) []brokers.Connector {
	var out []brokers.Connector
	for _, c := range list {
		if !slices.ContainsFunc(keep, func(k brokers.Connector) bool { return k.Impl == c.Impl }) {
			out = append(out, c)
		}
	}
	return out
}

// closeConnectors closes the connectors that hold resources (LDAP pools)
// after wait.
func closeConnectors(list []brokers.Connector, wait time.Duration) {
	for _, c := range list {
		if cl, ok := c.Impl.(io.Closer); ok {
			time.AfterFunc(wait, func() { _ = cl.Close() })
		}
	}
}

// needRestart lists the top-level keys whose change a reload does not apply:
// every key but connectors, branding, clients, users, groups, roles and
// log.level.
func needRestart(old, cfg *config.Config) []string {
	a, b := *old, *cfg
	a.Clients, b.Clients, a.Users, b.Users, a.Log.Level, b.Log.Level = nil, nil, nil, nil, "", ""
	a.Branding, b.Branding, a.Connectors, b.Connectors = config.Branding{}, config.Branding{}, nil, nil
	a.Groups, b.Groups, a.Roles, b.Roles = nil, nil, nil, nil
	va, vb := reflect.ValueOf(a), reflect.ValueOf(b)
	var keys []string
	for i := range va.NumField() {
		f := va.Type().Field(i)
		if !f.IsExported() || reflect.DeepEqual(va.Field(i).Interface(), vb.Field(i).Interface()) {
			continue
		}
		keys = append(keys, strings.Split(f.Tag.Get("yaml"), ",")[0])
	}
	return keys
}
