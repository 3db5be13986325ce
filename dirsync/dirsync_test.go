package dirsync_test

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/brokertest"
	"github.com/fedhub/fedhub/dirsync"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// clock is a test clock.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time      { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) { c.mu.Lock(); defer c.mu.Unlock(); c.t = c.t.Add(d) }

// fixture is a syncer of the connector "corp" over dir, on a fresh database.
type fixture struct {
	db     *gorm.DB
	users  *linking.Service
	dir    *brokertest.Directory
	clock  *clock
	conn   brokers.Connector
	newRun func() *dirsync.Syncer // another node's syncer
	syncer *dirsync.Syncer
}

func models() []any {
	return append(append(append(linking.Models(), audit.Models()...), dirsync.Models()...), brokers.Models()...)
}

// newFixture builds the fixture; change alters the connector first.
func newFixture(t testing.TB, db *gorm.DB, period time.Duration, change ...func(*brokers.Connector)) *fixture {
	f := &fixture{db: db, dir: &brokertest.Directory{}, clock: &clock{t: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)}}
	f.users = linking.New(db, f.clock.now)
	log := slog.New(slog.DiscardHandler)
	events := audit.New(db, log, f.clock.now)
	f.conn = brokers.Connector{ID: "corp", Name: "Corp", Enabled: true, Impl: f.dir, Mappers: brokers.Mappers{
		{Kind: brokers.MapGroupToRole, Group: "admins", Role: "admin"},
		{Kind: brokers.MapGroupToGroup, Group: "staff", To: "staff"},
	}, Policy: firstlogin.Policy{OnNew: "create", MatchBy: "none"}}
	for _, c := range change {
		c(&f.conn)
	}
	broker := brokers.New(brokers.Options{Connectors: []brokers.Connector{f.conn}, Users: f.users, DB: db, Audit: events, Log: log, Now: f.clock.now})
	fl := firstlogin.New(f.users, events, log)
	f.newRun = func() *dirsync.Syncer {
		return dirsync.New(dirsync.Options{DB: db, Broker: broker, Users: f.users, FirstLogin: fl, Audit: events,
			Imports: map[string]time.Duration{"corp": period}, Log: log, Now: f.clock.now})
	}
	f.syncer = f.newRun()
	return f
}

func entry(n int, groups ...string) brokers.DirectoryEntry {
	return brokers.DirectoryEntry{Identity: login.Identity{Subject: fmt.Sprintf("uuid-%03d", n), Username: fmt.Sprintf("user%03d", n),
		Email: fmt.Sprintf("user%03d@corp.example", n), Name: fmt.Sprintf("User %d", n), Groups: groups}}
}

func (f *fixture) run(t *testing.T) dirsync.Counts {
	t.Helper()
	c, err := f.syncer.Run(context.Background(), "corp", "test", nil)
	if err != nil {
		t.Fatalf("Run: %v", err)
	}
	return c
}

// user is the user linked to entry n.
func (f *fixture) user(t *testing.T, n int) *linking.User {
	t.Helper()
	got, err := f.users.SyncedUsers(context.Background(), "corp", []string{entry(n).Identity.Subject})
	if err != nil || len(got) != 1 {
		t.Fatalf("user of entry %d: %v, %v", n, got, err)
	}
	u, err := f.users.UserByID(context.Background(), got[entry(n).Identity.Subject].UserID)
	if err != nil {
		t.Fatal(err)
	}
	return u
}

func (f *fixture) count(t *testing.T, model any) int64 {
	t.Helper()
	var n int64
	if err := f.db.Model(model).Count(&n).Error; err != nil {
		t.Fatal(err)
	}
	return n
}

// TestRun: import, a second run that changes nothing, changes, departures,
// disabled entries and returns, and an administrator's disable that the sync
// never undoes.
func TestRun(t *testing.T) {
	for _, incremental := range []bool{false, true} {
		t.Run(map[bool]string{false: "full", true: "incremental"}[incremental], func(t *testing.T) {
			storetest.ForEachDB(t, models(), func(t *testing.T, db *gorm.DB) {
				f := newFixture(t, db, 0)
				f.dir.Incremental = incremental
				for n := range 10 {
					f.dir.Put(entry(n, "staff"))
				}
				f.dir.Put(entry(10, "admins"))
				disabledFromStart := entry(11)
				disabledFromStart.Disabled = true
				f.dir.Put(disabledFromStart)

				steps := []struct {
					name   string
					change func()
					want   dirsync.Counts
				}{
					{"import", func() {}, dirsync.Counts{Seen: 12, Created: 11}},
					{"again", func() {}, dirsync.Counts{}},
					{"changes", func() {
						e := entry(1, "staff", "admins")
						e.Identity.Name = "Renamed"
						f.dir.Put(e)
						f.dir.Put(entry(2)) // left staff
						f.dir.Delete(entry(3).Identity.Subject)
						off := entry(4, "staff")
						off.Disabled = true
						f.dir.Put(off)
						if err := f.users.SetDisabledByID(context.Background(), f.user(t, 5).ID, true); err != nil { // an administrator
							t.Fatal(err)
						}
						f.dir.Delete(entry(5).Identity.Subject)
					}, dirsync.Counts{Seen: 3, Updated: 2, Disabled: 2}},
					{"returns", func() {
						f.dir.Put(entry(3, "staff"))
						f.dir.Put(entry(4, "staff"))
						f.dir.Put(entry(5, "staff"))
					}, dirsync.Counts{Seen: 3, Enabled: 2}},
				}
				for _, s := range steps {
					s.change()
					got := f.run(t)
					if !incremental && s.name != "import" { // a full walk sees everything every time
						s.want.Seen = len(f.dirSubjects(t))
					}
					if got != s.want {
						t.Errorf("%s: counts %+v, want %+v", s.name, got, s.want)
					}
				}
				if n := f.count(t, &linking.User{}); n != 11 {
					t.Errorf("%d users, want 11", n)
				}
				if u := f.user(t, 1); u.Name != "Renamed" || !slices.Equal(u.Roles, []string{"admin"}) || !slices.Equal(u.Groups, []string{"staff"}) {
					t.Errorf("user 1 = %+v, want renamed, admin and staff (as a login with sync: force)", u)
				}
				if u := f.user(t, 2); len(u.Groups) != 0 {
					t.Errorf("user 2's groups = %v, want none", u.Groups)
				}
				for n, want := range map[int]bool{3: false, 4: false, 5: true} {
					if u := f.user(t, n); u.Disabled != want {
						t.Errorf("user %d disabled = %v, want %v", n, u.Disabled, want)
					}
				}
				var events []audit.Event
				if err := db.Where("type IN ?", []string{audit.UserDisabled, audit.DirectorySynced}).Find(&events).Error; err != nil {
					t.Fatal(err)
				}
				runs, disabled := 0, 0
				for _, e := range events {
					if e.Type == audit.DirectorySynced {
						runs++
					} else if e.Actor == "sync:corp" {
						disabled++
					}
				}
				if runs != 4 || disabled != 2 {
					t.Errorf("audit: %d runs and %d users disabled by the sync, want 4 and 2", runs, disabled)
				}
			})
		})
	}
}

func (f *fixture) dirSubjects(t *testing.T) []string {
	var out []string
	if err := f.dir.Subjects(context.Background(), func(p []string) error { out = append(out, p...); return nil }); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestCutRun: a run that fails half way leaves whole pages; the next run
// finishes without duplicates.
func TestCutRun(t *testing.T) {
	storetest.ForEachDB(t, models(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 0)
		for n := range 20 {
			f.dir.Put(entry(n))
		}
		f.dir.FailAfter = 3
		c, err := f.syncer.Run(context.Background(), "corp", "test", nil)
		if !errors.Is(err, brokertest.ErrCut) || c.Created != 9 {
			t.Fatalf("cut run = %+v, %v; want 9 created and the cut", c, err)
		}
		st, err := f.syncer.State(context.Background(), "corp")
		if err != nil || st.Running(f.clock.now()) || st.Error == "" || st.Mark != "" {
			t.Errorf("state after the cut = %+v, %v; want not running, its error, no mark", st, err)
		}
		f.dir.FailAfter = 0
		if c := f.run(t); c.Created != 11 || c.Seen != 20 {
			t.Errorf("rerun = %+v, want the 11 others created", c)
		}
		if n := f.count(t, &linking.Link{}); n != 20 {
			t.Errorf("%d links, want 20", n)
		}
	})
}

// TestOneRunAtATime: a run holding the connector keeps others out until it
// ends, its lease expires, or (on this host) its process is gone.
func TestOneRunAtATime(t *testing.T) {
	storetest.ForEachDB(t, models(), func(t *testing.T, db *gorm.DB) {
		f := newFixture(t, db, 0)
		f.dir.Put(entry(1))
		other := f.newRun()
		inside := make(chan struct{})
		release := make(chan struct{})
		done := make(chan error)
		var once sync.Once
		go func() {
			_, err := f.syncer.Run(context.Background(), "corp", "test", func(dirsync.Counts, int) {
				once.Do(func() {
					close(inside)
					<-release
				})
			})
			done <- err
		}()
		<-inside
		if _, err := other.Run(context.Background(), "corp", "test", nil); !errors.Is(err, dirsync.ErrBusy) {
			t.Errorf("a second run meanwhile = %v, want ErrBusy", err)
		}
		st, _ := other.State(context.Background(), "corp")
		if !st.Running(f.clock.now()) || st.StartedAt == nil {
			t.Errorf("state seen from another node = %+v, want running", st)
		}
		close(release)
		if err := <-done; err != nil {
			t.Fatal(err)
		}
		if _, err := other.Run(context.Background(), "corp", "test", nil); err != nil {
			t.Errorf("a run after the first = %v", err)
		}
	})
}

// TestStaleLease: on SQLite, a lease left by a process that died is taken
// over: at once on its host, after it expires elsewhere.
func TestStaleLease(t *testing.T) {
	db := storetest.Open(t, "sqlite", models()...)
	f := newFixture(t, db, 0)
	f.dir.Put(entry(1))
	host, _ := os.Hostname()
	for _, tc := range []struct {
		name, holder string
		wait         time.Duration
		busy         bool
	}{
		{"dead here", fmt.Sprintf("%s:%d:x", host, 1<<22+7), 0, false},
		{"alive here", fmt.Sprintf("%s:%d:x", host, os.Getpid()), 0, true},
		{"elsewhere", "other-host:1:x", 0, true},
		{"elsewhere, expired", "other-host:1:x", 3 * time.Minute, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			until := f.clock.now().Add(2 * time.Minute)
			if err := db.Save(&dirsync.State{Connector: "corp", Holder: tc.holder, LeaseUntil: &until}).Error; err != nil {
				t.Fatal(err)
			}
			f.clock.add(tc.wait)
			_, err := f.syncer.Run(context.Background(), "corp", "test", nil)
			if errors.Is(err, dirsync.ErrBusy) != tc.busy || (!tc.busy && err != nil) {
				t.Errorf("Run = %v, want busy %v", err, tc.busy)
			}
		})
	}
}

// TestRunDue: the schedule runs a sync once its period passed since the last
// started, by the clock it is given.
func TestRunDue(t *testing.T) {
	db := storetest.Open(t, "sqlite", models()...)
	f := newFixture(t, db, time.Hour)
	f.dir.Put(entry(1))
	runs := func() int64 {
		var n int64
		db.Model(&audit.Event{}).Where("type = ?", audit.DirectorySynced).Count(&n)
		return n
	}
	for _, step := range []struct {
		wait time.Duration
		want int64
	}{{0, 1}, {30 * time.Minute, 1}, {31 * time.Minute, 2}, {time.Minute, 2}} {
		f.clock.add(step.wait)
		f.syncer.RunDue(context.Background())
		if got := runs(); got != step.want {
			t.Errorf("after %v more: %d runs, want %d", step.wait, got, step.want)
		}
	}
	if _, err := f.syncer.Run(context.Background(), "other", "test", nil); !errors.Is(err, dirsync.ErrNotImported) {
		t.Errorf("Run of a connector that does not import = %v", err)
	}

	// A disabled connector is never due: no run, no error every minute.
	off := newFixture(t, storetest.Open(t, "sqlite", models()...), time.Hour, func(c *brokers.Connector) { c.Enabled = false })
	off.syncer.RunDue(context.Background())
	if st, err := off.syncer.State(context.Background(), "corp"); err != nil || st.StartedAt != nil {
		t.Errorf("a disabled connector's sync ran: %+v, %v", st, err)
	}
}

// TestSetImports: new periods apply to the schedule at once — a connector
// that starts importing, or whose shorter period has passed, runs when
// Schedule wakes (no minute's tick in between); one that stops importing no
// longer runs.
func TestSetImports(t *testing.T) {
	db := storetest.Open(t, "sqlite", models()...)
	f := newFixture(t, db, time.Hour)
	f.dir.Put(entry(1))
	runs := func() int64 {
		var n int64
		db.Model(&audit.Event{}).Where("type = ? AND actor = ?", audit.DirectorySynced, "schedule").Count(&n)
		return n
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { f.syncer.Schedule(ctx); close(done) }()
	t.Cleanup(func() { cancel(); <-done })
	waitRuns := func(want int64) int64 {
		for deadline := time.Now().Add(5 * time.Second); runs() < want && time.Now().Before(deadline); {
			time.Sleep(10 * time.Millisecond)
		}
		return runs()
	}
	if got := waitRuns(1); got != 1 {
		t.Fatalf("%d runs at the start, want 1", got)
	}
	for _, step := range []struct {
		what    string
		wait    time.Duration
		imports map[string]time.Duration
		want    int64
	}{
		{"the same period, not passed yet", 20 * time.Minute, map[string]time.Duration{"corp": time.Hour}, 1},
		{"a shorter period that has passed", 0, map[string]time.Duration{"corp": 15 * time.Minute}, 2},
		{"removed", 2 * time.Hour, map[string]time.Duration{}, 2},
		{"added again", 0, map[string]time.Duration{"corp": time.Hour}, 3},
	} {
		f.clock.add(step.wait)
		f.syncer.SetImports(step.imports)
		waitRuns(step.want)
		time.Sleep(50 * time.Millisecond) // and no more than that
		if got := runs(); got != step.want {
			t.Errorf("%s: %d runs, want %d", step.what, got, step.want)
		}
		if _, imported := step.imports["corp"]; f.syncer.Imports("corp") != imported {
			t.Errorf("%s: Imports = %v", step.what, !imported)
		}
	}
}
