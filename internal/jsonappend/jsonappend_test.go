package jsonappend

import (
	"bytes"
	"encoding/json"
	"math"
	"testing"
	"time"
)

type named string

func TestObjectIsJSONMarshal(t *testing.T) {
	tests := []struct {
		name string
		m    map[string]any
	}{
		{"empty", map[string]any{}},
		{"access token", map[string]any{"iss": "https://id.example.com", "sub": "c1", "aud": []string{"api", "c1"},
			"iat": int64(1764567890), "exp": int64(1764568190), "jti": "AbC-_09", "scope": "openid profile"}},
		{"keys sorted bytewise", map[string]any{"b": 1, "B": 2, "a": 3, "é": 4, "_": 5}},
		{"escapes", map[string]any{"q": `say "hi"`, "bs": `a\b`, "ctl": "a\nb\tc\x00", "html": "<a href='x'>&</a>", "k\"ey": true}},
		{"unicode", map[string]any{"name": "Zoë Ångström", "cjk": "山田", "sep": "a\u2028b\u2029c", "emoji": "😀"}},
		{"invalid utf-8", map[string]any{"bad": "a\xffb", "cut": "\xe2\x82"}},
		{"nested and other shapes", map[string]any{"m": map[string]any{"z": []any{1.5, "x", nil}, "a": false}, "f": 0.000001,
			"big": 1e21, "n": nil, "nilList": []string(nil), "nilMap": map[string]any(nil), "list": []string{}, "num": json.Number("12"),
			"named": named("x"), "time": time.Date(2026, 12, 1, 0, 0, 0, 0, time.UTC), "raw": json.RawMessage(`{"a":1}`), "i": -7}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			want, err := json.Marshal(tt.m)
			if err != nil {
				t.Fatal(err)
			}
			got, err := Object([]byte("prefix:"), tt.m)
			if err != nil {
				t.Fatal(err)
			}
			if !bytes.Equal(got, append([]byte("prefix:"), want...)) {
				t.Errorf("got  %s\nwant prefix:%s", got, want)
			}
		})
	}
}

func TestObjectRefusesWhatJSONRefuses(t *testing.T) {
	for _, v := range []any{math.NaN(), math.Inf(1), map[string]any{"in": func() {}}, make(chan int)} {
		if _, err := Object(nil, map[string]any{"bad": v}); err == nil {
			t.Errorf("%T: no error", v)
		}
	}
}

func FuzzString(f *testing.F) {
	for _, s := range []string{"", "plain", `"`, `\`, "<>&", "\x7f", "\u2028", "\xff", "é", "\x00"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		want, _ := json.Marshal(map[string]any{s: s, "list": []string{s, s}})
		got, err := Object(nil, map[string]any{s: s, "list": []string{s, s}})
		if err != nil || !bytes.Equal(got, want) {
			t.Fatalf("%q: got %s (%v), want %s", s, got, err, want)
		}
	})
}

// BenchmarkObject: an access token's claims, by json.Marshal and by Object in
// the same run; "x-json" is Object's time as a fraction of json.Marshal's.
//
//	go test -run '^$' -bench Object -count 3 ./internal/jsonappend/
func BenchmarkObject(b *testing.B) {
	claims := map[string]any{"iss": "https://id.example.com", "sub": "demo-app", "aud": "demo-app", "client_id": "demo-app",
		"iat": int64(1764567890), "exp": int64(1764568190), "jti": "AbCdEfGhIjKlMnOpQrStUv", "scope": "openid"}
	var jsonNs float64
	b.Run("json.Marshal", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := json.Marshal(claims); err != nil {
				b.Fatal(err)
			}
		}
		jsonNs = float64(b.Elapsed().Nanoseconds()) / float64(b.N)
	})
	b.Run("Object", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			if _, err := Object(make([]byte, 0, 384), claims); err != nil {
				b.Fatal(err)
			}
		}
		if jsonNs > 0 {
			b.ReportMetric(float64(b.Elapsed().Nanoseconds())/float64(b.N)/jsonNs, "x-json")
		}
	})
}
