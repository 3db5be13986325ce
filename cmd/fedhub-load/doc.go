// Command fedhub-load puts a bounded load on a running fedhub's token endpoint
// and prints throughput and latency, next to a baseline measured in the same
// run against the JWKS endpoint (HTTP and routing cost without signing or
// database work), so that figures from a noisy machine can still be compared.
//
//	fedhub-load -url http://127.0.0.1:8080 -client demo-app -secret demo-secret -c 8 -d 10s
//
// With -soak it runs a soak of password logins instead, against a fedhub on
// this machine only (a loopback URL): good users sign in (the login form and
// the password grant, a typo now and then, another try after a 503) from
// loopback addresses of their own (127.0.0.11…), while -c attackers send
// wrong passwords as fast as they are answered from others (127.0.1.1…) —
// fedhub sees each as a client IP of its own. It stops after -d (10 minutes
// at most) or -n requests, and prints every answer by who asked and how,
// latencies, the good sign-ins refused with the right password (it exits 1
// if there was any), fedhub's memory (-pid) and its SQLite database's growth
// (-db):
//
//	fedhub-load -soak -d 60s -c 16 -good demo:demo -pid PID -db fedhub-demo.db
package main
