package requestid

import (
	"context"
	"strings"
	"testing"
)

func TestOf(t *testing.T) {
	cases := []struct {
		name, header string
		kept         bool
	}{
		{"a proxy's UUID", "3f2b8c1e-9a4d-4f7e-8c21-0d5e6f7a8b9c", true},
		{"dots, colons, underscores", "lb-1:req_42.7", true},
		{"longest allowed", strings.Repeat("a", MaxLen), true},
		{"too long", strings.Repeat("a", MaxLen+1), false},
		{"empty", "", false},
		{"a newline (log injection)", "abc\nlevel=ERROR", false},
		{"spaces", "abc def", false},
		{"markup", "<script>", false},
		{"non-ASCII", "idé", false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Of(c.header)
			if kept := got == c.header; kept != c.kept {
				t.Errorf("Of(%q) = %q, kept %v; want kept %v", c.header, got, kept, c.kept)
			}
			if !Valid(got) {
				t.Errorf("Of(%q) = %q, which is not valid", c.header, got)
			}
		})
	}
	if a, b := Of(""), Of(""); a == b {
		t.Errorf("two generated IDs are equal: %q", a)
	}
}

func TestContext(t *testing.T) {
	if got := From(context.Background()); got != "" {
		t.Errorf("From(empty context) = %q, want \"\"", got)
	}
	if got := From(NewContext(context.Background(), "abc")); got != "abc" {
		t.Errorf("From = %q, want abc", got)
	}
}
