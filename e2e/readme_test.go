package e2e

import (
	"fmt"
	"net/url"
	"os"
	"os/exec"
	"regexp"
	"strings"
	"testing"
)

// fence is a fenced block of the README: its language and its text.
var fence = regexp.MustCompile("(?s)```(\\w*)\\n(.*?)```")

// TestREADMEWalkthrough runs the README's walk-through with curl as written,
// against the demo: the shell blocks in order, in one shell, with the demo's
// address for 127.0.0.1:8080 and, for THE_CODE, the code of the browser login
// the walk-through asks for, done at the URL it gives.
func TestREADMEWalkthrough(t *testing.T) {
	for _, tool := range []string{"bash", "curl", "jq"} {
		if _, err := exec.LookPath(tool); err != nil {
			t.Fatalf("%s is not installed: run the tests with scripts/test, which installs it", tool)
		}
	}
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	text := string(raw)
	start := strings.Index(text, "## A walk-through with curl")
	end := start + 1 + strings.Index(text[start+1:], "\n## ")
	if start < 0 || end <= start {
		t.Fatal("the README has no section \"A walk-through with curl\"")
	}
	d := startDemo(t)
	here := func(s string) string { return strings.ReplaceAll(s, "http://127.0.0.1:8080", d.URL) }

	script := "set -euo pipefail\n"
	var blocks int
	var code string
	for _, m := range fence.FindAllStringSubmatch(text[start:end], -1) {
		switch m[1] {
		case "sh":
			script += fmt.Sprintf("echo '@@ block %d'\n%s", blocks, here(m[2]))
			blocks++
		case "":
			u, err := url.Parse(strings.TrimSpace(here(m[2])))
			if err != nil || u.Path != "/authorize" {
				t.Fatalf("the walk-through's plain block is not the authorization URL: %q", m[2])
			}
			got := ocAuthorizeRaw(t, &Server{URL: d.URL}, NewBrowser(t), u.RawQuery, u.Query().Get("redirect_uri"), "demo", "demo")
			code = got.Get("code")
		}
	}
	if code == "" {
		t.Fatal("the walk-through shows no authorization URL")
	}
	script = strings.ReplaceAll(script, "THE_CODE", code)
	// The variables the walk-through sets hold tokens, not jq's null.
	script += `for v in ACCESS_TOKEN REFRESH_TOKEN; do [[ -n ${!v} && ${!v} != null ]] || { echo "$v is not set"; exit 1; }; done` + "\n"
	out, err := exec.Command("bash", "-c", script).CombinedOutput()
	if err != nil {
		t.Fatalf("the walk-through failed (%v):\n%s", err, out)
	}
	outs := strings.Split(string(out), "@@ block ")[1:]
	if len(outs) != blocks {
		t.Fatalf("%d blocks ran, want %d:\n%s", len(outs), blocks, out)
	}
	// What each block must print, by its position in the walk-through.
	wants := [][]string{{`"access_token"`}, {}, {`"preferred_username":"demo"`, `"active":true`}, {`"preferred_username":"demo"`}}
	if len(wants) != blocks {
		t.Fatalf("the walk-through has %d shell blocks; this test knows %d: update it", blocks, len(wants))
	}
	for i, o := range outs {
		for _, w := range wants[i] {
			if !strings.Contains(o, w) {
				t.Errorf("block %d printed no %s:\n%s", i, w, o)
			}
		}
		if strings.Contains(o, `"error"`) || strings.Contains(o, "null") {
			t.Errorf("block %d printed an error:\n%s", i, o)
		}
	}
}
