package e2e

import "testing"

func TestSmokeLogin(t *testing.T) {
	s := Start(t)
	b := NewBrowser(t)
	got := b.Authorize(s, AuthParams(), "alice", alicePass)
	if got.Get("code") == "" || got.Get("iss") != s.URL {
		t.Fatalf("redirect params = %v", got)
	}
}
