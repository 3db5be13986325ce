package requestid

import (
	"bytes"
	"context"
	"encoding/json"
	"log/slog"
	"testing"
)

func TestLogHandler(t *testing.T) {
	withID := NewContext(context.Background(), "req-1")
	cases := []struct {
		what string
		log  func(*slog.Logger)
		want any // the line's request_id; nil: none
	}{
		{"a line logged with the request's context", func(l *slog.Logger) { l.WarnContext(withID, "refused") }, "req-1"},
		{"a logger with attributes", func(l *slog.Logger) { l.With("connector", "ad").InfoContext(withID, "bind") }, "req-1"},
		{"a line without a context", func(l *slog.Logger) { l.Warn("refused") }, nil},
		{"a context without an ID", func(l *slog.Logger) { l.InfoContext(context.Background(), "started") }, nil},
		{"a line that names its own ID", func(l *slog.Logger) { l.InfoContext(withID, "request", LogAttr, "own") }, "own"},
	}
	for _, tc := range cases {
		var buf bytes.Buffer
		tc.log(slog.New(LogHandler(slog.NewJSONHandler(&buf, nil))))
		var line map[string]any
		if err := json.Unmarshal(buf.Bytes(), &line); err != nil {
			t.Fatalf("%s: %v: %s", tc.what, err, buf.String())
		}
		if line[LogAttr] != tc.want {
			t.Errorf("%s: request_id = %v, want %v in %s", tc.what, line[LogAttr], tc.want, buf.String())
		}
		if n := bytes.Count(buf.Bytes(), []byte(`"`+LogAttr+`"`)); tc.want != nil && n != 1 {
			t.Errorf("%s: request_id %d times in %s", tc.what, n, buf.String())
		}
	}
}
