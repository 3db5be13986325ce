package issuer

import (
	"strings"
	"testing"
)

func TestPKCEChallenge(t *testing.T) {
	for s, want := range map[string]bool{
		"E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM": true, // RFC 7636 appendix B
		strings.Repeat("a", 43):                       true, strings.Repeat("Z9-._~", 21) + "ab": true,
		strings.Repeat("a", 42): false, strings.Repeat("a", 129): false, "": false,
		strings.Repeat("a", 42) + "=": false, strings.Repeat("a", 42) + "é": false, strings.Repeat("a", 42) + " ": false,
	} {
		if got := pkceChallenge(s); got != want {
			t.Errorf("pkceChallenge(%q) = %v, want %v", s, got, want)
		}
	}
}
