package dirsync

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/linking"
)

// State is a connector's directory sync as every node sees it: the run in
// progress (or the last one) with its counts, and where the next
// incremental run starts.
type State struct {
	Connector  string     `gorm:"primaryKey;size:64" json:"connector"`
	Holder     string     `gorm:"size:255;not null;default:''" json:"-"` // host:pid:nonce of the running run; "" when none
	LeaseUntil *time.Time `json:"-"`
	Mark       string     `gorm:"size:64;not null;default:''" json:"-"` // the directory's mark after the last complete run
	StartedAt  *time.Time `json:"started_at,omitempty"`
	FinishedAt *time.Time `json:"finished_at,omitempty"` // of the last run, complete or failed
	Full       bool       `json:"full"`
	Total      int        `json:"total"` // entries the last complete run saw: the progress bar's length
	Counts     `gorm:"embedded"`
	Error      string `gorm:"size:1024;not null;default:''" json:"error,omitempty"` // why the last run failed
}

// TableName keeps the table's name short and clear.
func (State) TableName() string { return "dirsync_states" }

// Models are the tables this package owns, for store.Migrate.
func Models() []any { return []any{&State{}} }

// Running says whether a run holds the connector now.
func (st State) Running(now time.Time) bool {
	return st.Holder != "" && st.LeaseUntil != nil && st.LeaseUntil.After(now)
}

// Counts are what a run did.
type Counts struct {
	Seen     int `json:"seen"`     // entries walked
	Created  int `json:"created"`  // users imported
	Updated  int `json:"updated"`  // users whose profile, roles or groups changed
	Disabled int `json:"disabled"` // users disabled: their entry is gone or disabled
	Enabled  int `json:"enabled"`  // users the sync had disabled, back in the directory
	Failed   int `json:"failed"`   // entries that could not be imported (logged: a username taken, none at all)
}

func (c Counts) String() string {
	return fmt.Sprintf("seen %d, created %d, updated %d, disabled %d, enabled %d, failed %d",
		c.Seen, c.Created, c.Updated, c.Disabled, c.Enabled, c.Failed)
}

// ErrBusy says another run of the connector's sync holds it.
var ErrBusy = errors.New("a directory sync of this connector is running")

// leaseTTL is how long a lease lasts without a heartbeat (at every page and
// every leaseTTL/4): a node that died without a trace holds the connector
// that long.
const leaseTTL = 2 * time.Minute

// lease is a run's hold on a connector.
type lease struct {
	db        *gorm.DB
	connector string
	holder    string
	now       func() time.Time
}

// holderID names this process: a lease it left behind when it died can be
// taken over by a process of the same host at once.
func holderID() string {
	host, _ := os.Hostname()
	return host + ":" + strconv.Itoa(os.Getpid()) + ":" + linking.NewID()[:8]
}

// acquire takes the connector's lease. force takes it whoever holds it (the
// caller holds the PostgreSQL advisory lock: any other holder is dead).
func (l *lease) acquire(ctx context.Context, force bool) error {
	db := l.db.WithContext(ctx)
	if err := db.Clauses(clause.OnConflict{DoNothing: true}).Create(&State{Connector: l.connector}).Error; err != nil {
		return fmt.Errorf("sync state of %s: %w", l.connector, err)
	}
	var st State
	if err := db.Take(&st, "connector = ?", l.connector).Error; err != nil {
		return fmt.Errorf("sync state of %s: %w", l.connector, err)
	}
	now := l.now()
	if st.Running(now) && !force && !deadHere(st.Holder) {
		return ErrBusy
	}
	until := now.Add(leaseTTL)
	// Conditional on the holder read: of two racing runs, one wins.
	res := db.Model(&State{}).Where("connector = ? AND holder = ?", l.connector, st.Holder).
		Updates(map[string]any{"holder": l.holder, "lease_until": until})
	if res.Error != nil {
		return fmt.Errorf("take the sync lease of %s: %w", l.connector, res.Error)
	}
	if res.RowsAffected != 1 {
		return ErrBusy
	}
	return nil
}

// update writes the run's progress and renews the lease; a lease lost
// (another run took it over after it expired) ends the run.
func (l *lease) update(ctx context.Context, fields map[string]any) error {
	fields["lease_until"] = l.now().Add(leaseTTL)
	res := l.db.WithContext(ctx).Model(&State{}).Where("connector = ? AND holder = ?", l.connector, l.holder).Updates(fields)
	if res.Error != nil {
		return fmt.Errorf("sync progress of %s: %w", l.connector, res.Error)
	}
	if res.RowsAffected != 1 {
		return fmt.Errorf("sync of %s: the lease was lost: %w", l.connector, ErrBusy)
	}
	return nil
}

// keepAlive renews the lease until the returned stop is called, so that a
// long stretch without a page (reading a big directory's groups) does not let
// it expire.
func (l *lease) keepAlive(ctx context.Context) (stop func()) {
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(leaseTTL / 4)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
				_ = l.update(ctx, map[string]any{}) // a lost lease ends the run at its next page
			}
		}
	}()
	return func() { cancel(); <-done }
}

// deadHere says whether holder is a process of this host that is gone.
func deadHere(holder string) bool {
	host, rest, ok := strings.Cut(holder, ":")
	me, _ := os.Hostname()
	if !ok || host != me {
		return false
	}
	pidText, _, _ := strings.Cut(rest, ":")
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return errors.Is(syscall.Kill(pid, 0), syscall.ESRCH)
}

// exclusive runs fn while this process holds the connector: on PostgreSQL
// under a session advisory lock, tried and never waited for.
func exclusive(ctx context.Context, db *gorm.DB, l *lease, fn func() error) error {
	if db.Dialector.Name() != "postgres" {
		if err := l.acquire(ctx, false); err != nil {
			return err
		}
		return fn()
	}
	key := "fedhub-dirsync:" + l.connector
	return db.WithContext(ctx).Connection(func(conn *gorm.DB) error {
		var ok bool
		if err := conn.Raw("SELECT pg_try_advisory_lock(hashtextextended(?, 0))", key).Scan(&ok).Error; err != nil {
			return fmt.Errorf("lock %s: %w", key, err)
		}
		if !ok {
			return ErrBusy
		}
		// Unlocked even when ctx ended: the connection goes back to the pool.
		defer conn.WithContext(context.WithoutCancel(ctx)).Exec("SELECT pg_advisory_unlock(hashtextextended(?, 0))", key)
		if err := l.acquire(ctx, true); err != nil {
			return err
		}
		return fn()
	})
}
