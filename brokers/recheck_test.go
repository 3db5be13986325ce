package brokers_test

import (
	"context"
	"errors"
	"log/slog"
	"slices"
	"sync"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/brokertest"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/store/storetest"
)

// clock is a test clock that moves only when told.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) now() time.Time { c.mu.Lock(); defer c.mu.Unlock(); return c.t }
func (c *clock) add(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// reversing is a Sealer that is easy to tell from the clear text.
type reversing struct{}

func (reversing) Seal(b []byte) ([]byte, error) { return append([]byte("sealed:"), reverse(b)...), nil }
func (reversing) Open(b []byte) ([]byte, error) {
	if !slices.Equal(b[:7], []byte("sealed:")) {
		return nil, errors.New("not sealed")
	}
	return reverse(b[7:]), nil
}

func reverse(b []byte) []byte {
	out := slices.Clone(b)
	slices.Reverse(out)
	return out
}

const every = 5 * time.Minute

// recheckFixture is a broker with one upstream connector, "corp", whose
// identity "alice-guid" is linked to alice, signed in at the start.
type recheckFixture struct {
	broker   *brokers.Service
	users    *linking.Service
	upstream *brokertest.RedirectConnector
	clock    *clock
	alice    *linking.User
}

func newRecheckFixture(t *testing.T, db *gorm.DB, failOpen, sync bool) *recheckFixture {
	t.Helper()
	ctx := context.Background()
	f := &recheckFixture{upstream: &brokertest.RedirectConnector{}, clock: &clock{t: time.Date(2026, 11, 30, 9, 0, 0, 0, time.UTC)}}
	f.users = linking.New(db, f.clock.now)
	conn := brokers.Connector{ID: "corp", Name: "Corp", Enabled: true, Sync: sync, Impl: f.upstream,
		Recheck: brokers.Recheck{Interval: every, FailOpen: failOpen},
		Mappers: brokers.Mappers{{Kind: brokers.MapGroupToGroup, Group: "staff", To: "staff"}}}
	f.broker = brokers.New(brokers.Options{Connectors: []brokers.Connector{conn}, Users: f.users, DB: db,
		Sealer: reversing{}, Log: slog.New(slog.DiscardHandler), Now: f.clock.now})
	var err error
	f.alice, err = f.users.CreateLinkedUser(ctx, linking.Upstream{Connector: "corp", Subject: "alice-guid", Username: "alice"},
		linking.NewUser{Username: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	sealed, _ := reversing{}.Seal([]byte("session:alice"))
	if err := f.users.SignedInThrough(ctx, "corp", "alice-guid", sealed, f.clock.now().Add(-time.Hour)); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *recheckFixture) recheck() error {
	return f.broker.Recheck(context.Background(), f.alice.ID, "corp", "alice-guid")
}

func TestRecheck(t *testing.T) {
	down := errors.New("dial tcp: connection refused")
	refused := errors.Join(login.ErrUpstreamRefused, errors.New("account disabled"))
	cases := []struct {
		name     string
		failOpen bool
		// steps: advance the clock, set the upstream's answer, re-check, want.
		steps []step
		asked int // how many times the upstream was asked in all
	}{
		{name: "a yes holds for the interval", steps: []step{
			{after: every, want: nil}, {after: every - time.Second, want: nil}, {after: time.Second, want: nil},
		}, asked: 2},
		{name: "within the interval of the login the upstream is not asked", steps: []step{
			{after: time.Minute, want: nil},
		}, asked: 0},
		{name: "the upstream's no", steps: []step{
			{after: every, answer: refused, want: login.ErrUpstreamRefused},
		}, asked: 1},
		{name: "fail closed: down is no token, and the next request asks again", steps: []step{
			{after: every, answer: down, want: login.ErrUpstreamUnreachable},
			{after: time.Second, answer: down, want: login.ErrUpstreamUnreachable},
			{after: time.Second, answer: nil, want: nil},
		}, asked: 3},
		{name: "fail open: down counts as yes for one more interval, never longer", failOpen: true, steps: []step{
			{after: every, answer: down, want: nil},
			{after: every - 2*time.Second, answer: down, want: nil},
			{after: 2 * time.Second, answer: down, want: login.ErrUpstreamUnreachable},
			{after: time.Hour, answer: down, want: login.ErrUpstreamUnreachable},
		}, asked: 4},
		{name: "fail open still takes the upstream's no", failOpen: true, steps: []step{
			{after: every, answer: refused, want: login.ErrUpstreamRefused},
		}, asked: 1},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
				f := newRecheckFixture(t, db, tc.failOpen, false)
				for i, s := range tc.steps {
					f.clock.add(s.after)
					f.upstream.Answer("alice-guid", s.answer)
					if err := f.recheck(); !errors.Is(err, s.want) || (s.want == nil && err != nil) {
						t.Fatalf("step %d: Recheck = %v, want %v", i, err, s.want)
					}
				}
				if got := len(f.upstream.Asked()); got != tc.asked {
					t.Fatalf("the upstream was asked %d times, want %d", got, tc.asked)
				}
			})
		})
	}
}

type step struct {
	after  time.Duration
	answer error
	want   error
}

// TestRecheckUpstreamState: the connector gets its state back opened, with
// when the person authenticated upstream, and its new state is kept sealed.
func TestRecheckUpstreamState(t *testing.T) {
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		f := newRecheckFixture(t, db, false, false)
		loginAt := f.clock.now().Add(-time.Hour)
		for i, want := range []string{"session:alice", "session:alice+"} {
			f.clock.add(every)
			if err := f.recheck(); err != nil {
				t.Fatal(err)
			}
			asked := f.upstream.Asked()[i]
			if string(asked.Identity.Upstream) != want || !asked.AuthAt.Equal(loginAt) || asked.Identity.Username != "alice" {
				t.Fatalf("re-check %d got state %q, auth time %v, username %q; want %q, %v, alice", i,
					asked.Identity.Upstream, asked.AuthAt, asked.Identity.Username, want, loginAt)
			}
		}
		link, err := f.users.LinkOf(context.Background(), "corp", "alice-guid")
		if err != nil {
			t.Fatal(err)
		}
		if opened, err := (reversing{}).Open(link.Upstream); err != nil || string(opened) != "session:alice++" {
			t.Fatalf("stored state %q (%v), want session:alice++ sealed", link.Upstream, err)
		}
	})
}

// TestRecheckIdentityGone: an identity unlinked, moved to another user or
// of a connector switched off is a no without asking the upstream; a grant
// from before subjects were recorded finds the user's link of the connector.
func TestRecheckIdentityGone(t *testing.T) {
	ctx := context.Background()
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		f := newRecheckFixture(t, db, false, false)
		f.clock.add(every)
		if err := f.broker.Recheck(ctx, f.alice.ID, "corp", ""); err != nil {
			t.Fatalf("legacy grant: %v", err)
		}
		if err := f.broker.Recheck(ctx, f.alice.ID, "elsewhere", "alice-guid"); !errors.Is(err, login.ErrUpstreamRefused) {
			t.Fatalf("unknown connector: %v", err)
		}
		bob, err := f.users.CreateUser(ctx, linking.NewUser{Username: "bob"})
		if err != nil {
			t.Fatal(err)
		}
		link, _ := f.users.LinkOf(ctx, "corp", "alice-guid")
		if err := f.users.MoveLink(ctx, link.ID, bob.ID, nil, nil, true); err != nil {
			t.Fatal(err)
		}
		f.clock.add(every)
		for _, subject := range []string{"alice-guid", ""} {
			if err := f.broker.Recheck(ctx, f.alice.ID, "corp", subject); !errors.Is(err, login.ErrUpstreamRefused) {
				t.Fatalf("moved away (subject %q): %v", subject, err)
			}
		}
		if err := f.broker.Recheck(ctx, bob.ID, "corp", "alice-guid"); err != nil {
			t.Fatalf("its new user: %v", err)
		}
		if n := len(f.upstream.Asked()); n != 2 {
			t.Fatalf("the upstream was asked %d times, want 2 (the legacy grant's and bob's)", n)
		}
	})
}

// TestRecheckOneAsksAtATime: requests that find the yes stale at once ask
// the upstream once (an OIDC upstream would take a second use of its
// rotating refresh token for a replay).
func TestRecheckOneAsksAtATime(t *testing.T) {
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		f := newRecheckFixture(t, db, false, false)
		f.clock.add(every)
		var wg sync.WaitGroup
		errs := make(chan error, 8)
		for range 8 {
			wg.Go(func() { errs <- f.recheck() })
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			if err != nil {
				t.Fatal(err)
			}
		}
		if n := len(f.upstream.Asked()); n != 1 {
			t.Fatalf("the upstream was asked %d times, want 1", n)
		}
	})
}

// TestRecheckSyncsProfile: where the connector syncs, what the upstream says
// of the person now replaces what it said at the login.
func TestRecheckSyncsProfile(t *testing.T) {
	ctx := context.Background()
	for _, sync := range []bool{true, false} {
		t.Run(map[bool]string{true: "sync", false: "import"}[sync], func(t *testing.T) {
			storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
				f := newRecheckFixture(t, db, false, sync)
				f.upstream.Current = &login.Identity{Username: "alice", Email: "alice@new.example", Name: "Alice New", Groups: []string{"staff"}}
				f.clock.add(every)
				if err := f.recheck(); err != nil {
					t.Fatal(err)
				}
				u, err := f.users.UserByID(ctx, f.alice.ID)
				if err != nil {
					t.Fatal(err)
				}
				synced := u.Email == "alice@new.example" && u.Name == "Alice New" && slices.Equal(u.Groups, []string{"staff"})
				if synced != sync {
					t.Fatalf("user after the re-check: %+v; want synced %v", u, sync)
				}
			})
		})
	}
}
