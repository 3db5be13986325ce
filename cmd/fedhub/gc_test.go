package main

import "testing"

func TestGCSettings(t *testing.T) {
	for _, c := range []struct {
		name        string
		env         map[string]string
		container   int64
		wantPercent int
		wantLimit   int64
	}{
		{"nothing set, no container limit", nil, 0, defaultGCPercent, defaultMemLimit},
		{"nothing set, a container of 1 GiB", nil, 1 << 30, defaultGCPercent, 768 << 20},
		{"GOGC set by the operator", map[string]string{"GOGC": "100"}, 0, -1, defaultMemLimit},
		{"GOGC=off with a GOMEMLIMIT", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, 1 << 30, -1, -1},
		{"GOMEMLIMIT set by the operator", map[string]string{"GOMEMLIMIT": "64MiB"}, 1 << 30, defaultGCPercent, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			percent, limit := gcSettings(func(k string) string { return c.env[k] }, c.container)
			if percent != c.wantPercent || limit != c.wantLimit {
				t.Errorf("gcSettings = %d, %d; want %d, %d", percent, limit, c.wantPercent, c.wantLimit)
			}
		})
	}
}
