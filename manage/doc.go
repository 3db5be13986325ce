// Package manage serves the management endpoints — /healthz, /readyz and
// /metrics — meant for a separate, private listener (management.listen), never
// the public one unless the operator configures it so.
package manage
