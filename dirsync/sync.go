package dirsync

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
)

// Options are what a Syncer is built from.
type Options struct {
	DB         *gorm.DB
	Broker     *brokers.Service
	Users      *linking.Service
	FirstLogin *firstlogin.Service
	Audit      *audit.Log
	// Imports are the connectors with `sync: {import: on}`, each with its
	// period (0: on demand only); SetImports replaces them.
	Imports map[string]time.Duration
	Log     *slog.Logger
	Now     func() time.Time
}

// Syncer runs directory syncs.
type Syncer struct {
	o       Options
	holder  string
	imports atomic.Pointer[map[string]time.Duration] // Options.Imports, then SetImports'
	wake    chan struct{}                            // SetImports tells Schedule to look again now
}

// New returns a Syncer.
func New(o Options) *Syncer {
	s := &Syncer{o: o, holder: holderID(), wake: make(chan struct{}, 1)}
	s.imports.Store(&o.Imports)
	return s
}

// SetImports replaces the connectors that import and their periods (a
// configuration reload): Schedule looks at once for what is due now — a
// connector added, or one whose new period has passed since its last run —
// and a removed connector is no longer run. A run in progress finishes.
func (s *Syncer) SetImports(imports map[string]time.Duration) {
	s.imports.Store(&imports)
	select {
	case s.wake <- struct{}{}:
	default: // Schedule has a wake-up pending already
	}
}

// periods are the connectors that import now, with their periods.
func (s *Syncer) periods() map[string]time.Duration { return *s.imports.Load() }

// Errors of Run, besides ErrBusy.
var (
	ErrNotImported = errors.New("the connector does not import its directory (sync: {import: on})")
	ErrNoDirectory = errors.New("the connector cannot list its users")
)

// Imports says whether a connector imports its directory.
func (s *Syncer) Imports(connector string) bool {
	_, ok := s.periods()[connector]
	return ok
}

// State returns the connector's sync state (the zero State before any run).
func (s *Syncer) State(ctx context.Context, connector string) (State, error) {
	var st State
	err := s.o.DB.WithContext(ctx).Where("connector = ?", connector).Limit(1).Find(&st).Error
	if err != nil {
		return State{}, fmt.Errorf("sync state of %s: %w", connector, err)
	}
	st.Connector = connector
	return st, nil
}

// Run syncs one connector; actor says who asked (for the audit log). A run
// of the connector elsewhere makes it ErrBusy. progress, when not nil, is
// called once the run holds the connector and after every page, with the
// counts so far and the length of a full walk (the last complete run's
// count; 0 when unknown or when the walk is incremental).
func (s *Syncer) Run(ctx context.Context, connector, actor string, progress func(c Counts, total int)) (Counts, error) {
	if !s.Imports(connector) {
		return Counts{}, ErrNotImported
	}
	conn, ok := s.o.Broker.Enabled(connector)
	if !ok {
		return Counts{}, fmt.Errorf("connector %s is disabled", connector)
	}
	walker, ok := conn.Impl.(brokers.DirectoryWalker)
	if !ok {
		return Counts{}, ErrNoDirectory
	}
	r := &run{s: s, conn: conn, walker: walker, by: "sync:" + connector, progress: progress, seen: map[string]bool{},
		lease: &lease{db: s.o.DB, connector: connector, holder: s.holder, now: s.o.Now}}
	err := exclusive(ctx, s.o.DB, r.lease, func() error { return r.do(ctx) })
	if errors.Is(err, ErrBusy) && r.started.IsZero() {
		return Counts{}, err // nothing ran: nothing to record
	}
	s.record(ctx, r, actor, err)
	return r.counts, err
}

// record audits a run.
func (s *Syncer) record(ctx context.Context, r *run, actor string, err error) {
	kind := "incremental"
	if r.full {
		kind = "full"
	}
	ev := audit.Event{Type: audit.DirectorySynced, Actor: actor, Connector: r.conn.ID, Detail: kind + ": " + r.counts.String()}
	if err != nil {
		ev.Outcome, ev.Detail = "failure", "interrupted: "+r.counts.String()+": "+err.Error()
		s.o.Log.Error("directory sync failed", "connector", r.conn.ID, "counts", r.counts.String(), "err", err)
	} else {
		s.o.Log.Info("directory sync done", "connector", r.conn.ID, "kind", kind, "counts", r.counts.String())
	}
	// A cancelled run is recorded too; a failed audit write is logged by audit.
	_ = s.o.Audit.Record(context.WithoutCancel(ctx), ev)
}

// audit records the users a committed transaction disabled or enabled.
func (r *run) audit(ctx context.Context, changes []change) {
	for _, c := range changes {
		_ = r.s.o.Audit.Record(context.WithoutCancel(ctx), audit.Event{Type: c.typ, Actor: r.by, UserID: c.userID,
			Connector: r.conn.ID, Detail: c.why})
	}
}

// run is one directory sync of a connector.
type run struct {
	s        *Syncer
	conn     brokers.Connector
	walker   brokers.DirectoryWalker
	by       string // DisabledBy of the users it disables
	lease    *lease
	progress func(Counts, int)

	started time.Time
	full    bool
	total   int
	counts  Counts
	seen    map[string]bool // the subjects walked
}

// change is a user disabled or enabled, audited once its transaction committed.
type change struct{ typ, userID, why string }

func (r *run) do(ctx context.Context) error {
	st, err := r.s.State(ctx, r.conn.ID)
	if err != nil {
		return err
	}
	defer r.lease.keepAlive(ctx)()
	r.started = r.s.o.Now()
	if st.Mark == "" { // a full walk: about as long as the last complete one
		r.total = st.Total
	}
	if err := r.lease.update(ctx, map[string]any{"started_at": r.started, "finished_at": nil, "error": "",
		"seen": 0, "created": 0, "updated": 0, "disabled": 0, "enabled": 0, "failed": 0}); err != nil {
		return r.fail(ctx, err)
	}
	if r.progress != nil {
		r.progress(r.counts, r.total)
	}
	walked, err := r.walker.Walk(ctx, st.Mark, func(page []brokers.DirectoryEntry) error {
		if err := r.page(ctx, page); err != nil {
			return err
		}
		if err := r.lease.update(ctx, r.countFields(nil)); err != nil {
			return err
		}
		if r.progress != nil {
			r.progress(r.counts, r.total)
		}
		return nil
	})
	r.full = walked.Full
	if err != nil {
		return r.fail(ctx, err)
	}
	present := r.seen
	if !walked.Full {
		present = map[string]bool{}
		err := r.walker.Subjects(ctx, func(page []string) error {
			for _, s := range page {
				present[s] = true
			}
			return nil
		})
		if err != nil {
			return r.fail(ctx, err)
		}
	}
	if err := r.disableGone(ctx, present); err != nil {
		return r.fail(ctx, err)
	}
	if r.progress != nil {
		r.progress(r.counts, r.total)
	}
	fields := r.countFields(map[string]any{"mark": walked.Mark, "full": walked.Full, "finished_at": r.s.o.Now(),
		"holder": "", "lease_until": nil})
	if walked.Full {
		fields["total"] = r.counts.Seen
	}
	return r.lease.update(ctx, fields)
}

// fail records why the run failed and lets the connector go.
func (r *run) fail(ctx context.Context, err error) error {
	msg := err.Error()
	if len(msg) > 1000 {
		msg = msg[:1000]
	}
	ctx = context.WithoutCancel(ctx)
	_ = r.lease.update(ctx, r.countFields(map[string]any{"error": msg, "finished_at": r.s.o.Now(), "full": r.full,
		"holder": "", "lease_until": nil}))
	return err
}

func (r *run) countFields(m map[string]any) map[string]any {
	if m == nil {
		m = map[string]any{}
	}
	c := r.counts
	for k, v := range map[string]int{"seen": c.Seen, "created": c.Created, "updated": c.Updated,
		"disabled": c.Disabled, "enabled": c.Enabled, "failed": c.Failed} {
		m[k] = v
	}
	return m
}

// page imports and updates one page of entries in one transaction.
func (r *run) page(ctx context.Context, page []brokers.DirectoryEntry) error {
	subjects := make([]string, len(page))
	for i, e := range page {
		subjects[i] = e.Identity.Subject
	}
	known, err := r.s.o.Users.SyncedUsers(ctx, r.conn.ID, subjects)
	if err != nil {
		return err
	}
	var counts Counts
	var changes []change
	err = r.s.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		users, fl := r.s.o.Users.WithTx(tx), r.s.o.FirstLogin.WithTx(tx)
		for _, e := range page {
			id := e.Identity
			id.Connector = r.conn.ID
			counts.Seen++
			up, profile, err := r.conn.Map(id)
			if err != nil {
				counts.Failed++
				r.s.o.Log.Warn("directory sync: entry not mapped", "connector", r.conn.ID, "subject", id.Subject, "err", err)
				continue
			}
			u, linked := known[id.Subject]
			switch {
			case !linked && e.Disabled: // never imported: nothing to disable
			case !linked:
				if _, err := fl.Import(ctx, r.conn.Policy, up); err != nil {
					if !errors.Is(err, linking.ErrUsernameTaken) {
						return err
					}
					counts.Failed++
					r.s.o.Log.Warn("directory sync: entry not imported: its username belongs to another user",
						"connector", r.conn.ID, "subject", id.Subject, "username", up.Username)
					continue
				}
				counts.Created++
			case e.Disabled:
				changed, err := users.DisableFor(ctx, u.UserID, r.by)
				if err != nil {
					return err
				}
				if changed {
					counts.Disabled++
					changes = append(changes, change{audit.UserDisabled, u.UserID, "directory sync: the entry is disabled in the directory"})
				}
			default:
				if u.Disabled && u.DisabledBy == r.by {
					if _, err := users.EnableFor(ctx, u.UserID, r.by); err != nil {
						return err
					}
					u.Disabled = false
					counts.Enabled++
					changes = append(changes, change{audit.UserEnabled, u.UserID, "directory sync: the entry is back in the directory"})
				}
				// As at a login: a user an administrator disabled is left alone.
				if !u.Disabled && !u.Current(profile) {
					if err := users.SyncUser(ctx, u.UserID, r.conn.ID, profile); err != nil {
						return err
					}
					counts.Updated++
				}
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("directory sync of %s: %w", r.conn.ID, err)
	}
	for _, s := range subjects {
		r.seen[s] = true
	}
	r.add(counts)
	r.audit(ctx, changes)
	return nil
}

func (r *run) add(c Counts) {
	r.counts.Seen += c.Seen
	r.counts.Created += c.Created
	r.counts.Updated += c.Updated
	r.counts.Disabled += c.Disabled
	r.counts.Enabled += c.Enabled
	r.counts.Failed += c.Failed
}

// disableGone disables the users linked through the connector whose entries
// are not in the directory any more, a transaction per page.
func (r *run) disableGone(ctx context.Context, present map[string]bool) error {
	linked, err := r.s.o.Users.LinkedSubjects(ctx, r.conn.ID)
	if err != nil {
		return err
	}
	var gone []string
	for _, l := range linked {
		if !present[l.Subject] && !l.Disabled {
			gone = append(gone, l.UserID)
		}
	}
	for len(gone) > 0 {
		n := min(len(gone), pageSize)
		var done []change
		err := r.s.o.DB.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
			users := r.s.o.Users.WithTx(tx)
			for _, id := range gone[:n] {
				changed, err := users.DisableFor(ctx, id, r.by)
				if err != nil {
					return err
				}
				if changed {
					done = append(done, change{audit.UserDisabled, id, "directory sync: the entry left the directory"})
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("directory sync of %s: disable the users that left: %w", r.conn.ID, err)
		}
		r.audit(ctx, done)
		r.counts.Disabled += len(done)
		gone = gone[n:]
		if err := r.lease.update(ctx, r.countFields(nil)); err != nil {
			return err
		}
	}
	return nil
}

// pageSize is how many users a transaction disables at most.
const pageSize = 1000

// Start runs a sync in the background, detached from ctx (an admin page's
// request), and returns once it holds the connector — its progress is then
// in State for every node — or could not start (ErrBusy…).
func (s *Syncer) Start(ctx context.Context, connector, actor string) error {
	started := make(chan error, 1)
	var once sync.Once
	go func() {
		_, err := s.Run(context.WithoutCancel(ctx), connector, actor, func(Counts, int) { once.Do(func() { started <- nil }) })
		once.Do(func() { started <- err })
	}()
	return <-started
}
