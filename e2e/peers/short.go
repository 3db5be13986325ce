package peers

import "testing"

// SkipShort skips t under `go test -short`: it needs real peers or the real
// binary, which take minutes. Without -short nothing is skipped, so CI (which
// runs without it) still fails when a peer cannot start.
func SkipShort(t testing.TB) {
	t.Helper()
	if testing.Short() {
		t.Skip("needs real peers; runs without -short")
	}
}
