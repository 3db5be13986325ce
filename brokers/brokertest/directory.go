package brokertest

import (
	"cmp"
	"context"
	"errors"
	"maps"
	"slices"
	"strconv"
	"sync"

	"github.com/fedhub/fedhub/brokers"
)

// Directory is a directory in memory (a brokers.DirectoryWalker). With
// Incremental it walks like Active Directory: only the entries changed since
// the mark it gave, which counts changes.
type Directory struct {
	PageSize    int  // default 3: several pages even for small tests
	Incremental bool // walks after the first give only what changed
	// FailAfter, when positive, makes Walk fail after that many pages (a run
	// cut half way).
	FailAfter int

	mu      sync.Mutex
	entries map[string]brokers.DirectoryEntry
	changed map[string]int // subject → the change count when it last changed
	usn     int
}

// ErrCut is what Walk returns after FailAfter pages.
var ErrCut = errors.New("brokertest: walk cut")

// Put adds or replaces an entry.
func (d *Directory) Put(e brokers.DirectoryEntry) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.entries == nil {
		d.entries, d.changed = map[string]brokers.DirectoryEntry{}, map[string]int{}
	}
	d.usn++
	d.entries[e.Identity.Subject], d.changed[e.Identity.Subject] = e, d.usn
}

// Delete removes an entry.
func (d *Directory) Delete(subject string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	d.usn++
	delete(d.entries, subject)
}

// Walk gives the entries in subject order, a page at a time.
func (d *Directory) Walk(ctx context.Context, since string, fn func([]brokers.DirectoryEntry) error) (brokers.Walked, error) {
	d.mu.Lock()
	walked := brokers.Walked{Full: true, Mark: strconv.Itoa(d.usn)}
	from, err := strconv.Atoi(since)
	if d.Incremental && err == nil {
		walked.Full = false
	} else {
		from = 0
	}
	var list []brokers.DirectoryEntry
	for _, s := range slices.Sorted(maps.Keys(d.entries)) {
		if d.changed[s] > from {
			list = append(list, d.entries[s])
		}
	}
	size, failAfter := cmp.Or(d.PageSize, 3), d.FailAfter
	d.mu.Unlock()
	for page := 0; len(list) > 0; page++ {
		if failAfter > 0 && page == failAfter {
			return brokers.Walked{}, ErrCut
		}
		if err := ctx.Err(); err != nil {
			return brokers.Walked{}, err
		}
		n := min(size, len(list))
		if err := fn(list[:n]); err != nil {
			return brokers.Walked{}, err
		}
		list = list[n:]
	}
	return walked, nil
}

// Subjects lists every subject, in one page.
func (d *Directory) Subjects(_ context.Context, fn func([]string) error) error {
	d.mu.Lock()
	subjects := slices.Sorted(maps.Keys(d.entries))
	d.mu.Unlock()
	return fn(subjects)
}
