package main

import "testing"

func TestGCSettings(t *testing.T) {
	const mib = 1 << 20
	hashes := int64(38 * mib) // two argon2id checks at once
	for _, c := range []struct {
		name        string
		env         map[string]string
		container   int64
		wantPercent int
		wantLimit   int64
	}{
		{"nothing set, no container limit", nil, 0, defaultGCPercent, 4 * hashes},
		{"nothing set, a large container", nil, 1 << 30, defaultGCPercent, 4 * hashes},
		{"nothing set, a small container", nil, 128 * mib, defaultGCPercent, 96 * mib},
		{"GOGC set by the operator", map[string]string{"GOGC": "100"}, 0, -1, 4 * hashes},
		{"GOGC=off with a GOMEMLIMIT", map[string]string{"GOGC": "off", "GOMEMLIMIT": "1GiB"}, 1 << 30, -1, -1},
		{"GOMEMLIMIT set by the operator", map[string]string{"GOMEMLIMIT": "64MiB"}, 1 << 30, defaultGCPercent, -1},
	} {
		t.Run(c.name, func(t *testing.T) {
			percent, limit := gcSettings(func(k string) string { return c.env[k] }, c.container, hashes)
			if percent != c.wantPercent || limit != c.wantLimit {
				t.Errorf("gcSettings = %d, %d; want %d, %d", percent, limit, c.wantPercent, c.wantLimit)
			}
		})
	}
}
