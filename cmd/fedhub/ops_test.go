package main

import (
	"bytes"
	"encoding/json"
	"log/slog"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/config"
)

func TestNewLogger(t *testing.T) {
	cases := []struct {
		format, level string
		json          bool
		lines         int // of one debug, one info and one warn
	}{
		{"text", "info", false, 2},
		{"json", "debug", true, 3},
		{"json", "warn", true, 1},
		{"text", "error", false, 0},
	}
	for _, c := range cases {
		t.Run(c.format+" "+c.level, func(t *testing.T) {
			var out bytes.Buffer
			level := new(slog.LevelVar)
			log := newLogger(&out, config.Log{Format: c.format, Level: c.level}, level)
			log.Debug("d")
			log.Info("i")
			log.Warn("w")
			lines := strings.Split(strings.TrimSpace(out.String()), "\n")
			if out.Len() == 0 {
				lines = nil
			}
			if len(lines) != c.lines {
				t.Fatalf("%d lines, want %d:\n%s", len(lines), c.lines, out.String())
			}
			for _, l := range lines {
				if json.Valid([]byte(l)) != c.json {
					t.Errorf("line %q: JSON %v, want %v", l, !c.json, c.json)
				}
			}
			level.Set(slog.LevelDebug) // a reload
			out.Reset()
			log.Debug("d")
			if out.Len() == 0 {
				t.Errorf("the level set after start is not applied")
			}
		})
	}
}
