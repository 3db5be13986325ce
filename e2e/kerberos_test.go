package e2e

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"html"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/fedhub/fedhub/e2e/peers"
)

// The Kerberos tests reach fedhub by a host name, as browsers must for
// Negotiate: the service principal is HTTP/krbHost. A name under .localhost is
// the loopback (RFC 6761), so the issuer may be http.
const krbHost = "fedhub.localhost"

// krbDialOnce makes the tests' own HTTP clients (discovery, the RP, Browser)
// reach krbHost on 127.0.0.1, as curl's --resolve and Chromium's
// host-resolver-rules do.
var krbDialOnce sync.Once

// kerberosSetup is a running fedhub with corp-ad (Samba AD) and the Kerberos
// connector "windows" resolving through it, and the realm's KDC.
type kerberosSetup struct {
	s    *Server
	ad   *peers.ADServer
	kdc  *peers.KDC
	svc  peers.Service
	port string
}

// startKerberos starts it; corpADExtra are more keys of the corp-ad connector
// (indented as its keys are).
func startKerberos(t *testing.T, corpADExtra ...string) kerberosSetup {
	t.Helper()
	krbDialOnce.Do(func() {
		tr := http.DefaultTransport.(*http.Transport)
		dial := tr.DialContext
		tr.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			if host, port, err := net.SplitHostPort(addr); err == nil && host == krbHost {
				addr = net.JoinHostPort("127.0.0.1", port)
			}
			return dial(ctx, network, addr)
		}
	})
	ad := peers.SambaAD(t)
	kdc := ad.Kerberos(t)
	svc := kdc.Service(t, krbHost)
	addr := freeAddr(t)
	_, port, _ := net.SplitHostPort(addr)
	issuer := "http://" + krbHost + ":" + port
	base := strings.Replace(defaultConfig[:strings.Index(defaultConfig, "users:\n")], "issuer: %[1]s", "issuer: "+issuer, 1)
	s := Start(t, WithAddr(addr), WithEnv("AD_BIND="+ad.Users["service"].Password), WithConfig(base+"connectors:\n"+
		strings.Replace(corpAD(ad), "    label: Login with Corporate AD\n", "    label: Login with Corporate AD\n"+strings.Join(corpADExtra, ""), 1)+`
  - id: windows
    type: kerberos
    label: Sign in with Windows
    kerberos:
      keytab_file: `+svc.Keytab+`
      service_principal: `+svc.Principal+`
      realm: `+kdc.Realm+`
      auto_for: [127.0.0.0/8]
      resolve_with: corp-ad
`))
	s.URL = issuer // what the RP, discovery and curl use
	return kerberosSetup{s: s, ad: ad, kdc: kdc, svc: svc, port: port}
}

// curlNegotiate fetches rawURL with curl --negotiate as a browser with the
// ticket cache ccache and the cookie jar jar would, without following
// redirects, and returns the status, the Location and the body. With ccache
// "" curl does not negotiate: a browser without Kerberos (curl --negotiate
// without a ticket drops the 401's body, which a browser shows).
func (k kerberosSetup) curlNegotiate(t *testing.T, ccache, jar, rawURL string) (int, string, string) {
	t.Helper()
	body := filepath.Join(t.TempDir(), "body")
	args := []string{"-sS", "--resolve", krbHost + ":" + k.port + ":127.0.0.1",
		"-b", jar, "-c", jar, "-o", body, "-w", `{"status":%{http_code},"location":"%{redirect_url}"}`, rawURL}
	if ccache != "" {
		args = append([]string{"--negotiate", "-u", ":"}, args...)
	}
	cmd := exec.CommandContext(t.Context(), "curl", args...)
	cmd.Env = append(os.Environ(), k.kdc.Env(ccache)...)
	out, err := cmd.Output()
	if err != nil {
		t.Fatalf("curl %s: %v\n%s", rawURL, err, out)
	}
	var got struct {
		Status   int
		Location string
	}
	if err := json.Unmarshal(out, &got); err != nil {
		t.Fatalf("curl's answer %q: %v", out, err)
	}
	page, _ := os.ReadFile(body)
	return got.Status, got.Location, string(page)
}

// curlFlow starts a code flow of the RP in curl and follows fedhub's
// redirects until the answer leaves fedhub (the RP's redirect URI) or is a
// page, with the cookie jar jar; it returns the last status, Location and body.
func (k kerberosSetup) curlFlow(t *testing.T, ccache, jar string, params url.Values) (int, string, string) {
	t.Helper()
	next := k.s.URL + "/authorize?" + params.Encode()
	for range 10 {
		status, loc, body := k.curlNegotiate(t, ccache, jar, next)
		if status/100 != 3 || !strings.HasPrefix(loc, k.s.URL+"/") {
			return status, loc, body
		}
		next = loc
	}
	t.Fatal("more than 10 redirects")
	return 0, "", ""
}

// TestKerberosCurl: a person with a Kerberos ticket (MIT kinit against Samba,
// the realm's KDC) signs in with curl --negotiate through the whole code flow,
// clicking nothing (their address is in auto_for): the RP gets a code, and the
// tokens say amr kerberos and carry the same user as a password login of the
// same AD account (resolve_with: one linked identity). No ticket: the login
// page with the form, no error. Refused: a ticket for another service, a
// replayed authenticator, a disabled AD account (expired tickets: the
// verifier's test in brokers/kerberos, on its injected clock).
func TestKerberosCurl(t *testing.T) {
	k := startKerberos(t)
	alice := k.ad.Users["alice"]
	rp := newGoRP(t, k.s, rpID, rpSecret)

	// The same AD account, by password first: the Kerberos sign-in must land on its user.
	byPassword := k.passwordLogin(t, alice.Password)

	ccache := k.kdc.Kinit(t, alice.Username, alice.Password)
	a := rp.begin()
	status, loc, body := k.curlFlow(t, ccache, filepath.Join(t.TempDir(), "cookies"), a.params)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI+"?") {
		t.Fatalf("the Kerberos sign-in answered %d Location %q:\n%s", status, loc, body)
	}
	u, _ := url.Parse(loc)
	_, _, claims := rp.finish(t, a, u.Query())
	amr, _ := claims["amr"].([]any)
	if !slices.Contains(amr, any("kerberos")) || claims["idp"] != "corp-ad" || claims["preferred_username"] != "alice" {
		t.Fatalf("claims = %v, want amr kerberos, idp corp-ad, alice", claims)
	}
	if claims["sub"] != byPassword["sub"] {
		t.Fatalf("sub %v, but the password login of the same account is %v: not one linked identity", claims["sub"], byPassword["sub"])
	}

	t.Run("no ticket: the login page, no error", func(t *testing.T) {
		jar := filepath.Join(t.TempDir(), "cookies")
		status, loc, body := k.curlFlow(t, "", jar, AuthParams())
		m := regexp.MustCompile(`href="([^"]+)" id="continue"`).FindStringSubmatch(body)
		if status != http.StatusUnauthorized || loc != "" || !strings.Contains(body, `http-equiv="refresh"`) || m == nil {
			t.Fatalf("without a ticket: %d %q:\n%s", status, loc, body)
		}
		// The page sends the browser back to the login page, which does not try again.
		status, loc, page := k.curlNegotiate(t, "", jar, k.s.URL+html.UnescapeString(m[1]))
		if status != http.StatusOK || !strings.Contains(page, `id="connector-windows"`) || !strings.Contains(page, `id="connector-corp-ad"`) ||
			!strings.Contains(page, `id="username"`) || strings.Contains(page, `class="error"`) {
			t.Fatalf("the login page after the attempt: %d %q:\n%s", status, loc, page)
		}
	})

	// The refusals, each from a real ticket of the KDC, sent as a browser would.
	other := k.kdc.Service(t, "other.localhost")
	leaver := "krb-leaver"
	leaverPassword := "Aa1!" + randomSuffix() + "xyzXYZ"
	if err := k.ad.Tool("user", "create", leaver, leaverPassword); err != nil {
		t.Fatal(err)
	}
	leaverCache := k.kdc.Kinit(t, leaver, leaverPassword)
	leaverToken := k.kdc.Token(t, leaverCache, k.svc.Principal)
	if err := k.ad.Tool("user", "disable", leaver); err != nil {
		t.Fatal(err)
	}
	replayed := k.kdc.Token(t, ccache, k.svc.Principal)
	for _, tc := range []struct {
		name  string
		token []byte
		first bool // the token is presented once before, successfully
		want  string
	}{
		{"ticket for another service", k.kdc.Token(t, ccache, other.Principal), false, "did not work"},
		{"disabled AD account", leaverToken, false, "disabled"},
		{"replayed authenticator", replayed, true, "did not work"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.first {
				if status, _ := k.negotiateWith(t, tc.token); status != http.StatusSeeOther {
					t.Fatalf("first use answered %d", status)
				}
			}
			status, page := k.negotiateWith(t, tc.token)
			if status != http.StatusForbidden || !strings.Contains(page, tc.want) {
				t.Fatalf("answered %d, want 403 saying %q:\n%s", status, tc.want, page)
			}
		})
	}
}

// passwordLogin signs alice in with her AD password, choosing the corp-ad
// form on the login page (which does not try Negotiate then), and returns
// the ID token's claims.
func (k kerberosSetup) passwordLogin(t *testing.T, password string) map[string]any {
	t.Helper()
	b := NewBrowser(t)
	params := AuthParams()
	resp, _ := b.Get(k.s.URL + "/authorize?" + params.Encode())
	f := b.OpenLoginAt(k.s, resp.Header.Get("Location")+"&connector=corp-ad")
	f.Action = k.s.URL + "/broker/corp-ad/login"
	resp, page := b.Submit(f, "alice", password)
	if resp.StatusCode != http.StatusSeeOther {
		t.Fatalf("password login answered %d:\n%s", resp.StatusCode, page)
	}
	u, _ := url.Parse(resp.Header.Get("Location"))
	_, idt := ocRedeemAndVerify(t, k.s, ocRP, u.Query().Get("code"), params)
	return idt.Claims
}

// TestKerberosSecondFactor: a Kerberos sign-in goes through the same second-
// factor policy as a password login of the AD account (resolve_with: the AD
// connector's, here mfa: required): no code for the RP, the enrolment page.
func TestKerberosSecondFactor(t *testing.T) {
	k := startKerberos(t, "    mfa: required\n")
	alice := k.ad.Users["alice"]
	ccache := k.kdc.Kinit(t, alice.Username, alice.Password)
	status, loc, body := k.curlFlow(t, ccache, filepath.Join(t.TempDir(), "cookies"), AuthParams())
	if status != http.StatusOK || loc != "" || !strings.Contains(body, "<h1>Set up a second step</h1>") {
		t.Fatalf("the Kerberos sign-in with mfa: required answered %d %q:\n%s", status, loc, body)
	}
}

// TestKerberosRecheck: the identity of a Kerberos sign-in resolved through AD
// is re-checked as the AD connector's: once the account is disabled in the
// directory, the application's refresh token is refused.
func TestKerberosRecheck(t *testing.T) {
	k := startKerberos(t, "    recheck_interval: 1s\n")
	rp := newGoRP(t, k.s, rpID, rpSecret)
	user, password := "krb-recheck", "Aa1!"+randomSuffix()+"xyzXYZ"
	if err := k.ad.Tool("user", "create", user, password); err != nil {
		t.Fatal(err)
	}
	a := rp.begin()
	status, loc, body := k.curlFlow(t, k.kdc.Kinit(t, user, password), filepath.Join(t.TempDir(), "cookies"), a.params)
	if status != http.StatusSeeOther || !strings.HasPrefix(loc, redirectURI+"?") {
		t.Fatalf("the Kerberos sign-in answered %d Location %q:\n%s", status, loc, body)
	}
	u, _ := url.Parse(loc)
	tok, _, _ := rp.finish(t, a, u.Query())
	if err := k.ad.Tool("user", "disable", user); err != nil {
		t.Fatal(err)
	}
	time.Sleep(1100 * time.Millisecond) // the directory's last yes no longer holds
	rp.refreshFails(t, tok.RefreshToken, "invalid_grant")
}

// negotiateWith starts a sign-in in a new browser and answers the Negotiate
// endpoint's challenge with token; it returns the status and the page.
func (k kerberosSetup) negotiateWith(t *testing.T, token []byte) (int, string) {
	t.Helper()
	b := NewBrowser(t)
	resp, _ := b.Get(k.s.URL + "/authorize?" + AuthParams().Encode())
	resp, _ = b.Get(k.s.URL + resp.Header.Get("Location"))
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/broker/windows/negotiate?") {
		t.Fatalf("the login page did not try Negotiate: %d %q", resp.StatusCode, loc)
	}
	req, _ := http.NewRequestWithContext(t.Context(), http.MethodGet, k.s.URL+loc, nil)
	req.Header.Set("Authorization", "Negotiate "+base64.StdEncoding.EncodeToString(token))
	resp, err := b.Client.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, readBody(t, resp)
}

// TestKerberosChromiumFallback: a real browser that cannot negotiate (headless
// Chromium, no ticket, fedhub not allowed by policy) opens the RP; the login
// page tries Negotiate on its own (127.0.0.1 is in auto_for), Chromium shows
// the 401's page, which takes it back to the login page: the person sees the
// page with the forms and the buttons and no error, having clicked nothing.
func TestKerberosChromiumFallback(t *testing.T) {
	k := startKerberos(t)
	rp := startRP(t, k.s)
	ctx := peers.Chromium(t, chromedp.Flag("host-resolver-rules", "MAP "+krbHost+" 127.0.0.1"))
	if err := chromedp.Do(ctx, chromedp.Navigate(rp.URL+"/start")); err != nil {
		t.Fatal(err)
	}
	if got := textOf(t, ctx, "#connector-windows"); got != "Sign in with Windows" {
		t.Fatalf("the Kerberos button says %q", got)
	}
	textOf(t, ctx, "#username") // the form is shown
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		t.Fatal(err)
	}
	errors, err := chromedp.Run(ctx, chromedp.Evaluate[[]string](`[...document.querySelectorAll(".error")].map(e => e.textContent)`))
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(loc, "/login?") || !strings.Contains(loc, "negotiated=windows") || len(errors) > 0 {
		t.Fatalf("landed on %s with errors %q", loc, errors)
	}
}
