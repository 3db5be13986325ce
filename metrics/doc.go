// Package metrics holds fedhub's Prometheus metrics, in a registry of its own
// (never the global one, which any imported library may write to), and the
// recorders the other packages report to.
package metrics
