package linking

import (
	"errors"
	"runtime"
	"sync/atomic"
	"time"
)

// ErrBusy is returned instead of checking a password when the process already
// hashes as many passwords as it may and its short queue is full, or no place
// freed up within the queue's wait. The caller answers "try again shortly"
// (HTTP 503 with Retry-After), and counts the attempt for the client's
// address.
var ErrBusy = errors.New("too many password checks at once")

// HashLimits bound the password hashing of the whole process. Every argon2id
// computation takes its memory (19 MiB with fedhub's parameters) for tens of
// milliseconds: a flood of password attempts, right or wrong, must not take
// memory without bound. At most Running computations run at once and at most
// Waiting more wait for a place, each for at most Wait; the rest are refused
// at once with ErrBusy. The hashes' memory is then at most Running × 19 MiB
// (Running × m for a hash imported with a larger m), whatever the load.
type HashLimits struct {
	Running int
	Waiting int
	Wait    time.Duration
}

// DefaultHashLimits are the process's bound: one computation per core (two at
// least), twice as many waiting, for a second at most — argon2id takes about
// 35 ms on one core, so a waiting check has its turn long before then unless
// the machine is overloaded.
func DefaultHashLimits() HashLimits {
	n := max(2, runtime.GOMAXPROCS(0))
	return HashLimits{Running: n, Waiting: 2 * n, Wait: time.Second}
}

// Memory is the most the hashes take at once under these limits (with
// fedhub's parameters).
func (l HashLimits) Memory() int64 { return int64(max(1, l.Running)) * argonMemory << 10 }

// gate bounds the password hashing of the whole process.
type gate struct {
	limits  HashLimits
	running chan struct{} // a token per computation in progress
	inside  chan struct{} // a token per computation in progress or waiting
	waiting atomic.Int32  // computations waiting for a place, for HashingLoad
}

func newGate(l HashLimits) *gate {
	l.Running, l.Waiting = max(1, l.Running), max(0, l.Waiting)
	return &gate{limits: l, running: make(chan struct{}, l.Running), inside: make(chan struct{}, l.Running+l.Waiting)}
}

// processGate is the process's gate; SetHashLimits replaces it.
var processGate atomic.Pointer[gate]

func init() { processGate.Store(newGate(DefaultHashLimits())) }

// hashing is the gate in force.
func hashing() *gate { return processGate.Load() }

// SetHashLimits changes the process's bound (tests use tiny ones) and returns
// a function that restores the previous one. Computations already admitted
// finish under the bound they entered.
func SetHashLimits(l HashLimits) (restore func()) {
	prev := processGate.Swap(newGate(l))
	return func() { processGate.Store(prev) }
}

// enter takes a place for one computation, waiting in the queue if there is
// room in it, and returns the function that gives the place back.
func (g *gate) enter() (func(), error) {
	select {
	case g.inside <- struct{}{}:
	default:
		return nil, ErrBusy // the queue is full
	}
	select {
	case g.running <- struct{}{}:
		return g.leave, nil
	default:
	}
	g.waiting.Add(1)
	defer g.waiting.Add(-1)
	timer := time.NewTimer(g.limits.Wait)
	defer timer.Stop()
	select {
	case g.running <- struct{}{}:
		return g.leave, nil
	case <-timer.C:
		<-g.inside
		return nil, ErrBusy
	}
}

// await takes a place for one computation however long it takes, beside the
// queue: the bound on memory holds, and signed-in people, administrators and
// start-up are not refused.
func (g *gate) await() func() {
	g.running <- struct{}{}
	return func() { <-g.running }
}

func (g *gate) leave() {
	<-g.running
	<-g.inside
}

// HashingLoad is how many password computations run and how many wait for a
// place, now.
func HashingLoad() (running, waiting int) {
	g := hashing()
	return len(g.running), int(g.waiting.Load())
}

// OccupyHashing takes n places of the process's hashing bound, as n
// computations in progress would, waiting for them, until release is called.
// Tests use it to fill the bound; nothing else should.
func OccupyHashing(n int) (release func()) {
	g := hashing()
	for range n {
		g.inside <- struct{}{}
		g.running <- struct{}{}
	}
	return func() {
		for range n {
			g.leave()
		}
	}
}
