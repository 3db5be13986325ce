package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/fedhub/fedhub/dirsync"
)

// connectorsSync runs one connector's directory sync now, showing its progress.
func connectorsSync(ctx context.Context, args []string, stdout io.Writer) error {
	var id string
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		id, args = args[0], args[1:]
	}
	return withApp(ctx, "connectors sync", args, nil, func(a *app) error {
		if id == "" {
			return errors.New("give the connector: fedhub connectors sync ID")
		}
		bar := newProgress(stdout)
		counts, err := a.sync.Run(ctx, id, "cli", bar.show)
		bar.end()
		if errors.Is(err, dirsync.ErrBusy) {
			return fmt.Errorf("connector %s: %w (on this or another node); try again when it ends", id, err)
		}
		if err != nil {
			return fmt.Errorf("connector %s: %w", id, err)
		}
		st, err := a.sync.State(ctx, id)
		if err != nil {
			return err
		}
		kind := "incremental"
		if st.Full {
			kind = "full"
		}
		fmt.Fprintf(stdout, "%s: %s sync done: %s\n", id, kind, counts)
		return nil
	})
}

// progress shows a sync's progress: a bar redrawn in place on a terminal,
// a line per page elsewhere (a log, a pipe).
type progress struct {
	w        io.Writer
	terminal bool
	drawn    bool
}

func newProgress(w io.Writer) *progress {
	f, ok := w.(*os.File)
	if !ok {
		return &progress{w: w}
	}
	info, err := f.Stat()
	return &progress{w: w, terminal: err == nil && info.Mode()&os.ModeCharDevice != 0}
}

// barWidth is the bar's length in characters.
const barWidth = 30

// show draws the counts so far; total is the last complete run's (0: unknown).
func (p *progress) show(c dirsync.Counts, total int) {
	if !p.terminal {
		fmt.Fprintf(p.w, "progress: %s\n", c)
		return
	}
	bar := ""
	if total > 0 {
		done := min(barWidth, c.Seen*barWidth/total)
		bar = "[" + strings.Repeat("#", done) + strings.Repeat(".", barWidth-done) + "] " +
			fmt.Sprintf("%d/~%d ", c.Seen, total)
	}
	fmt.Fprintf(p.w, "\r\033[K%s%s", bar, c)
	p.drawn = true
}

// end leaves the bar's line.
func (p *progress) end() {
	if p.drawn {
		fmt.Fprintln(p.w)
	}
}
