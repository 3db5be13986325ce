package linking

import (
	"fmt"
	"testing"
)

// BenchmarkEffective is the in-memory part a token adds to the query of
// before: expanding a user's three groups (four deep, 40 in all) and 30
// composite roles into their 31 effective roles. BenchmarkUserRoles has the
// whole read, whose noise on a shared machine hides this.
func BenchmarkEffective(b *testing.B) {
	var d Definitions
	for i := range 30 {
		r := Role{Name: fmt.Sprintf("r-%d", i)}
		for j := i + 1; j <= i+2 && j < 30; j++ {
			r.Includes = append(r.Includes, fmt.Sprintf("r-%d", j))
		}
		d.Roles = append(d.Roles, r)
	}
	for depth := range 4 {
		for i := range 10 {
			g := Group{Name: fmt.Sprintf("g-%d-%d", depth, i), Roles: []string{fmt.Sprintf("r-%d", (depth*10+i)%30)}}
			if depth > 0 {
				g.Parent = fmt.Sprintf("g-%d-%d", depth-1, i)
			}
			d.Groups = append(d.Groups, g)
		}
	}
	g := newGraph(d)
	g.expand()
	for b.Loop() {
		if roles, _ := g.effective([]string{"direct"}, []string{"g-3-0", "g-3-5", "g-3-9"}); len(roles) != 31 {
			b.Fatalf("%d roles, want 31", len(roles))
		}
	}
}
