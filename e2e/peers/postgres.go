package peers

import (
	"cmp"
	"context"
	"crypto/rand"
	"database/sql"
	"errors"
	"fmt"
	"net"
	"net/url"
	"os"
	"os/exec"
	"os/user"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	_ "github.com/jackc/pgx/v5/stdlib" // registers the "pgx" database/sql driver
)

// EnvPostgresURL names the variable that points tests at an existing PostgreSQL server, given as
// a DSN for a superuser. scripts/test sets it so that all test binaries share one server.
const EnvPostgresURL = "FEDHUB_TEST_POSTGRES_URL"

// Postgres returns the DSN of a fresh, empty database on a real PostgreSQL server, in a form
// gorm.io/driver/postgres (pgx) accepts. The database is dropped in t.Cleanup.
//
// If FEDHUB_TEST_POSTGRES_URL is set, the database is created on that server. Otherwise the test
// binary starts a private server on first use, in a temporary folder, on a free loopback port,
// with a random password for user postgres; [StopAll] stops it. If the test process dies
// without calling StopAll, the kernel still stops the server (see startPostgres), but its
// temporary folder is left behind, and so are the databases created on a FEDHUB_TEST_POSTGRES_URL
// server.
func Postgres(t testing.TB) string {
	t.Helper()
	SkipShort(t)
	admin := os.Getenv(EnvPostgresURL)
	if admin == "" {
		var err error
		if admin, err = localPostgres(); err != nil {
			t.Fatalf("peers: start PostgreSQL: %v", err)
		}
	}

	// rand.Text is upper-case base32; lower-case needs no quoting in SQL.
	name := "fedhub_test_" + strings.ToLower(rand.Text())
	dsn, err := withDBName(admin, name)
	if err != nil {
		t.Fatalf("peers: %v", err)
	}
	if err := execAdmin(admin, "CREATE DATABASE "+name); err != nil {
		t.Fatalf("peers: create database %s: %v", name, err)
	}
	t.Cleanup(func() {
		// FORCE ends the connections the test left open, which would make a plain DROP fail.
		if err := execAdmin(admin, "DROP DATABASE "+name+" WITH (FORCE)"); err != nil {
			t.Errorf("peers: drop database %s: %v", name, err)
		}
	})
	return dsn
}

// StopAll stops the peer servers this test binary started; call it from TestMain after m.Run.
func StopAll() {
	if localPG.srv != nil {
		localPG.srv.stop()
		localPG.srv = nil
	}
	stopSambaAD()
}

// execAdmin runs one statement on the server's maintenance connection.
func execAdmin(dsn, query string) error {
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	db, err := sql.Open("pgx", dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	_, err = db.ExecContext(ctx, query)
	return err
}

// withDBName points dsn, in either form pgx and libpq accept, at database name.
func withDBName(dsn, name string) (string, error) {
	if strings.HasPrefix(dsn, "postgres://") || strings.HasPrefix(dsn, "postgresql://") {
		u, err := url.Parse(dsn)
		if err != nil {
			// url.Error would print the DSN, password included.
			return "", fmt.Errorf("%s is not a valid URL", EnvPostgresURL)
		}
		u.Path, u.RawPath = "/"+name, ""
		return u.String(), nil
	}
	// In the keyword/value form a later keyword overrides an earlier one.
	return dsn + " dbname=" + name, nil
}

// localPG is the private server of this test binary, started on first use.
var localPG struct {
	once sync.Once
	srv  *pgServer
	err  error
}

func localPostgres() (string, error) {
	localPG.once.Do(func() { localPG.srv, localPG.err = startPostgres() })
	if localPG.err != nil {
		return "", localPG.err
	}
	return localPG.srv.dsn, nil
}

type pgServer struct {
	dir  string      // temporary folder: data, socket, log
	dsn  string      // superuser DSN for database "postgres"
	proc *os.Process // the postmaster
	done chan error  // receives the postmaster's exit status
}

// startPostgres initialises and starts a throw-away server. It runs the postmaster itself rather
// than through pg_ctl, so that the postmaster is our child and can get a parent-death signal:
// if the test process dies, even by SIGKILL, the kernel sends it SIGQUIT (an immediate
// shutdown) and the server does not outlive the tests.
func startPostgres() (_ *pgServer, err error) {
	bin, err := postgresBinDir()
	if err != nil {
		return nil, err
	}
	cred, err := postgresCredential()
	if err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "fedhub-postgres-")
	if err != nil {
		return nil, err
	}
	defer func() {
		if err != nil {
			os.RemoveAll(dir)
		}
	}()
	chown := func(path string) error {
		if cred == nil {
			return nil
		}
		return os.Chown(path, int(cred.Uid), int(cred.Gid))
	}
	if err := chown(dir); err != nil {
		return nil, err
	}

	password := rand.Text()
	pwfile := filepath.Join(dir, "pwfile")
	if err := os.WriteFile(pwfile, []byte(password+"\n"), 0o600); err != nil {
		return nil, err
	}
	if err := chown(pwfile); err != nil {
		return nil, err
	}
	data := filepath.Join(dir, "data")
	initdb := exec.Command(filepath.Join(bin, "initdb"), "-D", data, "-U", "postgres",
		"-A", "scram-sha-256", "--auth-local=trust", "--pwfile="+pwfile,
		"--encoding=UTF8", "--locale=C", "--no-sync")
	initdb.Dir = dir // the postgres user may not be able to enter ours
	initdb.SysProcAttr = &syscall.SysProcAttr{Credential: cred}
	if out, err := initdb.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("initdb: %w\n%s", err, out)
	}

	// The port may be taken again between here and the server's bind; the server then exits
	// with a clear message in its log, which ends up in the error below.
	port, err := freePort()
	if err != nil {
		return nil, err
	}
	logPath := filepath.Join(dir, "postgres.log")
	logFile, err := os.Create(logPath)
	if err != nil {
		return nil, err
	}
	defer logFile.Close() // the child has its own descriptor
	cmd := exec.Command(filepath.Join(bin, "postgres"), "-D", data,
		"-c", "listen_addresses=127.0.0.1", "-p", strconv.Itoa(port), "-k", dir,
		// The data is thrown away: durability only costs time.
		"-c", "fsync=off", "-c", "synchronous_commit=off", "-c", "full_page_writes=off")
	cmd.Dir = dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	cmd.SysProcAttr = &syscall.SysProcAttr{Credential: cred, Pdeathsig: syscall.SIGQUIT}

	s := &pgServer{
		dir:  dir,
		dsn:  fmt.Sprintf("host=127.0.0.1 port=%d user=postgres password=%s dbname=postgres sslmode=disable", port, password),
		done: make(chan error, 1),
	}
	started := make(chan error, 1)
	go func() {
		// The parent-death signal fires when the thread that started the child exits, not the
		// process (go.dev/issue/27505). This goroutine keeps its thread to itself and stays in
		// Wait for as long as the server runs, so that thread lives exactly as long as needed.
		runtime.LockOSThread()
		if err := cmd.Start(); err != nil {
			started <- err
			return
		}
		started <- nil
		s.done <- cmd.Wait()
	}()
	if err := <-started; err != nil {
		return nil, fmt.Errorf("start postgres: %w", err)
	}
	s.proc = cmd.Process

	if err := s.waitReady(30 * time.Second); err != nil {
		s.stop()
		log, _ := os.ReadFile(logPath)
		return nil, fmt.Errorf("%w\n%s", err, log)
	}
	return s, nil
}

// waitReady waits until the server accepts queries: it listens before it has finished starting.
func (s *pgServer) waitReady(timeout time.Duration) error {
	db, err := sql.Open("pgx", s.dsn)
	if err != nil {
		return err
	}
	defer db.Close()
	deadline := time.Now().Add(timeout)
	for {
		ctx, cancel := context.WithTimeout(context.Background(), time.Second)
		err = db.PingContext(ctx)
		cancel()
		if err == nil {
			return nil
		}
		select {
		case exit := <-s.done:
			s.done <- exit // for stop
			return fmt.Errorf("postgres exited while starting: %v", exit)
		case <-time.After(50 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("postgres not ready after %v: %w", timeout, err)
		}
	}
}

// stop does what pg_ctl stop -m immediate does, SIGQUIT to the postmaster, without needing to
// run pg_ctl as the postgres user, then removes the temporary folder.
func (s *pgServer) stop() {
	_ = s.proc.Signal(syscall.SIGQUIT)
	select {
	case <-s.done:
	case <-time.After(10 * time.Second):
		_ = s.proc.Kill()
		<-s.done
	}
	os.RemoveAll(s.dir)
}

// postgresBinDir finds initdb and postgres. Debian keeps them out of PATH, in
// /usr/lib/postgresql/VERSION/bin; the newest version wins.
func postgresBinDir() (string, error) {
	dirs, _ := filepath.Glob("/usr/lib/postgresql/*/bin")
	version := func(dir string) float64 {
		v, _ := strconv.ParseFloat(filepath.Base(filepath.Dir(dir)), 64)
		return v
	}
	slices.SortFunc(dirs, func(a, b string) int { return cmp.Compare(version(b), version(a)) })
	if p, err := exec.LookPath("initdb"); err == nil {
		dirs = append(dirs, filepath.Dir(p))
	}
	for _, dir := range dirs {
		if isFile(filepath.Join(dir, "initdb")) && isFile(filepath.Join(dir, "postgres")) {
			return dir, nil
		}
	}
	return "", errors.New("PostgreSQL server binaries (initdb, postgres) not found: " +
		"run the tests with scripts/test, which installs them")
}

func isFile(path string) bool {
	fi, err := os.Stat(path)
	return err == nil && fi.Mode().IsRegular()
}

// postgresCredential says whom to run the server as: PostgreSQL refuses to run as root, so root
// hands it to the postgres user that the Debian package creates; anyone else runs it as themselves.
func postgresCredential() (*syscall.Credential, error) {
	if os.Geteuid() != 0 {
		return nil, nil
	}
	u, err := user.Lookup("postgres")
	if err != nil {
		return nil, fmt.Errorf("running as root needs the postgres user (run scripts/test, which installs PostgreSQL): %w", err)
	}
	uid, err := strconv.ParseUint(u.Uid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres user id %q: %w", u.Uid, err)
	}
	gid, err := strconv.ParseUint(u.Gid, 10, 32)
	if err != nil {
		return nil, fmt.Errorf("postgres group id %q: %w", u.Gid, err)
	}
	// No supplementary groups: root's must not leak to the server.
	return &syscall.Credential{Uid: uint32(uid), Gid: uint32(gid), Groups: []uint32{}}, nil
}

// freePort asks the kernel for a loopback port nobody listens on.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("find a free port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}

// CutOff makes the database of dsn (from [Postgres]) unreachable, as a lost
// database server would be: its connections are ended and new ones refused.
// The cleanup of [Postgres] still drops it.
func CutOff(t testing.TB, dsn string) {
	t.Helper()
	admin := os.Getenv(EnvPostgresURL)
	if admin == "" {
		var err error
		if admin, err = localPostgres(); err != nil {
			t.Fatalf("peers: %v", err)
		}
	}
	name := dsn[strings.LastIndex(dsn, "dbname=")+len("dbname="):]
	if u, err := url.Parse(dsn); err == nil && (u.Scheme == "postgres" || u.Scheme == "postgresql") {
		name = strings.TrimPrefix(u.Path, "/")
	}
	for _, q := range []string{"ALTER DATABASE " + name + " WITH ALLOW_CONNECTIONS false",
		"SELECT pg_terminate_backend(pid) FROM pg_stat_activity WHERE datname = '" + name + "'"} {
		if err := execAdmin(admin, q); err != nil {
			t.Fatalf("peers: cut off database %s: %v", name, err)
		}
	}
}
