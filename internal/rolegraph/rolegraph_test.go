package rolegraph

import (
	"maps"
	"slices"
	"testing"
)

func TestCycle(t *testing.T) {
	for _, tc := range []struct {
		name  string
		edges map[string][]string
		want  []string
	}{
		{"none", map[string][]string{"a": {"b"}, "b": {"c"}, "d": {"b"}}, nil},
		{"self", map[string][]string{"a": {"a"}}, []string{"a", "a"}},
		{"three", map[string][]string{"x": {"a"}, "a": {"b"}, "b": {"c"}, "c": {"a"}}, []string{"a", "b", "c", "a"}},
		{"diamond is no cycle", map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}}, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if got := Cycle(tc.edges); !slices.Equal(got, tc.want) {
				t.Errorf("Cycle = %v, want %v", got, tc.want)
			}
		})
	}
}

func TestReach(t *testing.T) {
	edges := map[string][]string{"a": {"b", "c"}, "b": {"d"}, "c": {"d"}}
	got := map[string]bool{}
	Reach(edges, "a", got)
	if keys := slices.Sorted(maps.Keys(got)); !slices.Equal(keys, []string{"a", "b", "c", "d"}) {
		t.Errorf("Reach(a) = %v", keys)
	}
}
