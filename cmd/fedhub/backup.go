package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store"
)

// backup copies the SQLite database to a new file, while fedhub may serve.
func backup(ctx context.Context, args []string, stdout io.Writer) error {
	var to string
	cfg, err := backupConfig("backup", args, func(fs *flag.FlagSet) { fs.StringVar(&to, "to", "", "the backup file to write (must not exist)") })
	if err != nil {
		return err
	}
	if to == "" {
		return errors.New("give the file to write with --to FILE")
	}
	db, err := store.Open(ctx, cfg.Storage)
	if err != nil {
		return err
	}
	defer store.Close(db)
	if err := store.Backup(ctx, db, to); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup written to %s; its secrets are sealed with secrets.key: keep that key (and it) to restore\n", to)
	return nil
}

// restore replaces the SQLite database with a backup; fedhub must be stopped.
func restore(ctx context.Context, args []string, stdout io.Writer) error {
	var from string
	cfg, err := backupConfig("restore", args, func(fs *flag.FlagSet) { fs.StringVar(&from, "from", "", "the backup file to restore") })
	if err != nil {
		return err
	}
	if from == "" {
		return errors.New("give the backup to restore with --from FILE")
	}
	path := store.SQLitePath(cfg.Storage.DSN)
	if err := store.Restore(ctx, from, path); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s restored from %s; start fedhub with the secrets.key the backup was made with\n", path, from)
	return nil
}

// backupConfig parses a backup command's flags and wants a SQLite configuration.
func backupConfig(name string, args []string, extra func(*flag.FlagSet)) (*config.Config, error) {
	o := newFlags(name)
	extra(o.fs)
	if err := o.fs.Parse(args); err != nil {
		return nil, err
	}
	cfg, err := o.config()
	if err != nil {
		return nil, err
	}
	if cfg.Storage.Driver == "postgres" {
		return nil, fmt.Errorf("the database is PostgreSQL: %s it with PostgreSQL's tools (pg_dump -Fc -f fedhub.dump DBNAME; pg_restore -d DBNAME fedhub.dump)", name)
	}
	return cfg, nil
}
