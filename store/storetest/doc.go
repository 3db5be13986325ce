// Package storetest runs storage tests against every database fedhub supports: an embedded
// SQLite file and a real PostgreSQL server (started by [peers.Postgres]). A PostgreSQL that
// cannot be reached fails the test; it is never skipped, except under `go test -short`, where
// the "postgres" subtests skip (peers.Postgres does) and the SQLite ones run.
//
// A test binary that uses this package must stop the peers it started from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		peers.StopAll()
//		os.Exit(code)
//	}
package storetest
