// Package e2e holds fedhub's end-to-end tests. They build the real binary, run
// it with a configuration on a loopback port, and drive it over HTTP the way
// relying parties and browsers do, against real peers (see package peers).
package e2e
