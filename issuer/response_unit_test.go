package issuer

import (
	"bytes"
	"encoding/json"
	"reflect"
	"testing"
)

// The token endpoint's answer is written without encoding/json: it must be
// what json.Marshal writes, omitted fields and escapes included, and a
// field added to the answer must be added to appendJSON too.
func TestUnitTokenResponseJSON(t *testing.T) {
	var every tokenResponse // each field set, whatever fields there are
	for i, v := 0, reflect.ValueOf(&every).Elem(); i < v.NumField(); i++ {
		switch f := v.Field(i); f.Kind() {
		case reflect.String:
			f.SetString(v.Type().Field(i).Name)
		case reflect.Int64:
			f.SetInt(int64(i + 1))
		default:
			t.Fatalf("tokenResponse.%s: a %s, which this test cannot set", v.Type().Field(i).Name, f.Kind())
		}
	}
	for _, r := range []tokenResponse{
		every,
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
