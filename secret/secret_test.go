package secret_test

import (
	"encoding/base64"
	"go/ast"
	"go/parser"
	"go/token"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/secret"
)

func TestToken(t *testing.T) {
	// RFC 6749 Appendix A.17 (refresh_token) and A.11 (code) allow VSCHAR; base64url's
	// alphabet is well inside it and needs no escaping in URLs or forms.
	isTokenChar := func(r rune) bool {
		return r >= 'A' && r <= 'Z' || r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_'
	}
	for _, n := range []int{16, 24, 32} {
		seen := map[string]bool{}
		for range 500 {
			tok := secret.Token(n)
			if want := base64.RawURLEncoding.EncodedLen(n); len(tok) != want {
				t.Fatalf("Token(%d) = %q: length %d, want %d", n, tok, len(tok), want)
			}
			for _, r := range tok {
				if !isTokenChar(r) {
					t.Fatalf("Token(%d) = %q: character %q is outside [A-Za-z0-9_-]", n, tok, r)
				}
			}
			if b, err := base64.RawURLEncoding.DecodeString(tok); err != nil || len(b) != n {
				t.Fatalf("Token(%d) = %q decodes to %d bytes (%v)", n, tok, len(b), err)
			}
			if seen[tok] {
				t.Fatalf("Token(%d) repeated %q", n, tok)
			}
			seen[tok] = true
		}
	}
}

func TestHash(t *testing.T) {
	// SHA-256 of "abc" (FIPS 180-2 appendix B.1), in hex.
	if got := secret.Hash("abc"); got != "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad" {
		t.Fatalf("Hash(abc) = %s", got)
	}
}

// TestCallersAskFor128Bits: every secret fedhub mints carries at least 128
// bits — every call of secret.Token in the code asks for at least 16 bytes.
// The one exception is a signing key's ID (the JWK "kid"), which is public and
// only needs to be unique.
func TestCallersAskFor128Bits(t *testing.T) {
	files, err := filepath.Glob("../*/*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	calls := 0
	for _, name := range files {
		if strings.HasSuffix(name, "_test.go") {
			continue
		}
		f, err := parser.ParseFile(fset, name, nil, 0)
		if err != nil {
			t.Fatal(err)
		}
		kid := map[ast.Expr]bool{} // SigningKey{ID: …} values
		ast.Inspect(f, func(n ast.Node) bool {
			if lit, ok := n.(*ast.CompositeLit); ok {
				if id, ok := lit.Type.(*ast.Ident); ok && id.Name == "SigningKey" {
					for _, elt := range lit.Elts {
						if kv, ok := elt.(*ast.KeyValueExpr); ok {
							if k, ok := kv.Key.(*ast.Ident); ok && k.Name == "ID" {
								kid[kv.Value] = true
							}
						}
					}
				}
			}
			call, ok := n.(*ast.CallExpr)
			if !ok {
				return true
			}
			sel, ok := call.Fun.(*ast.SelectorExpr)
			if !ok || sel.Sel.Name != "Token" {
				return true
			}
			if pkg, ok := sel.X.(*ast.Ident); !ok || pkg.Name != "secret" {
				return true
			}
			calls++
			lit, ok := call.Args[0].(*ast.BasicLit)
			if !ok || lit.Kind != token.INT {
				t.Errorf("%s: secret.Token with a non-constant size", fset.Position(call.Pos()))
				return true
			}
			if n, _ := strconv.Atoi(lit.Value); n < 16 && !kid[call] {
				t.Errorf("%s: secret.Token(%d) has fewer than 128 bits", fset.Position(call.Pos()), n)
			}
			return true
		})
	}
	if calls < 10 {
		t.Errorf("found only %d calls of secret.Token: is the source walk broken?", calls)
	}
}
