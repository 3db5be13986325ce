// Package peers starts real peer servers for tests.
//
// fedhub is tested against the servers it talks to in production, not against mocks. A peer
// that cannot be started is a test failure, never a skip: scripts/test installs everything the
// suite needs, so a missing peer means the machine was not set up by it. The one exception is
// `go test -short`, the quick in-process run: there every peer starter skips its test
// ([SkipShort]); without -short nothing skips.
//
// A test binary that uses peers should call [StopAll] from TestMain:
//
//	func TestMain(m *testing.M) {
//		code := m.Run()
//		peers.StopAll()
//		os.Exit(code)
//	}
package peers
