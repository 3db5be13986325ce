// Package loadgen runs a bounded load — an operation repeated by several
// workers for a while — and summarises it as throughput and latency
// percentiles. fedhub-load drives a running fedhub with it; the performance
// targets test (cmd/fedhub) drives an in-process one, so both measure alike.
package loadgen
