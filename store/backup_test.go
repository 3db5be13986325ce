package store

import (
	"context"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/config"
)

type signingKey struct {
	ID string
}

// bkOpen opens a SQLite database at path with a signing_keys table holding ids.
func bkOpen(t *testing.T, path string, ids ...string) *gorm.DB {
	t.Helper()
	db, err := Open(context.Background(), config.Storage{Driver: "sqlite", DSN: path})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { Close(db) })
	if err := Migrate(t.Context(), db, &signingKey{}); err != nil {
		t.Fatal(err)
	}
	for _, id := range ids {
		if err := db.Create(&signingKey{ID: id}).Error; err != nil {
			t.Fatal(err)
		}
	}
	return db
}

func bkIDs(t *testing.T, db *gorm.DB) string {
	t.Helper()
	var ids []string
	if err := db.Model(&signingKey{}).Order("id").Pluck("id", &ids).Error; err != nil {
		t.Fatal(err)
	}
	return strings.Join(ids, ",")
}

func TestBackupRestore(t *testing.T) {
	dir := t.TempDir()
	live, backup := filepath.Join(dir, "fedhub.db"), filepath.Join(dir, "backup.db")
	db := bkOpen(t, live, "k1", "k2")
	if err := Backup(t.Context(), db, backup); err != nil {
		t.Fatal(err)
	}
	if err := Backup(t.Context(), db, backup); err == nil {
		t.Error("a backup over an existing file was written")
	}
	if err := db.Create(&signingKey{ID: "k3"}).Error; err != nil { // after the backup: lost by the restore
		t.Fatal(err)
	}
	if err := Restore(t.Context(), backup, live); !errors.Is(err, ErrInUse) {
		t.Fatalf("restore over a database in use = %v, want ErrInUse", err)
	}
	Close(db)
	if err := Restore(t.Context(), backup, live); err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{live + "-wal", live + "-shm", live + ".restoring"} {
		if _, err := os.Stat(f); err == nil {
			t.Errorf("%s is left after the restore", f)
		}
	}
	if got := bkIDs(t, bkOpen(t, live)); got != "k1,k2" {
		t.Errorf("restored keys = %s, want k1,k2", got)
	}
	if err := Restore(t.Context(), backup, filepath.Join(dir, "new.db")); err != nil {
		t.Errorf("restore to a new file: %v", err)
	}
}

func TestRestoreRefuses(t *testing.T) {
	dir := t.TempDir()
	notFedhub := filepath.Join(dir, "other.db")
	other, err := Open(t.Context(), config.Storage{Driver: "sqlite", DSN: notFedhub})
	if err != nil {
		t.Fatal(err)
	}
	if err := other.Exec("CREATE TABLE notes (x TEXT)").Error; err != nil {
		t.Fatal(err)
	}
	Close(other)
	garbage := filepath.Join(dir, "garbage.db")
	if err := os.WriteFile(garbage, []byte(strings.Repeat("not a database ", 400)), 0o600); err != nil {
		t.Fatal(err)
	}
	for name, from := range map[string]string{"not fedhub's": notFedhub, "not SQLite": garbage, "missing": filepath.Join(dir, "none.db")} {
		target := filepath.Join(dir, "target-"+strings.ReplaceAll(name, " ", "-")+".db")
		if err := Restore(t.Context(), from, target); err == nil {
			t.Errorf("%s: restored", name)
		}
		if _, err := os.Stat(target); err == nil {
			t.Errorf("%s: the target was written", name)
		}
	}
}

func TestSQLitePath(t *testing.T) {
	for dsn, want := range map[string]string{"fedhub.db": "fedhub.db", "/var/lib/fedhub/fedhub.db": "/var/lib/fedhub/fedhub.db",
		"file:/srv/f.db?_busy_timeout=5000": "/srv/f.db"} {
		if got := SQLitePath(dsn); got != want {
			t.Errorf("SQLitePath(%q) = %q, want %q", dsn, got, want)
		}
	}
}
