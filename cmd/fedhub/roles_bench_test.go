package main

import (
	"context"
	"fmt"
	"net/url"
	"testing"

	"github.com/fedhub/fedhub/linking"
)

// BenchmarkRefreshRoles: what nested groups and composite roles cost a token,
// next to a refresh with no definitions at all in the same run ("x-flat"):
// 40 groups four deep, each carrying a role, 30 roles each including the
// next two, and a user in three of the deepest groups — 31 effective roles
// (with their own).
//
//	go test -run '^$' -bench RefreshRoles -benchtime 2000x ./cmd/fedhub/
func BenchmarkRefreshRoles(b *testing.B) {
	s := startBench(b, "ES256")
	ctx := context.Background()
	const password = "nested-Passw0rd!"
	if _, err := s.app.users.CreateUser(ctx, linking.NewUser{Username: "nested", Password: password,
		Groups: []string{"g-3-0", "g-3-5", "g-3-9"}, Roles: []string{"direct"}}); err != nil {
		b.Fatal(err)
	}
	define := func() {
		for i := 29; i >= 0; i-- {
			r := linking.Role{Name: fmt.Sprintf("r-%d", i)}
			for j := i + 1; j <= i+2 && j < 30; j++ {
				r.Includes = append(r.Includes, fmt.Sprintf("r-%d", j))
			}
			if err := s.app.users.SaveRole(ctx, r); err != nil {
				b.Fatal(err)
			}
		}
		for depth := range 4 {
			for i := range 10 {
				g := linking.Group{Name: fmt.Sprintf("g-%d-%d", depth, i), Roles: []string{fmt.Sprintf("r-%d", (depth*10+i)%30)}}
				if depth > 0 {
					g.Parent = fmt.Sprintf("g-%d-%d", depth-1, i)
				}
				if err := s.app.users.SaveGroup(ctx, g); err != nil {
					b.Fatal(err)
				}
			}
		}
	}
	var flatNs float64
	for _, c := range []struct {
		name   string
		before func()
		roles  int
	}{{"flat", func() {}, 1}, {"nested groups and composites", define, 31}} {
		b.Run(c.name, func(b *testing.B) {
			c.before()
			first := s.token(b, url.Values{"grant_type": {"password"}, "username": {"nested"}, "password": {password}, "scope": {"openid"}})
			refresh := first["refresh_token"].(string)
			for b.Loop() {
				refresh = s.token(b, url.Values{"grant_type": {"refresh_token"}, "refresh_token": {refresh}})["refresh_token"].(string)
			}
			ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
			if c.name == "flat" {
				flatNs = ns
			} else if flatNs > 0 {
				b.ReportMetric(ns/flatNs, "x-flat")
			}
			u, err := s.app.users.UserByUsername(ctx, "nested")
			if err != nil {
				b.Fatal(err)
			}
			if len(u.Roles) != c.roles {
				b.Fatalf("the user has %d effective roles, want %d: %v", len(u.Roles), c.roles, u.Roles)
			}
		})
	}
}
