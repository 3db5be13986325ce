package loadgen

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"
)

func TestRun(t *testing.T) {
	for _, c := range []struct {
		name         string
		workers      int
		budget       int
		failEvery    int64 // every n-th operation fails; 0: none
		wantRequests int
		wantErrors   int
		wantErr      bool
	}{
		{"the budget ends the run", 4, 100, 0, 100, 0, false},
		{"failures are counted, not measured", 2, 30, 3, 30, 10, false},
		{"nothing succeeded", 2, 10, 1, 10, 10, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			var n atomic.Int64
			st, err := Run(context.Background(), c.workers, time.Minute, c.budget, func(context.Context) error {
				if i := n.Add(1); c.failEvery > 0 && i%c.failEvery == 0 {
					return errors.New("refused")
				}
				return nil
			})
			if (err != nil) != c.wantErr {
				t.Fatalf("Run: %v, want an error: %v", err, c.wantErr)
			}
			if st.Requests != c.wantRequests || st.Errors != c.wantErrors {
				t.Errorf("%d requests, %d errors; want %d, %d", st.Requests, st.Errors, c.wantRequests, c.wantErrors)
			}
			if !c.wantErr && st.Rate() <= 0 {
				t.Errorf("rate %v, want > 0", st.Rate())
			}
		})
	}
}

// The duration ends a run; the operation under way then finishes and counts.
func TestRunStopsAfterDuration(t *testing.T) {
	st, err := Run(context.Background(), 1, 50*time.Millisecond, 1<<30, func(context.Context) error {
		time.Sleep(20 * time.Millisecond)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if st.Requests < 1 || st.Requests > 3 || st.Errors != 0 {
		t.Errorf("%d operations of 20 ms in a 50 ms run (%d errors), want at most 3, none cut off", st.Requests, st.Errors)
	}
	if st.Elapsed < 50*time.Millisecond {
		t.Errorf("the run took %v, less than its duration", st.Elapsed)
	}
}

func TestPct(t *testing.T) {
	st := Stats{latencies: []time.Duration{1, 2, 3, 4, 5, 6, 7, 8, 9, 10}}
	for _, c := range []struct {
		p    float64
		want time.Duration
	}{{0, 1}, {0.5, 6}, {0.9, 10}, {0.99, 10}, {1, 10}} {
		if got := st.Pct(c.p); got != c.want {
			t.Errorf("Pct(%v) = %v, want %v", c.p, got, c.want)
		}
	}
	if (Stats{}).Pct(0.5) != 0 {
		t.Error("Pct of no latencies is not 0")
	}
}
