package main

import (
	"fmt"
	"io"
	"runtime/debug"
)

// version is what `fedhub version` prints: the module version, and the
// commit and its date as the Go toolchain stamped them (go build in a git
// checkout; -buildvcs=false or a source archive leaves them "unknown").
func version(info *debug.BuildInfo, ok bool) string {
	mod, commit, date, modified := "unknown", "unknown", "unknown", ""
	goVersion := "unknown"
	if ok {
		mod, goVersion = info.Main.Version, info.GoVersion
		for _, s := range info.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				date = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					modified = " (with uncommitted changes)"
				}
			}
		}
	}
	return fmt.Sprintf("fedhub %s\ncommit: %s%s\ncommit date: %s\ngo: %s\n", mod, commit, modified, date, goVersion)
}

func printVersion(w io.Writer) {
	fmt.Fprint(w, version(debug.ReadBuildInfo()))
}
