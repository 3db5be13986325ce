package throttle

import (
	"context"
	"strings"
	"testing"
	"time"

	"gorm.io/gorm"
)

// An attempt at no known account counts for its address only: an unknown
// username makes no row of its own (issue 15: no row per garbage username).
func TestFailedWithoutAccount(t *testing.T) {
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		l := newLimiter(db, &clock{t: t0}, 2, time.Minute, time.Hour)
		ip := IPKey("198.51.100.7")
		for range 3 {
			if err := l.Failed(context.Background(), "", ip); err != nil {
				t.Fatal(err)
			}
		}
		var rows []Failure
		if err := db.Find(&rows).Error; err != nil {
			t.Fatal(err)
		}
		if len(rows) != 1 || rows[0].Key != ip || rows[0].Count != 3 {
			t.Errorf("rows = %+v, want only %s at 3", rows, ip)
		}
		// Several accounts and the address at once, each once.
		a, b := UserKey("local", "id-a"), UserKey("ldap", "id-b")
		if err := l.Failed(context.Background(), a, b, "", ip); err != nil {
			t.Fatal(err)
		}
		if count(t, db, a) != 1 || count(t, db, b) != 1 || count(t, db, ip) != 4 {
			t.Errorf("counts = %d, %d, %d; want 1, 1, 4", count(t, db, a), count(t, db, b), count(t, db, ip))
		}
	})
}

// A directory entry without a subject attribute has its DN as subject, which
// may be longer than the key column: such keys end in a hash.
func TestUserKeyOfLongAccount(t *testing.T) {
	dn := "cn=" + strings.Repeat("x", 400) + ",ou=people,dc=example,dc=test"
	k := UserKey("corp-ldap", dn)
	if len(k) > maxKey || !strings.HasPrefix(k, "user:corp-ldap:sha256:") {
		t.Errorf("UserKey of a %d-byte account = %q (%d bytes)", len(dn), k, len(k))
	}
	if k == UserKey("corp-ldap", dn+"y") || k != UserKey("corp-ldap", dn) {
		t.Error("long accounts do not keep keys of their own")
	}
	forEachDB(t, func(t *testing.T, db *gorm.DB) {
		l := newLimiter(db, &clock{t: t0}, 1, time.Minute, time.Hour)
		fail(t, l, k, IPKey("198.51.100.8"), 1)
		if w := wait(t, l, k, ""); w != time.Minute {
			t.Errorf("wait = %v, want 1m", w)
		}
	})
}
