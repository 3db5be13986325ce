package issuer

import (
	"bytes"
	"encoding/json"
	"testing"
)

// The token endpoint's answer is written without encoding/json: it must be
// what json.Marshal writes, omitted fields and escapes included.
func TestUnitTokenResponseJSON(t *testing.T) {
	for _, r := range []tokenResponse{
		{AccessToken: "eyJ.a.b", TokenType: "Bearer", ExpiresIn: 300},
		{AccessToken: "eyJ.a.b", TokenType: "Bearer", ExpiresIn: 300, RefreshToken: "r-_1", IDToken: "eyJ.c.d", Scope: "openid email"},
		{AccessToken: "a", TokenType: "N_A", ExpiresIn: -1, IssuedTokenType: "urn:ietf:params:oauth:token-type:access_token"},
		{AccessToken: `"<&>\`, TokenType: "Bearer", Scope: "é\u2028\x01\xff"},
		{},
	} {
		want, err := json.Marshal(&r)
		if err != nil {
			t.Fatal(err)
		}
		if got := r.appendJSON(nil); !bytes.Equal(got, want) {
			t.Errorf("got  %s\nwant %s", got, want)
		}
	}
}
