// Package manage serves the management endpoints — /healthz, /readyz and
// /metrics, and Go's runtime profiles under /debug/pprof/ when
// management.profiling is on — meant for a separate, private listener
// (management.listen), never the public one unless the operator configures
// it so (and then without the profiles).
package manage
