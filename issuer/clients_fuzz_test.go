package issuer

import (
	"net"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// FuzzRedirectURI: a redirect URI that matchURI accepts is one of the
// registered URIs, or an http URI on the same loopback IP literal as one of
// them that differs from it only in the port (RFC 8252 §7.3). The second case
// is checked here by an independent reading: the authority is "IP" or
// "[IPv6]" with an optional :digits port, the IP is a loopback address, and
// with the ports cut out both strings are equal; parsed with net/url (what an
// HTTP redirect to it would use), the URI has the registration's host name,
// path, query and no user info or fragment.
func FuzzRedirectURI(f *testing.F) {
	registered := []string{
		"https://app.example.com/cb",
		"https://app.example.com:8443/cb?tenant=a",
		"http://127.0.0.1:8080/callback",
		"http://127.0.0.1/no-port",
		"http://[::1]:9000/cb",
		"http://[::1]/v6-no-port",
		"http://localhost:7000/cb",
		"https://127.0.0.1:8443/tls",
		"com.example.app:/oauth2redirect",
	}
	for _, s := range []struct{ reg, uri string }{
		{registered[0], "https://app.example.com/cb"},
		{registered[2], "http://127.0.0.1:51234/callback"},
		{registered[3], "http://127.0.0.1:3000/no-port"},
		{registered[4], "http://[::1]:61000/cb"},
		{registered[5], "http://[::1]:1/v6-no-port"},
		// Attack shapes: other hosts behind user info, backslashes, encoded
		// separators, another loopback, IPv4-mapped IPv6, zones, leading zeros.
		{registered[2], "http://127.0.0.1:8080@evil.example/callback"},
		{registered[2], "http://evil.example#@127.0.0.1:8080/callback"},
		{registered[2], "http://127.0.0.1:8080\\@evil.example/callback"},
		{registered[2], "http://127.0.0.1:8080%2f@evil.example/callback"},
		{registered[2], "http://127.0.0.2:8080/callback"},
		{registered[2], "http://[::ffff:127.0.0.1]:8080/callback"},
		{registered[2], "http://0177.0.0.1:8080/callback"},
		{registered[2], "http://127.0.0.1:+80/callback"},
		{registered[2], "http://127.0.0.1:0x50/callback"},
		{registered[2], "HTTP://127.0.0.1:8080/callback"},
		{registered[2], "http://127.0.0.1:8080/callback/../evil"},
		{registered[2], "http://127.0.0.1:8080/callback?"},
		{registered[4], "http://[::1%25eth0]:9000/cb"},
		{registered[4], "http://::1:9000/cb"},
		{registered[6], "http://localhost:7001/cb"},
		{registered[7], "https://127.0.0.1:9443/tls"},
		{registered[8], "com.example.app:/oauth2redirect/../x"},
		// Stray or misplaced brackets were loopback variants once (and made
		// /authorize dereference a nil URL).
		{registered[2], "http://[127.0.0.1/callback"},
		{registered[2], "http://[127.0.0.1]:9/callback"},
		{registered[2], "http://127.0.0.1]/callback"},
		{"http://[::1]/cb", "http://[::1/cb"},
		{"http://[::1]/cb", "http://::1/cb"},
		{"http://[::1]/cb", "http://::1]/cb"},
		{"http://127.0.0.1:8080", "http://127.0.0.1:1"},
		{"http://127.0.0.1:8080?x", "http://127.0.0.1:1?x"},
	} {
		f.Add(s.reg, "https://other.example/cb", s.uri)
	}
	f.Fuzz(func(t *testing.T, reg1, reg2, uri string) {
		regs := []string{reg1, reg2}
		if !matchURI(regs, uri) {
			return
		}
		if slices.Contains(regs, uri) {
			return
		}
		for _, r := range regs {
			if loopbackPortVariant(r, uri) {
				return
			}
		}
		t.Fatalf("matchURI(%q, %q) = true: not a registered URI, nor a loopback one differing only in the port", regs, uri)
	})
}

// authority is "IP", "[IP]" or either with ":port"; it captures the host and
// what follows the port.
var loopbackURI = regexp.MustCompile(`^http://(\[[0-9A-Fa-f:.]+\]|[0-9.]+)(?::[0-9]+)?([/?][^#]*)?$`)

// loopbackPortVariant reports whether uri is reg with (only) another port, or
// a port added or left out, on a loopback IP literal over http.
func loopbackPortVariant(reg, uri string) bool {
	mr, mu := loopbackURI.FindStringSubmatch(reg), loopbackURI.FindStringSubmatch(uri)
	if mr == nil || mu == nil || mr[1] != mu[1] || mr[2] != mu[2] {
		return false
	}
	ip := net.ParseIP(strings.TrimSuffix(strings.TrimPrefix(mu[1], "["), "]"))
	if ip == nil || !ip.IsLoopback() || (ip.To4() == nil) != strings.HasPrefix(mu[1], "[") {
		return false
	}
	pr, err1 := url.Parse(reg)
	pu, err2 := url.Parse(uri)
	if err1 != nil || err2 != nil {
		return false
	}
	return pu.Scheme == "http" && pu.User == nil && pu.Fragment == "" && pu.Hostname() == pr.Hostname() &&
		pu.EscapedPath() == pr.EscapedPath() && pu.RawQuery == pr.RawQuery && pu.ForceQuery == pr.ForceQuery
}
