package main

import (
	"bytes"
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store"
)

// TestUsersImport runs `fedhub users import` on JSON lines and CSV files:
// good files create their users and links; a bad line anywhere names its
// line and imports nothing.
func TestUsersImport(t *testing.T) {
	dir := t.TempDir()
	db := filepath.Join(dir, "fedhub.db")
	conf := filepath.Join(dir, "fedhub.yaml")
	yaml := fmt.Sprintf(`issuer: http://127.0.0.1:8080
storage: {driver: sqlite, dsn: %s}
connectors:
  - id: corp
    type: ldap
    ldap: {urls: ["ldap://127.0.0.1:1"], insecure: true, user_base: "dc=example,dc=com"}
`, db)
	if err := os.WriteFile(conf, []byte(yaml), 0o600); err != nil {
		t.Fatal(err)
	}
	hash, err := linking.HashPassword("a password for the tests")
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	importFile := func(name, content string) (string, error) {
		path := filepath.Join(dir, name)
		if err := os.WriteFile(path, []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		var out bytes.Buffer
		err := run(ctx, []string{"users", "import", "-c", conf, "--file", path}, strings.NewReader(""), &out, io.Discard)
		return out.String(), err
	}
	users := func() int64 {
		s, err := store.Open(ctx, config.Storage{Driver: "sqlite", DSN: db})
		if err != nil {
			t.Fatal(err)
		}
		defer store.Close(s)
		var n int64
		if err := s.Model(&linking.User{}).Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}

	out, err := importFile("users.jsonl", `{"username": "ann", "email": "ann@example.com", "email_verified": true, "name": "Ann", "password_hash": "`+hash+`"}

{"username": "bob", "links": [{"connector": "corp", "subject": "S-bob", "username": "bob.c"}]}
`)
	if err != nil || !strings.Contains(out, "imported 2 users") {
		t.Fatalf("JSON lines: %q, %v", out, err)
	}
	out, err = importFile("users.csv", "username,email,email_verified,connector,subject\ncat,cat@example.com,true,corp,S-cat\ndan,,,,\n")
	if err != nil || !strings.Contains(out, "imported 2 users") {
		t.Fatalf("CSV: %q, %v", out, err)
	}
	if n := users(); n != 4 {
		t.Fatalf("%d users after the imports, want 4", n)
	}

	for _, tc := range []struct{ name, file, content, want string }{
		{"a connector not configured", "bad.jsonl", `{"username": "eve"}` + "\n" + `{"username": "fay", "links": [{"connector": "corq", "subject": "S"}]}`,
			`line 2: connector "corq" is not configured`},
		{"not JSON", "bad.jsonl", `{"username": "eve"}` + "\n\n" + `{"username": "fay",` + "\n", "line 3: unexpected EOF"},
		{"a misspelt field", "bad.jsonl", `{"username": "eve", "emial": "e@example.com"}`, `line 1: json: unknown field "emial"`},
		{"a taken username", "bad.jsonl", `{"username": "eve"}` + "\n" + `{"username": "ANN"}`, `line 2: username "ann": username is taken`},
		{"a linked subject", "bad.csv", "username,connector,subject\neve,corp,S-new\nfay,corp,S-bob\n", `line 3: corp subject "S-bob": upstream identity is linked`},
		{"a CSV boolean", "bad.csv", "username,email_verified\neve,yes please\n", `line 2: email_verified "yes please" is not true or false`},
		{"an unknown CSV column", "bad.csv", "username,mail\neve,e@example.com\n", `line 1: unknown column "mail"`},
		{"a broken CSV line", "bad.csv", "username,email\neve,e@example.com\n\"fay,\n", "line 3"},
		{"another format", "bad.txt", "eve\n", "give a .jsonl or .csv file"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, err := importFile(tc.file, tc.content)
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("import = %q, %v; want an error with %q", out, err, tc.want)
			}
			if n := users(); n != 4 {
				t.Errorf("%d users after a refused import, want the 4 from before", n)
			}
		})
	}
}
