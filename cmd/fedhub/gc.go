package main

import (
	"log/slog"
	"os"
	"runtime/debug"
	"strconv"
	"strings"

	"github.com/fedhub/fedhub/linking"
)

// fedhub's live heap is small — a few MiB between requests — so with Go's
// default GOGC=100 the heap goal is a few MiB too and a busy token endpoint
// collects ten times a second, which shows in its tail latency. Unless the
// operator set them, serve therefore uses:
//   - GOGC=400: a collection once the heap is five times what was live;
//   - GOMEMLIMIT: four times the password hashes' bound (linking.HashLimits:
//     152 MiB on 2 cores), or three quarters of the container's memory limit
//     (cgroup v2 memory.max) when that is less. Much is live at once only
//     under a flood of password checks (19 MiB each while it runs); the
//     limit keeps the larger GOGC from multiplying that: near it the
//     collector works harder instead, and the heap stays within the bound
//     TestPasswordFloodMemory checks.
//
// What the operator sets in the environment always wins (GOGC=off with a
// GOMEMLIMIT included).
const defaultGCPercent = 400

// gcSettings returns the GC percentage and memory limit to set, or -1 for
// what the operator set. containerLimit is the container's memory limit in
// bytes, 0 if none; hashMemory is what the password hashes take at most.
func gcSettings(getenv func(string) string, containerLimit, hashMemory int64) (percent int, limit int64) {
	percent, limit = defaultGCPercent, 4*hashMemory
	if containerLimit > 0 {
		limit = min(limit, containerLimit/4*3)
	}
	if getenv("GOGC") != "" {
		percent = -1
	}
	if getenv("GOMEMLIMIT") != "" {
		limit = -1
	}
	return percent, limit
}

// tuneGC applies gcSettings to this process and returns a function that
// restores what was set before (tests share a process).
func tuneGC(log *slog.Logger) (restore func()) {
	percent, limit := gcSettings(os.Getenv, containerMemoryLimit(), linking.DefaultHashLimits().Memory())
	prevPercent, prevLimit := -1, int64(-1)
	if percent >= 0 {
		prevPercent = debug.SetGCPercent(percent)
	}
	if limit >= 0 {
		prevLimit = debug.SetMemoryLimit(limit)
	}
	log.Debug("garbage collector", "gogc", percent, "memory_limit", limit, "note", "-1: as set in the environment")
	return func() {
		if percent >= 0 {
			debug.SetGCPercent(prevPercent)
		}
		if limit >= 0 {
			debug.SetMemoryLimit(prevLimit)
		}
	}
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
