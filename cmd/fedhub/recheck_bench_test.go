package main

import (
	"net/url"
	"testing"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/brokers/brokertest"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/login"
)

// BenchmarkRefreshRecheck: what the re-check after login costs a refresh, next
// to the refresh of a local account in the same run ("x-local"): through an
// upstream identity whose last yes still holds (the common case: one link
// read), and through one asked every time (a fake upstream that answers at
// once: the claim and the write of its yes).
//
//	go test -run '^$' -bench RefreshRecheck -benchtime 2000x ./cmd/fedhub/
func BenchmarkRefreshRecheck(b *testing.B) {
	const password = "upstream-Passw0rd!"
	create := firstlogin.Policy{OnNew: "create", MatchBy: "none", OnMatch: "confirm_and_reauthenticate"}
	upstream := func(id string, every time.Duration) (brokers.Connector, *brokertest.PasswordConnector) {
		dir := &brokertest.PasswordConnector{}
		dir.Set(id+"-user", password, login.Identity{Subject: id + "-subject"})
		return brokers.Connector{ID: id, Name: id, Enabled: true, Policy: create, MFA: "off", Impl: dir,
			Recheck: brokers.Recheck{Interval: every}}, dir
	}
	cached, _ := upstream("cached", time.Hour)
	asked, dir := upstream("asked", 0)
	s := startBench(b, "ES256", cached, asked)
	var localNs float64
	for _, c := range []struct{ name, username, password string }{
		{"local", "demo", "demo"}, {"upstream, yes cached", "cached-user", password}, {"upstream, asked every time", "asked-user", password},
	} {
		b.Run(c.name, func(b *testing.B) {
			first := s.token(b, url.Values{"grant_type": {"password"}, "username": {c.username}, "password": {c.password}, "scope": {"openid"}})
			refresh := first["refresh_token"].(string)
			before := len(dir.Asked())
			for b.Loop() {
				refresh = s.token(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})["refresh_token"].(string)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if c.name == "local" {
				localNs = ns
			} else if localNs > 0 {
				b.ReportMetric(ns/localNs, "x-local")
			}
			if c.name == "upstream, asked every time" && len(dir.Asked())-before < b.N {
				b.Fatalf("the upstream was asked %d times for %d refreshes", len(dir.Asked())-before, b.N)
			}
		})
	}
}
