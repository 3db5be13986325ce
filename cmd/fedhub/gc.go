package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// fedhub's live heap is small — a few MiB between requests — so with Go's
// default GOGC=100 the heap goal is a few MiB too and a busy token endpoint
// collects ten times a second, which shows in its tail latency. Unless the
// operator set them, serve therefore uses:
//   - GOGC=400: a collection once the heap is five times what was live;
//   - GOMEMLIMIT: three quarters of the container's memory limit (cgroup v2
//     memory.max), or defaultMemLimit without one. It bounds what the larger
//     GOGC could otherwise take when much is live at once (each argon2id
//     check holds 19 MiB while it runs): near the limit the collector works
//     harder instead.
//
// What the operator sets in the environment always wins (GOGC=off with a
// GOMEMLIMIT included).
const (
	defaultGCPercent = 400
	defaultMemLimit  = 256 << 20
)

// gcSettings returns the GC percentage and memory limit to set, or -1 for
// what the operator set (or the runtime's own when there is no default).
// containerLimit is the container's memory limit in bytes, 0 if none.
func gcSettings(getenv func(string) string, containerLimit int64) (percent int, limit int64) {
	percent, limit = defaultGCPercent, defaultMemLimit
	if containerLimit > 0 {
		limit = containerLimit / 4 * 3
	}
	if getenv("GOGC") != "" {
		percent = -1
	}
	if getenv("GOMEMLIMIT") != "" {
		limit = -1
	}
	return percent, limit
}

// tuneGC applies gcSettings to this process.
func tuneGC(log *slog.Logger) {
	percent, limit := gcSettings(os.Getenv, containerMemoryLimit())
	if percent >= 0 {
		debug.SetGCPercent(percent)
	}
	if limit >= 0 {
		debug.SetMemoryLimit(limit)
	}
	log.Debug("garbage collector", "gogc", percent, "memory_limit", limit, "note", "-1: as set in the environment")
}

// containerMemoryLimit is cgroup v2's memory.max for this process, 0 when
// there is none ("max") or it cannot be read.
func containerMemoryLimit() int64 {
	b, err := os.ReadFile("/sys/fs/cgroup/memory.max")
	if err != nil {
		return 0
	}
	n, err := strconv.ParseInt(strings.TrimSpace(string(b)), 10, 64)
	if err != nil {
		return 0
	}
	return n
}
