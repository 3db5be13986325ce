// Package rolegraph answers the two questions both the configuration and the
// stored definitions ask of group nesting and composite roles: is there a
// cycle, and what does a name reach.
package rolegraph
