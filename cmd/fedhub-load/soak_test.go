package main

import (
	"testing"
	"time"
)

// The soak is a load: it must never be pointed at anything but this machine.
func TestSoakTargetsLoopbackOnly(t *testing.T) {
	for _, u := range []string{"http://127.0.0.1:8080", "http://127.9.9.9", "http://localhost:8080", "http://[::1]:8080"} {
		if err := loopbackOnly(u); err != nil {
			t.Errorf("loopbackOnly(%s) = %v, want nil", u, err)
		}
	}
	for _, u := range []string{"http://10.0.0.1:8080", "http://192.168.1.5", "https://example.com", "http://localhost.example.com", "http://0.0.0.0:8080", "::"} {
		if err := loopbackOnly(u); err == nil {
			t.Errorf("loopbackOnly(%s) = nil, want a refusal", u)
		}
		if err := soak(soakOptions{base: u, duration: time.Second, budget: 1, goodAddrs: 1, badAddrs: 1}); err == nil {
			t.Errorf("soak against %s ran", u)
		}
	}
}

func TestSoakBounds(t *testing.T) {
	for _, o := range []soakOptions{
		{duration: 11 * time.Minute, budget: 1, goodAddrs: 1, badAddrs: 1},
		{duration: 0, budget: 1, goodAddrs: 1, badAddrs: 1},
		{duration: time.Second, budget: 0, goodAddrs: 1, badAddrs: 1},
		{duration: time.Second, budget: 1, goodAddrs: 1, badAddrs: 1, badWorkers: 10000},
	} {
		o.base = "http://127.0.0.1:1"
		if err := soak(o); err == nil {
			t.Errorf("soak(%+v) ran", o)
		}
	}
}

func TestParseCredentials(t *testing.T) {
	got, err := parseCredentials("demo:demo, alice:pw:with:colons")
	if err != nil || len(got) != 2 || got[0] != (credential{"demo", "demo"}) || got[1] != (credential{"alice", "pw:with:colons"}) {
		t.Errorf("parseCredentials = %v, %v", got, err)
	}
	for _, bad := range []string{"", "demo", ":pw", "demo:"} {
		if _, err := parseCredentials(bad); err == nil {
			t.Errorf("parseCredentials(%q) accepted", bad)
		}
	}
}
