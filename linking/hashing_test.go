package linking_test

import (
	"context"
	"errors"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store/storetest"
)

// hashingService is a service over a fresh SQLite database with alice
// (password "right"), and the unknown-user path's dummy hash already
// computed (computing it takes a place of the bound too).
func hashingService(t *testing.T) *linking.Service {
	t.Helper()
	s := linking.New(storetest.Open(t, "sqlite", linking.Models()...), time.Now)
	mustCreate(t, s, linking.NewUser{Username: "alice", Password: "right"})
	if _, err := s.VerifyPassword(context.Background(), "nobody", "x"); !errors.Is(err, linking.ErrInvalidCredentials) {
		t.Fatalf("unknown user: %v", err)
	}
	return s
}

// waitForWaiting waits until n checks wait for a place.
func waitForWaiting(t *testing.T, n int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if _, w := linking.HashingLoad(); w == n {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d checks never came to wait for a place", n)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestHashingBound: with one computation running and one waiting, a third
// check is refused at once with ErrBusy — for a known user and an unknown one
// alike, so that "busy" tells nothing about which names exist — and the
// waiting one goes ahead when the place frees up.
func TestHashingBound(t *testing.T) {
	ctx := context.Background()
	defer linking.SetHashLimits(linking.HashLimits{Running: 1, Waiting: 1, Wait: time.Minute})()
	s := hashingService(t)

	release := linking.OccupyHashing(1)
	waited := make(chan error, 1)
	go func() {
		_, err := s.VerifyPassword(ctx, "alice", "right")
		waited <- err
	}()
	waitForWaiting(t, 1)

	for _, username := range []string{"alice", "nobody"} {
		start := time.Now()
		u, err := s.VerifyPassword(ctx, username, "right")
		if !errors.Is(err, linking.ErrBusy) || u != nil {
			t.Errorf("third check, %s: %v, %v; want ErrBusy", username, u, err)
		}
		if took := time.Since(start); took > time.Second {
			t.Errorf("third check, %s: refused after %v; want at once", username, took)
		}
	}
	select {
	case err := <-waited:
		t.Fatalf("the waiting check ended while no place was free: %v", err)
	default:
	}
	release()
	if err := <-waited; err != nil {
		t.Errorf("the waiting check, once a place was free: %v", err)
	}
	if r, w := linking.HashingLoad(); r != 0 || w != 0 {
		t.Errorf("after all checks: %d running, %d waiting", r, w)
	}
}

// TestHashingWaitIsBounded: a check waits for a place at most the limit's
// Wait, then is refused with ErrBusy.
func TestHashingWaitIsBounded(t *testing.T) {
	const wait = 200 * time.Millisecond
	defer linking.SetHashLimits(linking.HashLimits{Running: 1, Waiting: 4, Wait: wait})()
	s := hashingService(t)
	release := linking.OccupyHashing(1)
	defer release()
	start := time.Now()
	if _, err := s.VerifyPassword(context.Background(), "alice", "right"); !errors.Is(err, linking.ErrBusy) {
		t.Fatalf("check while the only place is taken: %v, want ErrBusy", err)
	}
	if took := time.Since(start); took < wait || took > wait+5*time.Second {
		t.Errorf("refused after %v, want after the wait of %v", took, wait)
	}
	if _, w := linking.HashingLoad(); w != 0 {
		t.Errorf("%d checks still waiting after they were refused", w)
	}
}

// TestHashPasswordTakesItsTurn: setting a password is never refused, but it
// waits for a place like a check: the bound holds for it too.
func TestHashPasswordTakesItsTurn(t *testing.T) {
	defer linking.SetHashLimits(linking.HashLimits{Running: 1, Waiting: 0, Wait: time.Millisecond})()
	release := linking.OccupyHashing(1)
	done := make(chan error, 1)
	go func() {
		_, err := linking.HashPassword("new password")
		done <- err
	}()
	select {
	case err := <-done:
		t.Fatalf("HashPassword ran while the only place was taken (%v)", err)
	case <-time.After(100 * time.Millisecond):
	}
	release()
	if err := <-done; err != nil {
		t.Fatalf("HashPassword once the place was free: %v", err)
	}
}

// TestHashingBoundsMemory: 48 concurrent wrong passwords (the flood,
// 866 MiB before the bound) stay within the stated ceiling: at most
// max(2, GOMAXPROCS) hashes of 19 MiB are alive at once, and the heap's peak
// stays under 4 × that × 19 MiB over where it started (the garbage collector
// lets the heap grow to about twice what is alive).
func TestHashingBoundsMemory(t *testing.T) {
	const flood = 48
	running := max(2, runtime.GOMAXPROCS(0))
	s := hashingService(t)
	ctx := context.Background()

	runtime.GC()
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	base := ms.HeapAlloc
	var peak, maxRunning atomic.Uint64
	stop := make(chan struct{})
	var sampler sync.WaitGroup
	sampler.Go(func() {
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				var ms runtime.MemStats
				runtime.ReadMemStats(&ms)
				if ms.HeapAlloc > peak.Load() {
					peak.Store(ms.HeapAlloc)
				}
				if r, _ := linking.HashingLoad(); uint64(r) > maxRunning.Load() {
					maxRunning.Store(uint64(r))
				}
			}
		}
	})

	var busy, wrong atomic.Int32
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i := range flood {
		wg.Go(func() {
			<-start
			username := "alice"
			if i%2 == 1 {
				username = "nobody-" + strings.Repeat("x", i)
			}
			_, err := s.VerifyPassword(ctx, username, "wrong")
			switch {
			case errors.Is(err, linking.ErrBusy):
				busy.Add(1)
			case errors.Is(err, linking.ErrInvalidCredentials):
				wrong.Add(1)
			default:
				t.Errorf("VerifyPassword(%s): %v", username, err)
			}
		})
	}
	close(start)
	wg.Wait()
	close(stop)
	sampler.Wait()

	const mib = 1 << 20
	ceiling := uint64(4 * running * 19 * mib)
	grew := peak.Load() - min(base, peak.Load())
	t.Logf("%d concurrent wrong passwords: %d checked, %d busy; at most %d hashes at once; heap peak %d MiB over %d MiB (ceiling %d MiB)",
		flood, wrong.Load(), busy.Load(), maxRunning.Load(), grew/mib, base/mib, ceiling/mib)
	if grew > ceiling {
		t.Errorf("the heap grew by %d MiB under %d concurrent checks; the bound allows %d MiB", grew/mib, flood, ceiling/mib)
	}
	if maxRunning.Load() > uint64(running) {
		t.Errorf("%d hashes ran at once; the bound is %d", maxRunning.Load(), running)
	}
	if wrong.Load() < int32(running) {
		t.Errorf("only %d of %d checks were made", wrong.Load(), flood)
	}
}

// TestValidPasswordHashComputesNothing: checking an imported hash's form
// computes no hash, however much memory its parameters ask for.
func TestValidPasswordHashComputesNothing(t *testing.T) {
	const huge = "$argon2id$v=19$m=1048576,t=64,p=16$c2FsdHNhbHRzYWx0$a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5a2V5"
	var before, after runtime.MemStats
	runtime.ReadMemStats(&before)
	start := time.Now()
	if !linking.ValidPasswordHash(huge) {
		t.Fatalf("ValidPasswordHash(%q) = false", huge)
	}
	runtime.ReadMemStats(&after)
	if grew := after.TotalAlloc - before.TotalAlloc; grew > 1<<20 || time.Since(start) > time.Second {
		t.Errorf("ValidPasswordHash allocated %d bytes in %v: it computed the 1 GiB hash", grew, time.Since(start))
	}
}
