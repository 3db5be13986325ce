package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/dirsync"
)

// TestProgress: a bar redrawn in place on a terminal, plain lines elsewhere.
func TestProgress(t *testing.T) {
	for _, tc := range []struct {
		name     string
		terminal bool
		total    int
		want     []string
	}{
		{"pipe", false, 4000, []string{"progress: seen 1000, created 1000", "progress: seen 2000, created 1000, updated 5"}},
		{"terminal", true, 4000, []string{"\r\033[K[#######.......................] 1000/~4000 seen 1000", "\r\033[K[###############...............] 2000/~4000 seen 2000"}},
		{"terminal, first run", true, 0, []string{"\r\033[Kseen 1000, created 1000"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			p := newProgress(&out)
			p.terminal = tc.terminal
			p.show(dirsync.Counts{Seen: 1000, Created: 1000}, tc.total)
			p.show(dirsync.Counts{Seen: 2000, Created: 1000, Updated: 5}, tc.total)
			p.end()
			got := out.String()
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Errorf("output %q lacks %q", got, w)
				}
			}
			if !strings.HasSuffix(got, "\n") {
				t.Errorf("output %q: the last line is not ended", got)
			}
		})
	}
}
