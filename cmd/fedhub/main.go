package main

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/certreload"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/manage"
	"github.com/fedhub/fedhub/store"
)

const usage = `fedhub — identity broker and OpenID Provider

Usage:
  fedhub serve (-c FILE | --demo) [--listen ADDR] [--management ADDR]
  fedhub check-config -c FILE
  fedhub migrate (-c FILE | --demo)
  fedhub users add (-c FILE | --demo) --username NAME [--email E] [--name N] [--role R]... [--password-stdin]
  fedhub users list (-c FILE | --demo)
  fedhub users import (-c FILE | --demo) --file users.jsonl|users.csv   (all or nothing; see the README)
  fedhub users set-password (-c FILE | --demo) --username NAME   (reads the password from stdin)
  fedhub users disable|enable (-c FILE | --demo) --username NAME
  fedhub users grant-role|revoke-role (-c FILE | --demo) --username NAME --role ROLE   (e.g. --role admin)
  fedhub keys rotate (-c FILE | --demo) [--revoke-previous]
  fedhub secrets rekey (-c FILE | --demo)   (seals every stored secret with secrets.key)
  fedhub connectors sync ID (-c FILE | --demo)   (imports and updates the users of an LDAP/AD connector with sync: {import: on})
  fedhub hash-secret   (reads a client secret from stdin, prints its secret_hash)
  fedhub backup (-c FILE | --demo) --to FILE     (SQLite: a consistent copy, also while serving)
  fedhub restore (-c FILE | --demo) --from FILE  (SQLite: replaces the database; stop fedhub first)
  fedhub version       (also --version: module version, commit, its date, Go version)
  fedhub healthcheck [URL]   (exit 0 when a running fedhub is ready; URL default http://127.0.0.1:9000/readyz)
`

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := run(ctx, os.Args[1:], os.Stdin, os.Stdout, os.Stderr); err != nil {
		fmt.Fprintln(os.Stderr, "fedhub:", err)
		os.Exit(1)
	}
}

func run(ctx context.Context, args []string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		fmt.Fprint(stdout, usage)
		return errors.New("no command given")
	}
	cmd, rest := args[0], args[1:]
	if (cmd == "users" || cmd == "keys" || cmd == "secrets" || cmd == "connectors") && len(rest) > 0 {
		cmd, rest = cmd+" "+rest[0], rest[1:]
	}
	switch cmd {
	case "serve":
		return serve(ctx, rest, stdout, stderr)
	case "check-config":
		return checkConfig(rest, stdout)
	case "migrate":
		return withApp(ctx, "migrate", rest, nil, func(*app) error {
			fmt.Fprintln(stdout, "database is up to date")
			return nil
		})
	case "users add", "users list", "users set-password", "users disable", "users enable", "users grant-role", "users revoke-role":
		return usersCommand(ctx, cmd, rest, stdin, stdout)
	case "users import":
		return usersImport(ctx, rest, stdout)
	case "keys rotate":
		return keysRotate(ctx, rest, stdout)
	case "secrets rekey":
		return withApp(ctx, "secrets rekey", rest, nil, func(a *app) error { return rekey(ctx, a, stdout) })
	case "connectors sync":
		return connectorsSync(ctx, rest, stdout)
	case "hash-secret":
		secret, err := readSecret(stdin)
		if err != nil {
			return err
		}
		fmt.Fprintln(stdout, issuer.HashClientSecret(secret))
		return nil
	case "backup":
		return backup(ctx, rest, stdout)
	case "restore":
		return restore(ctx, rest, stdout)
	case "version", "--version":
		printVersion(stdout)
		return nil
	case "healthcheck":
		return healthcheck(ctx, rest, stdout)
	case "help", "-h", "--help":
		fmt.Fprint(stdout, usage)
		return nil
	}
	fmt.Fprint(stdout, usage)
	return fmt.Errorf("unknown command %q", strings.Join(args[:min(2, len(args))], " "))
}

// options are the flags every command shares.
type options struct {
	file       string
	demo       bool
	listen     string
	management string
	fs         *flag.FlagSet
}

func newFlags(name string) *options {
	o := &options{fs: flag.NewFlagSet(name, flag.ContinueOnError)}
	o.fs.StringVar(&o.file, "c", "", "configuration file")
	o.fs.BoolVar(&o.demo, "demo", false, "use the built-in demo configuration")
	o.fs.StringVar(&o.listen, "listen", "", "listen address (overrides the configuration)")
	o.fs.StringVar(&o.management, "management", "", "management listen address (overrides management.listen)")
	return o
}

func (o *options) config() (*config.Config, error) {
	var cfg *config.Config
	var err error
	switch {
	case o.demo && o.file != "":
		return nil, errors.New("give either -c FILE or --demo, not both")
	case o.demo:
		cfg, err = demoConfig(o.listen)
	case o.file == "":
		return nil, errors.New("give a configuration file with -c FILE (or --demo to try fedhub)")
	default:
		cfg, err = connectors.LoadFile(o.file)
		if err == nil && o.listen != "" {
			cfg.Listen = o.listen
		}
	}
	if err != nil {
		return nil, err
	}
	if o.management != "" {
		if _, _, err := net.SplitHostPort(o.management); err != nil {
			return nil, fmt.Errorf("--management %q: %w", o.management, err)
		}
		cfg.Management.Listen = o.management
	}
	return cfg, nil
}

func checkConfig(args []string, stdout io.Writer) error {
	o := newFlags("check-config")
	if err := o.fs.Parse(args); err != nil {
		return err
	}
	if o.file == "" {
		return errors.New("give the file to check with -c FILE")
	}
	if _, err := connectors.LoadFile(o.file); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: configuration is valid\n", o.file)
	return nil
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	o := newFlags("serve")
	if err := o.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	// SIGHUP reloads (below); caught from here on, not only once serving.
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	defer signal.Stop(hup)
	level := new(slog.LevelVar)
	log := newLogger(stderr, cfg.Log, level)
	var tlsConfig *tls.Config // nil: plain http, for a reverse proxy that terminates TLS
	if cfg.TLS.CertFile != "" {
		certs, err := certreload.New(cfg.TLS.CertFile, cfg.TLS.KeyFile, log, time.Now)
		if err != nil {
			return err
		}
		tlsConfig = certs.Config()
	}
	tuneGC(log)
	a, err := newApp(ctx, cfg, log)
	if err != nil {
		return err
	}
	defer store.Close(a.db)
	ln, err := net.Listen("tcp", cfg.Listen)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", cfg.Listen, err)
	}
	mgmt := a.management(cfg)
	// net/http's own messages (TLS handshake errors) in fedhub's log format.
	serverLog := slog.NewLogLogger(log.Handler(), slog.LevelInfo)
	public := http.Handler(a.echo)
	var mln net.Listener
	if cfg.Management.Listen == cfg.Listen {
		public = manage.Handler(mgmt, a.echo) // configured so: the management endpoints are public
	} else if mln, err = net.Listen("tcp", cfg.Management.Listen); err != nil {
		ln.Close()
		return fmt.Errorf("management.listen on %s: %w", cfg.Management.Listen, err)
	}
	srv := &http.Server{
		Handler: public, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 30 * time.Second, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10, TLSConfig: tlsConfig,
		ErrorLog: serverLog,
	}
	if a.secrets == nil {
		log.Warn("secrets are stored unencrypted: set secrets.key", "what", "signing keys, TOTP keys and SAML SP keys in the database",
			"how", "secrets: {key: ${FEDHUB_SECRETS_KEY}} with 32 random bytes in base64 (openssl rand -base64 32)")
	}
	go a.issuer.Maintain(ctx)
	go a.issuer.DeliverLogouts(ctx, issuer.NoticeClient())
	go a.purge(ctx, log)
	go a.sync.Schedule(ctx)
	if o.demo {
		printDemoBanner(stdout, cfg)
	}
	errc := make(chan error, 2)
	servers := []*http.Server{srv}
	if mln != nil {
		msrv := &http.Server{Handler: manage.Handler(mgmt, nil), ReadHeaderTimeout: 10 * time.Second, WriteTimeout: 30 * time.Second,
			ErrorLog: serverLog}
		servers = append(servers, msrv)
		go func() { errc <- msrv.Serve(mln) }()
	}
	mgmtAddr := ln.Addr()
	if mln != nil {
		mgmtAddr = mln.Addr() // the port bound, also for :0
	}
	log.Info("fedhub is serving", "issuer", cfg.Issuer, "listen", ln.Addr().String(), "tls", cfg.TLS.CertFile != "",
		"management", mgmtAddr.String(), "storage", cfg.Storage.Driver)
	if srv.TLSConfig != nil {
		go func() { errc <- srv.ServeTLS(ln, "", "") }() // the certificate comes from TLSConfig
	} else {
		go func() { errc <- srv.Serve(ln) }()
	}
	for running, serving := cfg, true; serving; {
		select {
		case err := <-errc:
			return err
		case <-hup:
			log.Info("SIGHUP: reloading the configuration")
			running = a.reload(ctx, o.config, cfg, running, level, log)
		case <-ctx.Done():
			serving = false
		}
	}
	log.Info("shutting down: finishing the requests in flight", "grace", shutdownGrace)
	shutdown, cancel := context.WithTimeout(context.Background(), shutdownGrace)
	defer cancel()
	for _, s := range servers {
		if err := s.Shutdown(shutdown); err != nil {
			return fmt.Errorf("shut down: %w", err)
		}
	}
	log.Info("fedhub stopped")
	return nil
}

// shutdownGrace is how long requests in flight may take to finish after a
// stop signal.
const shutdownGrace = 10 * time.Second

// withApp wires fedhub over the configured (and migrated) database for a
// management command.
func withApp(ctx context.Context, name string, args []string, extra func(*flag.FlagSet), fn func(*app) error) error {
	o := newFlags(name)
	if extra != nil {
		extra(o.fs)
	}
	if err := o.fs.Parse(args); err != nil {
		return err
	}
	cfg, err := o.config()
	if err != nil {
		return err
	}
	a, err := newApp(ctx, cfg, slog.New(slog.DiscardHandler))
	if err != nil {
		return err
	}
	defer store.Close(a.db)
	return fn(a)
}

func usersCommand(ctx context.Context, cmd string, args []string, stdin io.Reader, stdout io.Writer) error {
	var username, email, name string
	var passwordStdin bool
	var roles multiFlag
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&username, "username", "", "username")
		if cmd == "users grant-role" || cmd == "users revoke-role" {
			fs.Var(&roles, "role", "the role")
		}
		if cmd == "users add" {
			fs.StringVar(&email, "email", "", "email address")
			fs.StringVar(&name, "name", "", "display name")
			fs.Var(&roles, "role", "role to grant (repeatable)")
			fs.BoolVar(&passwordStdin, "password-stdin", false, "read a password from stdin")
		}
	}
	return withApp(ctx, cmd, args, extra, func(a *app) error {
		users, events := a.users, a.audit
		if cmd != "users list" && username == "" {
			return errors.New("--username is required")
		}
		switch cmd {
		case "users add":
			nu := linking.NewUser{Username: username, Email: email, Name: name, Roles: roles}
			if passwordStdin {
				p, err := readSecret(stdin)
				if err != nil {
					return err
				}
				nu.Password = p
			}
			u, err := users.CreateUser(ctx, nu)
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "created user %s (id %s)\n", u.Username, u.ID)
			return events.Record(ctx, audit.Event{Type: audit.UserCreated, Actor: "cli", UserID: u.ID})
		case "users list":
			list, err := users.ListUsers(ctx, 0, 10000)
			if err != nil {
				return err
			}
			tw := tabwriter.NewWriter(stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "ID\tUSERNAME\tEMAIL\tDISABLED")
			for _, u := range list {
				fmt.Fprintf(tw, "%s\t%s\t%s\t%v\n", u.ID, u.Username, u.Email, u.Disabled)
			}
			return tw.Flush()
		case "users grant-role", "users revoke-role":
			if len(roles) != 1 {
				return errors.New("give one --role")
			}
			u, err := users.UserByUsername(ctx, username)
			if err != nil {
				return err
			}
			grant := cmd == "users grant-role"
			typ := audit.RoleGranted
			if grant {
				err = users.GrantRole(ctx, u.ID, roles[0])
			} else {
				typ, err = audit.RoleRevoked, users.RevokeRole(ctx, u.ID, roles[0])
			}
			if err != nil {
				return err
			}
			fmt.Fprintf(stdout, "%s: role %s %s\n", username, roles[0], map[bool]string{true: "granted", false: "revoked"}[grant])
			return events.Record(ctx, audit.Event{Type: typ, Actor: "cli", UserID: u.ID, Detail: roles[0]})
		case "users set-password":
			p, err := readSecret(stdin)
			if err != nil {
				return err
			}
			if err := users.SetPassword(ctx, username, p); err != nil {
				return err
			}
			fmt.Fprintf(stdout, "password of %s changed\n", username)
			return events.Record(ctx, audit.Event{Type: audit.PasswordSet, Actor: "cli", Detail: username})
		case "users disable", "users enable":
			disable := cmd == "users disable"
			if err := users.SetDisabled(ctx, username, disable); err != nil {
				return err
			}
			if disable {
				u, err := users.UserByUsername(ctx, username)
				if err != nil {
					return err
				}
				if err := a.issuer.EndSessions(ctx, u.ID); err != nil {
					return err
				}
			}
			fmt.Fprintf(stdout, "%s %sd\n", username, strings.TrimPrefix(cmd, "users "))
			typ := audit.UserEnabled
			if disable {
				typ = audit.UserDisabled
			}
			return events.Record(ctx, audit.Event{Type: typ, Actor: "cli", Detail: username})
		}
		return nil
	})
}

// keysRotate makes a new signing key that signs within a second, once every
// node has it; with --revoke-previous it signs at once and the previous keys
// stop being published and trusted now.
func keysRotate(ctx context.Context, args []string, stdout io.Writer) error {
	var revoke bool
	extra := func(fs *flag.FlagSet) {
		fs.BoolVar(&revoke, "revoke-previous", false, "stop trusting and publishing every previous key now (a key was compromised)")
	}
	return withApp(ctx, "keys rotate", args, extra, func(a *app) error {
		if !revoke {
			if err := a.issuer.Keys().Rotate(ctx); err != nil {
				return err
			}
			fmt.Fprintln(stdout, "new signing key created; it signs within a second, once every node has it; the previous ones stay published until the tokens they signed expire")
			return a.audit.Record(ctx, audit.Event{Type: audit.KeysRotated, Actor: "cli"})
		}
		if err := a.issuer.Keys().RotateRevokingPrevious(ctx); err != nil {
			return err
		}
		fmt.Fprint(stdout, `new signing key created; every previous key is revoked: no longer published, no longer trusted.
What that does to live tokens, from now on (every node within a second):
  - every access token and ID token signed by a previous key is refused (userinfo, introspection,
    the admin API, id_token_hint);
  - refresh tokens keep working (they are opaque, not signed): clients get new tokens, signed by
    the new key, on their next refresh; people signed in keep their SSO sessions;
  - relying parties must fetch the JWKS again (most do on meeting an unknown key ID); until they
    do, a relying party that verifies tokens itself may still accept old ones it has cached keys for.
`)
		return a.audit.Record(ctx, audit.Event{Type: audit.KeysRotated, Actor: "cli", Detail: "previous keys revoked"})
	})
}

// rekey seals every stored secret with the current key; what is sealed with
// it already stays as it is, so a second run changes nothing. The tables are
// then compacted, so that the values as they were leave the database files.
func rekey(ctx context.Context, a *app, stdout io.Writer) error {
	if a.secrets == nil {
		return errors.New("secrets.key is not set: there is no key to seal with")
	}
	var changed int
	var tables []any
	for _, s := range a.sealed {
		n, total, err := s.r.Reseal(ctx)
		changed += n
		if err != nil {
			return fmt.Errorf("%s: %w", s.what, err)
		}
		fmt.Fprintf(stdout, "%s: %d re-sealed, %d already sealed with key %s\n", s.what, n, total-n, a.secrets.CurrentID())
		tables = append(tables, s.table)
	}
	if changed > 0 {
		if err := store.Compact(ctx, a.db, tables...); err != nil {
			return err
		}
	}
	return a.audit.Record(ctx, audit.Event{Type: audit.SecretsResealed, Actor: "cli",
		Detail: fmt.Sprintf("%d re-sealed with key %s", changed, a.secrets.CurrentID())})
}

func readSecret(r io.Reader) (string, error) {
	line, err := bufio.NewReader(r).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read from stdin: %w", err)
	}
	line = strings.TrimRight(line, "\r\n")
	if line == "" {
		return "", errors.New("nothing was given on stdin")
	}
	return line, nil
}

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }
