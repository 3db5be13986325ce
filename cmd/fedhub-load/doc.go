// Command fedhub-load puts a bounded load on a running fedhub's token endpoint
// and prints throughput and latency, next to a baseline measured in the same
// run against the JWKS endpoint (HTTP and routing cost without signing or
// database work), so that figures from a noisy machine can still be compared.
//
//	fedhub-load -url http://127.0.0.1:8080 -client demo-app -secret demo-secret -c 8 -d 10s
package main
