package main

import (
	"bufio"
	"bytes"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// startSettle is how long a started process runs before its memory is read:
// long enough for the work that follows the first request (the purge, key
// maintenance) to have run once.
const startSettle = time.Second

// startSample is one start of a binary.
type startSample struct {
	ready     time.Duration // from exec to the first 200 on the discovery path
	rss, anon int64         // VmRSS and RssAnon in KiB, startSettle after ready
}

// BenchmarkStartup starts the real fedhub binary (`fedhub serve`) on an
// existing SQLite database, times it from exec to the first 200 on
// /.well-known/openid-configuration, and reads its resident memory from
// /proc once it settled; each iteration does the same with the smallest Go
// HTTP server (testdata/minhttp), the baseline of the same run. It prints
// medians and ratios; it asserts nothing about them.
//
//	go test -run '^$' -bench Startup -benchtime 20x ./cmd/fedhub/
func BenchmarkStartup(b *testing.B) {
	if runtime.GOOS != "linux" {
		b.Skip("reads memory from /proc")
	}
	f, m, n := newStarts(b).medians(b, b.Loop)
	b.ReportMetric(float64(f.ready)/float64(time.Millisecond), "ready-ms")
	b.ReportMetric(float64(f.rss)/1024, "rss-MiB")
	fmt.Printf("start to ready (median of %d, exec to first 200 on discovery): fedhub %.1f ms, minimal Go server %.1f ms: %.2f× (+%.1f ms)\n",
		n, ms(f.ready), ms(m.ready), float64(f.ready)/float64(m.ready), ms(f.ready-m.ready))
	fmt.Printf("idle memory %s after: fedhub RSS %.1f MiB (anonymous %.1f), minimal Go server RSS %.1f MiB (anonymous %.1f): +%.1f MiB\n",
		startSettle, kib(f.rss), kib(f.anon), kib(m.rss), kib(m.anon), kib(f.rss-m.rss))
}

// starts starts fedhub on an existing SQLite database, and the minimal Go
// server beside it, each built into a temporary folder.
type starts struct {
	fedhub, baseline, conf, addr string
	env                          []string
}

func newStarts(tb testing.TB) *starts {
	tb.Helper()
	dir := tb.TempDir()
	s := &starts{fedhub: filepath.Join(dir, "fedhub"), baseline: filepath.Join(dir, "minhttp"), conf: filepath.Join(dir, "fedhub.yaml"), addr: freeAddr(tb)}
	for bin, pkg := range map[string]string{s.fedhub: ".", s.baseline: "./testdata/minhttp"} {
		if out, err := exec.Command(filepath.Join(runtime.GOROOT(), "bin", "go"), "build", "-o", bin, pkg).CombinedOutput(); err != nil {
			tb.Fatalf("go build %s: %v\n%s", pkg, err, out)
		}
		readFromDisk(tb, bin)
	}
	yaml := fmt.Sprintf(`issuer: http://%s
storage: {driver: sqlite, dsn: %s}
clients:
  - id: app
    secret: ${APP_SECRET}
    redirect_uris: [http://127.0.0.1:5555/callback]
    grant_types: [authorization_code, refresh_token, client_credentials]
users:
  - username: admin
    password: ${ADMIN_PASSWORD}
    roles: [admin]
`, s.addr, filepath.Join(dir, "fedhub.db"))
	if err := os.WriteFile(s.conf, []byte(yaml), 0o600); err != nil {
		tb.Fatal(err)
	}
	s.env = append(os.Environ(), "APP_SECRET=app-secret-for-the-startup-benchmark", "ADMIN_PASSWORD=a-password-for-the-benchmark")
	migrate := exec.Command(s.fedhub, "migrate", "-c", s.conf)
	migrate.Env = s.env
	if out, err := migrate.CombinedOutput(); err != nil { // the existing database: migrated, bootstrap user and key made
		tb.Fatalf("fedhub migrate: %v\n%s", err, out)
	}
	return s
}

// readFromDisk drops the binary at path from the page cache, so that it is
// read from disk as a server's binary is after a restart of the machine. A
// binary just written (by the linker, or any copy through the page cache)
// is mapped whole into every process that runs it while it stays there:
// fedhub started at 35.6 MiB resident, against 29.8 read from disk.
func readFromDisk(tb testing.TB, path string) {
	tb.Helper()
	f, err := os.Open(path)
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	if err := f.Sync(); err != nil { // only clean pages can be dropped
		tb.Fatal(err)
	}
	if err := unix.Fadvise(int(f.Fd()), 0, 0, unix.FADV_DONTNEED); err != nil {
		tb.Fatal(err)
	}
}

// medians starts fedhub, then the minimal Go server, for as long as more
// says, and returns each one's median figures and how often each started.
func (s *starts) medians(tb testing.TB, more func() bool) (fedhub, minimal startSample, n int) {
	var fed, base []startSample
	for more() {
		fed = append(fed, startOnce(tb, s.addr, s.env, s.fedhub, "serve", "-c", s.conf, "--listen", s.addr))
		base = append(base, startOnce(tb, s.addr, s.env, s.baseline, "-listen", s.addr))
	}
	return startMedian(fed), startMedian(base), len(fed)
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func kib(n int64) float64        { return float64(n) / 1024 }

// freeAddr is a loopback address nothing listens on.
func freeAddr(tb testing.TB) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		tb.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// startOnce starts a server, waits for its first 200 on the discovery path,
// lets it settle, reads its memory and stops it.
func startOnce(tb testing.TB, addr string, env []string, bin string, args ...string) startSample {
	tb.Helper()
	client := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	url := "http://" + addr + "/.well-known/openid-configuration"
	cmd := exec.Command(bin, args...)
	cmd.Env = env
	var out bytes.Buffer // what it said, should it never answer
	cmd.Stdout, cmd.Stderr = &out, &out
	start := time.Now()
	if err := cmd.Start(); err != nil {
		tb.Fatal(err)
	}
	defer func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		_ = cmd.Wait()
	}()
	var s startSample
	for {
		resp, err := client.Get(url)
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				s.ready = time.Since(start)
				break
			}
		}
		if time.Since(start) > 10*time.Second {
			_ = cmd.Process.Kill()
			_ = cmd.Wait() // out is complete once it returns
			tb.Fatalf("%s did not answer %s within 10 s: %v; it said:\n%s", bin, url, err, out.Bytes())
		}
		time.Sleep(time.Millisecond)
	}
	time.Sleep(startSettle)
	s.rss, s.anon = procMemory(tb, cmd.Process.Pid)
	return s
}

// procMemory reads VmRSS and RssAnon (KiB) of a process.
func procMemory(tb testing.TB, pid int) (rss, anon int64) {
	tb.Helper()
	f, err := os.Open(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		tb.Fatal(err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		name, value, _ := strings.Cut(sc.Text(), ":")
		n, _ := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(value), " kB"), 10, 64)
		switch name {
		case "VmRSS":
			rss = n
		case "RssAnon":
			anon = n
		}
	}
	return rss, anon
}

// startMedian is the median of each figure on its own.
func startMedian(ss []startSample) startSample {
	median := func(get func(startSample) int64) int64 {
		v := make([]int64, len(ss))
		for i, s := range ss {
			v[i] = get(s)
		}
		slices.Sort(v)
		return v[len(v)/2]
	}
	return startSample{
		ready: time.Duration(median(func(s startSample) int64 { return int64(s.ready) })),
		rss:   median(func(s startSample) int64 { return s.rss }),
		anon:  median(func(s startSample) int64 { return s.anon }),
	}
}
