package requestid

import (
	"context"
	"crypto/rand"
)

// Header is the header the ID is read from and echoed in.
const Header = "X-Request-ID"

// MaxLen bounds an ID taken from a request: it is logged and stored.
const MaxLen = 64

// Valid reports whether id may be repeated in logs, audit events and pages:
// 1 to MaxLen characters from letters, digits and - _ . :
func Valid(id string) bool {
	if id == "" || len(id) > MaxLen {
		return false
	}
	for i := 0; i < len(id); i++ {
		switch c := id[i]; {
		case 'a' <= c && c <= 'z', 'A' <= c && c <= 'Z', '0' <= c && c <= '9', c == '-', c == '_', c == '.', c == ':':
		default:
			return false
		}
	}
	return true
}

// Of is the ID a request proposes in its header when it is valid, or a new one.
func Of(header string) string {
	if Valid(header) {
		return header
	}
	return rand.Text()
}

type key struct{}

// NewContext returns ctx carrying id.
func NewContext(ctx context.Context, id string) context.Context {
	return context.WithValue(ctx, key{}, id)
}

// From is the ID ctx carries, or "".
func From(ctx context.Context) string {
	id, _ := ctx.Value(key{}).(string)
	return id
}
