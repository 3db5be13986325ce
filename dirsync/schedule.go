package dirsync

import (
	"context"
	"errors"
	"maps"
	"slices"
	"time"
)

// checkEvery is how often Schedule looks for a sync that is due.
const checkEvery = time.Minute

// Schedule runs RunDue now, then every checkEvery and after every
// SetImports, until ctx ends (serve starts it on every node; the lock lets
// one of them run each sync).
func (s *Syncer) Schedule(ctx context.Context) {
	tick := time.NewTicker(checkEvery)
	defer tick.Stop()
	for {
		s.RunDue(ctx)
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		case <-s.wake:
		}
	}
}

// RunDue runs, one after the other, the syncs of enabled connectors whose
// period has passed since their last run started (on any node), by the
// Syncer's clock.
func (s *Syncer) RunDue(ctx context.Context) {
	periods := s.periods()
	for _, id := range slices.Sorted(maps.Keys(periods)) {
		if err := ctx.Err(); err != nil {
			return
		}
		due, err := s.due(ctx, id, periods[id])
		if err != nil {
			s.o.Log.Error("directory sync: read its state", "connector", id, "err", err)
			continue
		}
		if !due {
			continue
		}
		if _, err := s.Run(ctx, id, "schedule", nil); errors.Is(err, ErrBusy) {
			s.o.Log.Debug("directory sync runs elsewhere", "connector", id)
		} // other failures are logged and audited by Run
	}
}

// due says whether the connector's period has passed since its last run started.
func (s *Syncer) due(ctx context.Context, id string, period time.Duration) (bool, error) {
	if _, enabled := s.o.Broker.Enabled(id); period <= 0 || !enabled {
		return false, nil
	}
	st, err := s.State(ctx, id)
	if err != nil {
		return false, err
	}
	now := s.o.Now()
	return !st.Running(now) && (st.StartedAt == nil || !now.Before(st.StartedAt.Add(period))), nil
}
