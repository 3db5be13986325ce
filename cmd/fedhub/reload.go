package main

import (
	"context"
	"log/slog"
	"reflect"
	"strings"

	"github.com/fedhub/fedhub/config"
)

// reload applies the configuration that load reads now: the branding, the
// clients (added, changed, removed — in the database, so every node sees them
// at once), new bootstrap users and the log level. Sign-ins in flight are records in the
// database and go on. A file that does not load is refused whole and the
// running configuration kept; what else changed since the start needs a
// restart, and the log says which keys.
func (a *app) reload(ctx context.Context, load func() (*config.Config, error), started *config.Config, level *slog.LevelVar, log *slog.Logger) {
	cfg, err := load()
	if err != nil {
		log.Error("configuration reload refused: the file is invalid, the running configuration is kept", "err", err)
		return
	}
	l, _ := cfg.Log.SlogLevel() // validated by load
	if err := a.pages.Load(theme(cfg.Branding)); err != nil {
		log.Error("configuration reload refused: the theme does not load, the running configuration is kept", "err", err)
		return
	}
	if err := a.issuer.SyncClients(ctx, cfg.Clients); err != nil {
		log.Error("configuration reload: the clients could not be applied", "err", err)
		return
	}
	if err := bootstrapUsers(ctx, a.users, cfg.Users, log); err != nil {
		log.Error("configuration reload: the bootstrap users could not be created", "err", err)
		return
	}
	level.Set(l)
	log.Info("configuration reloaded", "clients", len(cfg.Clients), "log_level", cfg.Log.Level)
	if keys := needRestart(started, cfg); len(keys) > 0 {
		log.Warn("configuration reload: these keys changed and apply at the next restart", "keys", strings.Join(keys, ", "))
	}
}

// needRestart lists the top-level keys whose change a reload does not apply:
// every key but branding, clients, users and log.level.
func needRestart(old, cfg *config.Config) []string {
	a, b := *old, *cfg
	a.Clients, b.Clients, a.Users, b.Users, a.Log.Level, b.Log.Level = nil, nil, nil, nil, "", ""
	a.Branding, b.Branding = config.Branding{}, config.Branding{}
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
