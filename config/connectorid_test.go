package config

import (
	"strings"
	"testing"
)

func TestConnectorID(t *testing.T) {
	for id, want := range map[string]bool{
		"corp": true, "corp-ad_2": true, "0day": true, strings.Repeat("a", 64): true,
		"": false, "-corp": false, "_corp": false, "Corp": false, "corp ad": false, "corp.ad": false,
		"corpé": false, "é": false, strings.Repeat("a", 65): false,
	} {
		if got := connectorID(id); got != want {
			t.Errorf("connectorID(%q) = %v, want %v", id, got, want)
		}
	}
}
