package linking_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store/storetest"
)

// BenchmarkUserRoles: reading a user with their effective roles, as every
// token does, without definitions ("flat": the query of before, plus a
// look-up in the cached definitions) and with 40 groups four deep and 30
// composite roles, on each database; "x-flat" is the ratio in the same run.
//
//	go test -run '^$' -bench UserRoles ./linking/
func BenchmarkUserRoles(b *testing.B) {
	ctx := context.Background()
	for _, driver := range storetest.Drivers {
		b.Run(driver, func(b *testing.B) {
			s := linking.New(storetest.Open(b, driver, linking.Models()...), time.Now)
			u, err := s.CreateUser(ctx, linking.NewUser{Username: "nested", Roles: []string{"direct"},
				Groups: []string{"g-3-0", "g-3-5", "g-3-9"}})
			if err != nil {
				b.Fatal(err)
			}
			var flatNs float64
			for _, c := range []struct {
				name   string
				define bool
				roles  int
			}{{"flat", false, 1}, {"nested", true, 31}} {
				b.Run(c.name, func(b *testing.B) {
					if c.define {
						defineNested(ctx, b, s)
					}
					for b.Loop() {
						got, err := s.UserByID(ctx, u.ID)
						if err != nil {
							b.Fatal(err)
						}
						if len(got.Roles) != c.roles {
							b.Fatalf("%d effective roles, want %d", len(got.Roles), c.roles)
						}
					}
					ns := float64(b.Elapsed().Nanoseconds()) / float64(b.N)
					if c.name == "flat" {
						flatNs = ns
					} else if flatNs > 0 {
						b.ReportMetric(ns/flatNs, "x-flat")
					}
				})
			}
		})
	}
}

// defineNested defines roles r-0…r-29, each including the next two, and
// groups g-<depth>-<i> four deep, each carrying one of them.
func defineNested(ctx context.Context, b *testing.B, s *linking.Service) {
	b.Helper()
	for i := 29; i >= 0; i-- {
		r := linking.Role{Name: fmt.Sprintf("r-%d", i)}
		for j := i + 1; j <= i+2 && j < 30; j++ {
			r.Includes = append(r.Includes, fmt.Sprintf("r-%d", j))
		}
		if err := s.SaveRole(ctx, r); err != nil {
			b.Fatal(err)
		}
	}
	for depth := range 4 {
		for i := range 10 {
			g := linking.Group{Name: fmt.Sprintf("g-%d-%d", depth, i), Roles: []string{fmt.Sprintf("r-%d", (depth*10+i)%30)}}
			if depth > 0 {
				g.Parent = fmt.Sprintf("g-%d-%d", depth-1, i)
			}
			if err := s.SaveGroup(ctx, g); err != nil {
				b.Fatal(err)
			}
		}
	}
}
