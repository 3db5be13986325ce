package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
	"gorm.io/gorm"
)

// coreSplit gives the server under measurement CPUs of its own, apart from
// the load generator's (and PostgreSQL's), as a deployment has its clients
// and its database on other machines. Sharing all the cores, the kernel preempts each for the
// other: with both on both of this machine's two cores, even /jwks, a static
// answer, had a p99 of 6 × its p50, a tail of the measurement, not of fedhub.
type coreSplit struct {
	all, server, load unix.CPUSet
}

// splitCores pins this process to the load generator's half of the CPUs it
// may use and returns the split, undone when the test ends; with one CPU
// nothing is pinned (nil).
func splitCores(t *testing.T) *coreSplit {
	t.Helper()
	var cs coreSplit
	if err := unix.SchedGetaffinity(0, &cs.all); err != nil || cs.all.Count() < 2 {
		t.Logf("the server shares the CPUs with the load generator (%d CPUs, %v)", cs.all.Count(), err)
		return nil
	}
	half := cs.all.Count() / 2
	for cpu := 0; cs.server.Count()+cs.load.Count() < cs.all.Count(); cpu++ {
		switch {
		case !cs.all.IsSet(cpu):
		case cs.server.Count() < half:
			cs.server.Set(cpu)
		default:
			cs.load.Set(cpu)
		}
	}
	if err := pinProcess(os.Getpid(), cs.load); err != nil {
		t.Fatal(err)
	}
	prev := runtime.GOMAXPROCS(cs.load.Count())
	t.Cleanup(func() {
		runtime.GOMAXPROCS(prev)
		if err := pinProcess(os.Getpid(), cs.all); err != nil {
			t.Error(err)
		}
	})
	t.Logf("the server and the raw limits run on %d CPUs, the load generator on %d others", cs.server.Count(), cs.load.Count())
	return &cs
}

// rawThreads is how many threads a raw limit runs in: as many as the server
// has CPUs, or, when it shares them with this process, as many as the server's
// and this process's load phases keep busy.
func (cs *coreSplit) rawThreads() int {
	if cs == nil {
		return 2 * runtime.GOMAXPROCS(0)
	}
	return cs.server.Count()
}

// serverTime is the CPU time the server's CPUs were running it or ready
// to: their count times what elapsed since the returned function was made,
// less what the hypervisor gave other guests meanwhile (steal, proc(5)),
// which on a shared virtual machine is a tenth or more.
func (cs *coreSplit) serverTime() (func() (time.Duration, error), error) {
	cpus, start := runtime.NumCPU(), time.Now()
	if cs != nil {
		cpus = cs.server.Count()
	}
	stolen0, err := cs.stolen()
	if err != nil {
		return nil, err
	}
	return func() (time.Duration, error) {
		stolen, err := cs.stolen()
		return time.Duration(cpus)*time.Since(start) - (stolen - stolen0), err
	}, nil
}

// stolen is the time the hypervisor has given other guests while the
// server's CPUs (all, nil) could run, so far: /proc/stat's steal, in
// procTicks.
func (cs *coreSplit) stolen() (time.Duration, error) {
	raw, err := os.ReadFile("/proc/stat")
	if err != nil {
		return 0, err
	}
	var ticks int64
	for line := range strings.Lines(string(raw)) {
		fields := strings.Fields(line) // cpuN user nice system idle iowait irq softirq steal …
		if len(fields) < 9 || !strings.HasPrefix(fields[0], "cpu") {
			continue
		}
		cpu, err := strconv.Atoi(fields[0][len("cpu"):])
		if err != nil || (cs != nil && !cs.server.IsSet(cpu)) { // the total line, or another CPU
			continue
		}
		n, err := strconv.ParseInt(fields[8], 10, 64)
		if err != nil {
			return 0, fmt.Errorf("/proc/stat: %s: %w", fields[0], err)
		}
		ticks += n
	}
	return time.Duration(ticks) * procTick, nil
}

// asServer moves this process to the server's CPUs until the returned
// function moves it back.
func (cs *coreSplit) asServer(t *testing.T) (back func()) {
	t.Helper()
	if cs == nil {
		return func() {}
	}
	if err := pinProcess(os.Getpid(), cs.server); err != nil {
		t.Fatal(err)
	}
	return func() {
		if err := pinProcess(os.Getpid(), cs.load); err != nil {
			t.Fatal(err)
		}
	}
}

// serverEnv sizes the server's Go runtime for its CPUs: it reads them at
// start, before pinServer moves it there.
func (cs *coreSplit) serverEnv() []string {
	if cs == nil {
		return nil
	}
	return []string{"GOMAXPROCS=" + strconv.Itoa(cs.server.Count())}
}

// pinServer moves the process pid to the server's CPUs. Once it is ready its
// threads are all there, and any it starts later inherit them.
func (cs *coreSplit) pinServer(t *testing.T, pid int) {
	t.Helper()
	if cs == nil {
		return
	}
	if err := pinProcess(pid, cs.server); err != nil {
		t.Fatal(err)
	}
}

// pinPostgres moves the PostgreSQL server behind db to the load generator's
// CPUs, where the other machines of a deployment are: the postmaster and the
// processes it has started (the backends it forks later inherit them),
// until the test ends. On the server's CPUs it would charge fedhub for the
// database's work, which SQLite does in fedhub's process and PostgreSQL on
// a machine of its own. A server on another machine, or one this process may
// not move, is left where it is, with a line in the log.
func (cs *coreSplit) pinPostgres(t *testing.T, db *gorm.DB) {
	t.Helper()
	if cs == nil {
		return
	}
	var backend int
	if err := db.Raw("SELECT pg_backend_pid()").Scan(&backend).Error; err != nil {
		t.Fatal(err)
	}
	postmaster, err := parentPID(backend)
	if err == nil {
		err = forFamily(postmaster, func(pid int) error { return pinProcess(pid, cs.load) })
	}
	if err != nil {
		t.Logf("PostgreSQL runs on every CPU: %v", err)
		return
	}
	t.Cleanup(func() {
		if err := forFamily(postmaster, func(pid int) error { return pinProcess(pid, cs.all) }); err != nil {
			t.Error(err)
		}
	})
}

// pinProcess sets the CPUs of every thread of pid, if it still runs.
func pinProcess(pid int, cpus unix.CPUSet) error {
	tasks, err := os.ReadDir(fmt.Sprintf("/proc/%d/task", pid))
	if errors.Is(err, os.ErrNotExist) {
		return nil // it has ended
	}
	if err != nil {
		return fmt.Errorf("pin process %d: %w", pid, err)
	}
	for _, task := range tasks {
		tid, err := strconv.Atoi(task.Name())
		if err != nil {
			continue
		}
		// A thread may end meanwhile (ESRCH): it runs nowhere.
		if err := unix.SchedSetaffinity(tid, &cpus); err != nil && !errors.Is(err, unix.ESRCH) {
			return fmt.Errorf("pin thread %d of process %d: %w", tid, pid, err)
		}
	}
	return nil
}

// forFamily calls fn for pid and each process whose parent it is.
func forFamily(pid int, fn func(int) error) error {
	if err := fn(pid); err != nil {
		return err
	}
	stats, err := filepath.Glob("/proc/[0-9]*/stat")
	if err != nil {
		return err
	}
	for _, stat := range stats {
		child, err := strconv.Atoi(filepath.Base(filepath.Dir(stat)))
		if err != nil {
			continue
		}
		if parent, err := parentPID(child); err == nil && parent == pid {
			if err := fn(child); err != nil {
				return err
			}
		}
	}
	return nil
}

// parentPID reads a process's parent from /proc.
func parentPID(pid int) (int, error) {
	fields, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("parent of process %d: %w", pid, err)
	}
	return strconv.Atoi(fields[1])
}

// procTick is the unit of /proc's CPU times (proc(5): USER_HZ, 100 a second).
const procTick = 10 * time.Millisecond

// cpuTime is the CPU time a process has used so far, its own and the
// kernel's on its behalf (proc(5): utime and stime, in procTicks).
func cpuTime(pid int) (time.Duration, error) {
	fields, err := procStat(pid)
	if err != nil {
		return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
	}
	var ticks int64
	for _, f := range fields[11:13] {
		n, err := strconv.ParseInt(f, 10, 64)
		if err != nil {
			return 0, fmt.Errorf("CPU time of process %d: %w", pid, err)
		}
		ticks += n
	}
	return time.Duration(ticks) * procTick, nil
}

// procStat is a process's /proc stat from its state on (proc(5): the
// fields after the command, which is in parentheses and may hold spaces).
func procStat(pid int) ([]string, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return nil, err
	}
	end := strings.LastIndexByte(string(raw), ')')
	fields := strings.Fields(string(raw[end+1:]))
	if end < 0 || len(fields) < 13 {
		return nil, fmt.Errorf("unexpected /proc stat %q", raw)
	}
	return fields, nil
}

// TestProcReaders: the /proc readers the measurement rests on read this
// process as it is: its parent, CPU time that grows with work, and the
// server CPUs' time as about their count times what elapsed.
func TestProcReaders(t *testing.T) {
	parent, err := parentPID(os.Getpid())
	if err != nil || parent != os.Getppid() {
		t.Fatalf("parentPID = %d, %v; want %d", parent, err, os.Getppid())
	}
	available, err := (*coreSplit)(nil).serverTime()
	if err != nil {
		t.Fatal(err)
	}
	before, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	for start := time.Now(); time.Since(start) < 200*time.Millisecond; { // work
	}
	after, err := cpuTime(os.Getpid())
	if err != nil {
		t.Fatal(err)
	}
	of, err := available()
	if err != nil {
		t.Fatal(err)
	}
	// Ticks are 10 ms; a busy machine may run this process less than it asked.
	if used := after - before; used < 50*time.Millisecond || used > of {
		t.Errorf("200 ms of work used %v of CPU, of %v available", used, of)
	}
	if most := time.Duration(runtime.NumCPU()) * 300 * time.Millisecond; of <= 0 || of > most {
		t.Errorf("the CPUs could run %v in about 200 ms; want (0, %v]", of, most)
	}
}
