package loadgen

import (
	"context"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"time"
)

// Stats summarise one run.
type Stats struct {
	Requests  int
	Errors    int
	Elapsed   time.Duration
	latencies []time.Duration // sorted
}

// Op is one operation of a load: one request, or one multi-step login. Its
// error counts as a failed operation.
type Op func(ctx context.Context) error

// Run repeats op from workers goroutines until d has passed or budget
// operations were started, and measures each. Operations under way when d
// has passed run to their end and count (the run lasts that much longer):
// cutting them off would waste their work and lose the slow ones. It fails
// when no operation succeeded (nothing listens at the target, or every answer
// was an error).
func Run(ctx context.Context, workers int, d time.Duration, budget int, op Op) (Stats, error) {
	stop, cancel := context.WithTimeout(ctx, d)
	defer cancel()
	var mu sync.Mutex
	var all Stats
	var firstErr error
	var started atomic.Int64
	start := time.Now()
	var wg sync.WaitGroup
	for range workers {
		wg.Go(func() {
			var local Stats
			var localErr error
			for stop.Err() == nil && started.Add(1) <= int64(budget) {
				t0 := time.Now()
				err := op(ctx)
				local.Requests++
				if err != nil {
					local.Errors++
					localErr = cmpErr(localErr, err)
					continue
				}
				local.latencies = append(local.latencies, time.Since(t0))
			}
			mu.Lock()
			all.Requests += local.Requests
			all.Errors += local.Errors
			all.latencies = append(all.latencies, local.latencies...)
			firstErr = cmpErr(firstErr, localErr)
			mu.Unlock()
		})
	}
	wg.Wait()
	all.Elapsed = time.Since(start)
	if len(all.latencies) == 0 {
		return all, fmt.Errorf("no operation succeeded: %w", cmpErr(firstErr, errors.New("none ran")))
	}
	slices.Sort(all.latencies)
	return all, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// Rate is successful operations per second.
func (s Stats) Rate() float64 { return float64(len(s.latencies)) / s.Elapsed.Seconds() }

// Pct is the latency at fraction p (0.99: p99) of the successful operations.
func (s Stats) Pct(p float64) time.Duration {
	if len(s.latencies) == 0 {
		return 0
	}
	return s.latencies[min(len(s.latencies)-1, int(p*float64(len(s.latencies))))]
}

// Report writes one line: counts, throughput, p50, p90, p99.
func (s Stats) Report(w io.Writer, name string) {
	fmt.Fprintf(w, "%-34s %8d req  %6d errors  %9.0f req/s  p50 %-9v p90 %-9v p99 %v\n",
		name, s.Requests, s.Errors, s.Rate(), s.Pct(0.50).Round(time.Microsecond),
		s.Pct(0.90).Round(time.Microsecond), s.Pct(0.99).Round(time.Microsecond))
}
