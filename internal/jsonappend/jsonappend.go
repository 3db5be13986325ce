package jsonappend

import (
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Object appends m as a JSON object with its keys sorted, as json.Marshal
// writes a map.
func Object(dst []byte, m map[string]any) ([]byte, error) {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	dst = append(dst, '{')
	for i, k := range keys {
		if i > 0 {
			dst = append(dst, ',')
		}
		dst = String(dst, k)
		dst = append(dst, ':')
		var err error
		if dst, err = value(dst, m[k]); err != nil {
			return nil, fmt.Errorf("json: claim %q: %w", k, err)
		}
	}
	return append(dst, '}'), nil
}

// value appends v: the common shapes directly, anything else through
// json.Marshal.
func value(dst []byte, v any) ([]byte, error) {
	switch v := v.(type) {
	case string:
		return String(dst, v), nil
	case int64:
		return strconv.AppendInt(dst, v, 10), nil
	case int:
		return strconv.AppendInt(dst, int64(v), 10), nil
	case bool:
		return strconv.AppendBool(dst, v), nil
	case nil:
		return append(dst, "null"...), nil
	case []string:
		if v == nil {
			return append(dst, "null"...), nil
		}
		dst = append(dst, '[')
		for i, s := range v {
			if i > 0 {
				dst = append(dst, ',')
			}
			dst = String(dst, s)
		}
		return append(dst, ']'), nil
	case map[string]any:
		if v == nil {
			return append(dst, "null"...), nil
		}
		return Object(dst, v)
	}
	raw, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	return append(dst, raw...), nil
}

// String appends s as a JSON string. Printable ASCII that needs no escape is
// copied; any other string is json.Marshal's, with its escapes (HTML's
// included) and its replacement of invalid UTF-8.
func String(dst []byte, s string) []byte {
	for i := 0; i < len(s); i++ {
		if !plain[s[i]] {
			raw, _ := json.Marshal(s) // a string always encodes
			return append(dst, raw...)
		}
	}
	dst = append(dst, '"')
	dst = append(dst, s...)
	return append(dst, '"')
}

// plain marks the bytes json.Marshal copies as they are: printable ASCII but
// the quote, the backslash and HTML's <, > and &.
var plain = func() (t [256]bool) {
	for c := 0x20; c < 0x7f; c++ {
		t[c] = !strings.ContainsRune(`"\<>&`, rune(c))
	}
	return t
}()
