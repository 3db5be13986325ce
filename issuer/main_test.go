package issuer

import (
	"os"
	"testing"

	"github.com/fedhub/fedhub/e2e/peers"
)

// TestMain stops the PostgreSQL server the tests share once they all ran
// (see storetest): a test that stopped it would leave the next without one.
func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}
