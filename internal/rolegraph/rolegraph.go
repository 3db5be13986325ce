package rolegraph

import "slices"

// Cycle returns a cycle of edges (each name → the names it points at: a
// group's parent, a role's included roles) as the names along it, first and
// last the same; nil when there is none. Names are visited in sorted order,
// so the same edges always give the same cycle.
func Cycle(edges map[string][]string) []string {
	const (
		unseen = iota
		open
		done
	)
	state := map[string]int{}
	var path []string
	var visit func(n string) []string
	visit = func(n string) []string {
		switch state[n] {
		case open:
			return append(slices.Clone(path[slices.Index(path, n):]), n)
		case done:
			return nil
		}
		state[n] = open
		path = append(path, n)
		for _, next := range edges[n] {
			if c := visit(next); c != nil {
				return c
			}
		}
		path = path[:len(path)-1]
		state[n] = done
		return nil
	}
	names := make([]string, 0, len(edges))
	for n := range edges {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if c := visit(n); c != nil {
			return c
		}
	}
	return nil
}

// Reach adds to into every name reachable from start through edges, start
// included. Edges must have no cycle.
func Reach(edges map[string][]string, start string, into map[string]bool) {
	if into[start] {
		return
	}
	into[start] = true
	for _, next := range edges[start] {
		Reach(edges, next, into)
	}
}
