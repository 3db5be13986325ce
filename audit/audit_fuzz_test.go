package audit_test

import (
	"bytes"
	"encoding/csv"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/audit"
)

// formulaStart are the first characters that make a spreadsheet run a cell as
// a formula (OWASP "CSV Injection"): = + - @, a tab and a carriage return.
const formulaStart = "=+-@\t\r"

// FuzzWriteCSV: whatever the audit events hold, the export read back with
// encoding/csv is the header and one row of ten fields per event, each cell the
// event's value, and no cell starts like a formula unless it is the value
// behind the apostrophe WriteCSV puts in front of it.
func FuzzWriteCSV(f *testing.F) {
	for _, s := range []struct {
		typ, outcome, actor, userID, connector, clientID, ip, detail string
		unix                                                         int64
	}{
		// What the log really holds.
		{audit.LoginSucceeded, "success", "00000000-0000-4000-8000-000000000001", "00000000-0000-4000-8000-000000000001",
			"local", "app", "192.0.2.7", "", 1_700_000_000},
		{audit.LoginFailed, "failure", "", "", "corp-ldap", "app", "2001:db8::1", "invalid username or password", 1_700_000_001},
		{audit.GrantRevoked, "success", "app", "", "", "app", "", "grant Zm9vYmFy", 1_700_000_002},
		{audit.KeysRotated, "success", "cli", "", "", "", "", "", 0},
		// CSV injection: formulas, DDE, a leading tab or CR, quotes, separators.
		{"=cmd|' /C calc'!A0", "+1+1", "-2+3", "@SUM(1+1)*cmd|' /C calc'!A0", "\t=1+1", "\r=1+1", "=HYPERLINK(\"http://evil.example\")",
			"=1+1,\"\n=2+2", 1},
		{"a,b", "\"quoted\"", "line\nbreak", "cr\r\nlf", " =lead space", "'already quoted", "\\.", "", -62135596800},
		{"", "", "", "", "", "", "", "", -1},
		// Unicode look-alikes and invalid UTF-8.
		{"＝1+1", "\uff0b1", "\u200b=1+1", "\xff\xfe=", "é", "\x00", "\u2028", "\ufeff=1", 253402300799},
	} {
		f.Add(uint(7), s.unix, s.typ, s.outcome, s.actor, s.userID, s.connector, s.clientID, s.ip, s.detail)
	}
	f.Fuzz(func(t *testing.T, id uint, unix int64, typ, outcome, actor, userID, connector, clientID, ip, detail string) {
		ev := audit.Event{ID: id, Time: time.Unix(unix, 0), Type: typ, Outcome: outcome, Actor: actor, UserID: userID,
			Connector: connector, ClientID: clientID, IP: ip, Detail: detail}
		// Two events: the second one's fields swapped around, so that a field
		// ends up in every column.
		ev2 := audit.Event{ID: id / 2, Time: time.Unix(unix/3, 0), Type: detail, Outcome: ip, Actor: clientID, UserID: connector,
			Connector: userID, ClientID: actor, IP: outcome, Detail: typ}
		events := []audit.Event{ev, ev2}
		var buf bytes.Buffer
		if err := audit.WriteCSV(&buf, events); err != nil {
			// encoding/csv refuses nothing a string can hold; a failure here is
			// an export that breaks on some value.
			t.Fatalf("WriteCSV: %v", err)
		}
		r := csv.NewReader(bytes.NewReader(buf.Bytes()))
		r.FieldsPerRecord = 10
		rows, err := r.ReadAll()
		if err != nil {
			t.Fatalf("the export does not read back as CSV: %v\n%q", err, buf.String())
		}
		if len(rows) != 1+len(events) {
			t.Fatalf("%d rows read back, want a header and %d events:\n%q", len(rows), len(events), buf.String())
		}
		want := []string{"id", "time", "type", "outcome", "actor", "user_id", "connector", "client_id", "ip", "detail"}
		if strings.Join(rows[0], "\x00") != strings.Join(want, "\x00") {
			t.Fatalf("header %q", rows[0])
		}
		for i, e := range events {
			values := []string{strconv.FormatUint(uint64(e.ID), 10), e.Time.UTC().Format(time.RFC3339), e.Type, e.Outcome,
				e.Actor, e.UserID, e.Connector, e.ClientID, e.IP, e.Detail}
			for j, cell := range rows[i+1] {
				v := values[j]
				if cell != "" && strings.ContainsRune(formulaStart, rune(cell[0])) {
					t.Fatalf("row %d %s: cell %q starts like a formula (value %q)", i+1, want[j], cell, v)
				}
				// encoding/csv reads \r\n inside a quoted field as \n (RFC 4180
				// line breaks); anything else must come back as written.
				expect := v
				if v != "" && strings.ContainsRune(formulaStart, rune(v[0])) {
					expect = "'" + v
				}
				expect = strings.ReplaceAll(expect, "\r\n", "\n")
				if cell != expect {
					t.Fatalf("row %d %s: read back %q, want %q (value %q)", i+1, want[j], cell, expect, v)
				}
			}
		}
	})
}
