package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/csv"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"iter"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/linking"
)

// usersImport creates the users of a file, and their links, all or nothing:
// a refused line leaves the database as it was.
func usersImport(ctx context.Context, args []string, stdout io.Writer) error {
	var path string
	extra := func(fs *flag.FlagSet) {
		fs.StringVar(&path, "file", "", "the users: JSON lines (.jsonl) or CSV (.csv)")
	}
	return withApp(ctx, "users import", args, extra, func(a *app) error {
		if path == "" {
			return errors.New("give the users to import with --file FILE (.jsonl or .csv)")
		}
		f, err := os.Open(path)
		if err != nil {
			return err
		}
		defer f.Close()
		var src iter.Seq2[linking.ImportUser, error]
		switch strings.ToLower(filepath.Ext(path)) {
		case ".jsonl", ".ndjson":
			src = jsonUsers(f)
		case ".csv":
			src = csvUsers(f)
		default:
			return fmt.Errorf("%s: give a .jsonl or .csv file", path)
		}
		n, err := a.users.Import(ctx, knownConnectors(src, a.inForce))
		if err != nil {
			return fmt.Errorf("%s: %w (nothing was imported)", path, err)
		}
		fmt.Fprintf(stdout, "imported %d users from %s\n", n, path)
		return a.audit.Record(ctx, audit.Event{Type: audit.UsersImported, Actor: "cli", Detail: fmt.Sprintf("%d users from %s", n, filepath.Base(path))})
	})
}

// importLine is one line of a JSON lines import.
type importLine struct {
	Username      string `json:"username"`
	Email         string `json:"email"`
	EmailVerified bool   `json:"email_verified"`
	Name          string `json:"name"`
	PasswordHash  string `json:"password_hash"`
	Links         []struct {
		Connector string `json:"connector"`
		Subject   string `json:"subject"`
		Username  string `json:"username"`
		Email     string `json:"email"`
	} `json:"links"`
}

// jsonUsers reads one JSON object a line; blank lines are skipped.
func jsonUsers(r io.Reader) iter.Seq2[linking.ImportUser, error] {
	return func(yield func(linking.ImportUser, error) bool) {
		sc := bufio.NewScanner(r)
		sc.Buffer(nil, 1<<20)
		line := 0
		for sc.Scan() {
			line++
			if len(bytes.TrimSpace(sc.Bytes())) == 0 {
				continue
			}
			var l importLine
			dec := json.NewDecoder(bytes.NewReader(sc.Bytes()))
			dec.DisallowUnknownFields() // a misspelt field would otherwise be silently empty
			if err := dec.Decode(&l); err != nil {
				yield(linking.ImportUser{}, fmt.Errorf("line %d: %w", line, err))
				return
			}
			u := linking.ImportUser{Line: line, Username: l.Username, Email: l.Email, EmailVerified: l.EmailVerified,
				Name: l.Name, PasswordHash: l.PasswordHash}
			for _, k := range l.Links {
				u.Links = append(u.Links, linking.ImportLink{Connector: k.Connector, Subject: k.Subject, Username: k.Username, Email: k.Email})
			}
			if !yield(u, nil) {
				return
			}
		}
		if err := sc.Err(); err != nil {
			yield(linking.ImportUser{}, fmt.Errorf("line %d: %w", line+1, err))
		}
	}
}

// csvColumns are the columns a CSV import may have, named in its header
// line; only username is required. connector and subject give one link.
var csvColumns = []string{"username", "email", "email_verified", "name", "password_hash", "connector", "subject"}

// csvUsers reads a CSV file with a header line.
func csvUsers(r io.Reader) iter.Seq2[linking.ImportUser, error] {
	return func(yield func(linking.ImportUser, error) bool) {
		cr := csv.NewReader(r)
		header, err := cr.Read()
		if err != nil {
			yield(linking.ImportUser{}, fmt.Errorf("line 1: the header: %w", err))
			return
		}
		col := map[string]int{}
		for i, name := range header {
			name = strings.TrimSpace(strings.ToLower(name))
			if !slices.Contains(csvColumns, name) {
				yield(linking.ImportUser{}, fmt.Errorf("line 1: unknown column %q (known: %s)", name, strings.Join(csvColumns, ", ")))
				return
			}
			col[name] = i
		}
		if _, ok := col["username"]; !ok {
			yield(linking.ImportUser{}, errors.New("line 1: no username column"))
			return
		}
		for {
			rec, err := cr.Read()
			if errors.Is(err, io.EOF) {
				return
			}
			if err != nil {
				yield(linking.ImportUser{}, err) // csv.ParseError names the line
				return
			}
			line, _ := cr.FieldPos(0)
			get := func(name string) string {
				if i, ok := col[name]; ok {
					return rec[i]
				}
				return ""
			}
			u := linking.ImportUser{Line: line, Username: get("username"), Email: get("email"), Name: get("name"), PasswordHash: get("password_hash")}
			if v := get("email_verified"); v != "" {
				if u.EmailVerified, err = strconv.ParseBool(v); err != nil {
					yield(linking.ImportUser{}, fmt.Errorf("line %d: email_verified %q is not true or false", line, v))
					return
				}
			}
			if c, s := get("connector"), get("subject"); c != "" || s != "" {
				u.Links = []linking.ImportLink{{Connector: c, Subject: s}}
			}
			if !yield(u, nil) {
				return
			}
		}
	}
}

// knownConnectors refuses links to connectors the configuration does not
// have: a misspelt ID would make links that nobody can sign in through.
func knownConnectors(src iter.Seq2[linking.ImportUser, error], known []brokers.Connector) iter.Seq2[linking.ImportUser, error] {
	return func(yield func(linking.ImportUser, error) bool) {
		for u, err := range src {
			for _, l := range u.Links {
				if err == nil && l.Connector != "" && !slices.ContainsFunc(known, func(c brokers.Connector) bool { return c.ID == l.Connector }) {
					err = fmt.Errorf("line %d: connector %q is not configured", u.Line, l.Connector)
				}
			}
			if !yield(u, err) || err != nil {
				return
			}
		}
	}
}
