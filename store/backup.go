package store

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/mattn/go-sqlite3"
	"gorm.io/gorm"
)

// ErrInUse is a database that another process (a running fedhub) has open.
var ErrInUse = errors.New("the database is in use: stop fedhub before restoring")

// Backup writes a copy of the SQLite database db to the file to, which must
// not exist: one read transaction (VACUUM INTO), so the copy is consistent
// while fedhub serves and writes. PostgreSQL has pg_dump for that.
func Backup(ctx context.Context, db *gorm.DB, to string) error {
	if db.Dialector.Name() != "sqlite" {
		return errors.New("backup: SQLite only")
	}
	if _, err := os.Stat(to); !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("backup: %s exists already (or cannot be checked): give a new file", to)
	}
	if err := db.WithContext(ctx).Exec("VACUUM INTO ?", to).Error; err != nil {
		return fmt.Errorf("backup to %s: %w", to, err)
	}
	return nil
}

// Restore replaces the SQLite database file path with the backup from,
// after checking that from is an intact fedhub database and that no process
// has path open. The old database's write-ahead log goes with it: replayed
// over the backup it would corrupt it.
func Restore(ctx context.Context, from, path string) error {
	if err := checkBackup(ctx, from); err != nil {
		return err
	}
	if err := checkUnused(ctx, path); err != nil {
		return err
	}
	tmp := path + ".restoring"
	if err := copyFile(from, tmp); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	for _, f := range []string{path + "-wal", path + "-shm"} {
		if err := os.Remove(f); err != nil && !errors.Is(err, fs.ErrNotExist) {
			os.Remove(tmp)
			return fmt.Errorf("restore: %w", err)
		}
	}
	if err := os.Rename(tmp, path); err != nil {
		os.Remove(tmp)
		return fmt.Errorf("restore: %w", err)
	}
	return nil
}

// SQLitePath is the file of a SQLite DSN as configured (a path, or a file: URI).
func SQLitePath(dsn string) string {
	path, _, _ := strings.Cut(strings.TrimPrefix(dsn, "file:"), "?")
	return path
}

// checkBackup opens from read-only and wants it intact and fedhub's.
func checkBackup(ctx context.Context, from string) error {
	if _, err := os.Stat(from); err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	db, err := sql.Open(sqliteDriver, "file:"+from+"?mode=ro")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer db.Close()
	var check string
	if err := db.QueryRowContext(ctx, "PRAGMA quick_check").Scan(&check); err != nil || check != "ok" {
		return fmt.Errorf("restore: %s is not an intact SQLite database (%v%s)", from, err, check)
	}
	var n int
	if err := db.QueryRowContext(ctx, "SELECT count(*) FROM sqlite_master WHERE type = 'table' AND name = 'signing_keys'").Scan(&n); err != nil || n != 1 {
		return fmt.Errorf("restore: %s is not a fedhub database (no signing keys table)", from)
	}
	return nil
}

// checkUnused takes and releases an exclusive lock on the database at path
// (if there is one): a running fedhub holds its shared lock, even idle.
func checkUnused(ctx context.Context, path string) error {
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	db, err := sql.Open(sqliteDriver, "file:"+path+"?_busy_timeout=1000&_locking_mode=EXCLUSIVE&_txlock=exclusive")
	if err != nil {
		return fmt.Errorf("restore: %w", err)
	}
	defer db.Close()
	tx, err := db.BeginTx(ctx, nil)
	if err == nil {
		_, err = tx.ExecContext(ctx, "SELECT count(*) FROM sqlite_master")
		if rerr := tx.Rollback(); err == nil {
			err = rerr
		}
	}
	var se sqlite3.Error
	if errors.As(err, &se) && (se.Code == sqlite3.ErrBusy || se.Code == sqlite3.ErrLocked) {
		return ErrInUse
	}
	if err != nil {
		return fmt.Errorf("restore: %s: %w", path, err)
	}
	return nil
}

// copyFile copies from to a new file to, synced to disk.
func copyFile(from, to string) error {
	in, err := os.Open(from)
	if err != nil {
		return err
	}
	defer in.Close()
	out, err := os.OpenFile(to, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, in); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	if err := out.Sync(); err != nil {
		out.Close()
		os.Remove(to)
		return err
	}
	if err := out.Close(); err != nil {
		return err
	}
	return syncDir(filepath.Dir(to))
}

// syncDir makes a new file's directory entry durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	defer d.Close()
	return d.Sync()
}
