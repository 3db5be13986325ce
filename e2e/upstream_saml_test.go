package e2e

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/xml"
	"errors"
	"html"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"net/url"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
)

// The person at the SAML IdP. Not alice: fedhub already has a local alice,
// and an upstream identity never takes over a local account by its name.
const (
	samlUser       = "carol"
	samlPass       = "Car0l-at-the-IdP"
	samlEmail      = "carol@partner.example"
	samlFullName   = "Carol Partner"
	samlNameID     = "id-carol-0001" // the persistent NameID the IdP sends for carol
	samlPersistent = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	samlRSASHA256  = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
)

var samlGroups = []string{"staff", "engineering"} // samlidp sends them as eduPersonAffiliation

// slIdP is crewjam's samlidp — a complete SAML identity provider, not
// fedhub — on a loopback port, in this process.
type slIdP struct {
	URL      string
	EntityID string
	log      *syncBuffer
	clock    atomic.Int64 // how far the IdP's clock is off, in nanoseconds

	mu     sync.Mutex
	mutate func(*saml.Assertion) // changes assertions before the IdP signs them
}

// slSessions makes samlidp's sessions carry a persistent NameID: samlidp
// itself always sends a transient one (the email), which fedhub rightly
// refuses as an account key. This is a real IdP configured for persistent
// NameIDs.
type slSessions struct{ inner saml.SessionProvider }

func (s slSessions) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	sess := s.inner.GetSession(w, r, req)
	if sess != nil {
		sess.NameIDFormat = samlPersistent
		sess.NameID = "id-" + sess.UserName + "-0001"
	}
	return sess
}

// MakeAssertion is samlidp's assertion, changed by the test's mutate hook
// before the IdP signs it: a misbehaving IdP whose signatures still verify.
func (i *slIdP) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	i.mu.Lock()
	f := i.mutate
	i.mu.Unlock()
	if f != nil {
		f(req.Assertion)
	}
	return nil
}

func (i *slIdP) setMutate(f func(*saml.Assertion)) {
	i.mu.Lock()
	i.mutate = f
	i.mu.Unlock()
}

// slStartIdP runs samlidp with the user carol.
func slStartIdP(t *testing.T) *slIdP {
	t.Helper()
	key, cert := slSelfSigned(t, "samlidp e2e IdP")
	i := &slIdP{log: &syncBuffer{}}
	hs := httptest.NewUnstartedServer(nil)
	i.URL = "http://" + hs.Listener.Addr().String()
	u, _ := url.Parse(i.URL)
	srv, err := samlidp.New(samlidp.Options{URL: *u, Key: key, Certificate: cert,
		Store: &samlidp.MemoryStore{}, Logger: log.New(i.log, "samlidp: ", 0)})
	if err != nil {
		t.Fatal(err)
	}
	srv.IDP.SignatureMethod = samlRSASHA256
	// samlidp's login form posts to /login, which only starts a session;
	// posting it to the SSO URL makes it answer the AuthnRequest, as a real
	// IdP does.
	srv.IDP.LoginURL = srv.IDP.SSOURL
	srv.IDP.SessionProvider = slSessions{inner: srv.IDP.SessionProvider}
	srv.IDP.AssertionMaker = i
	i.EntityID = srv.IDP.MetadataURL.String()

	// crewjam's clock is a package variable; in this process only samlidp
	// reads it (fedhub runs as its own binary), so it is the IdP's clock.
	orig := saml.TimeNow
	saml.TimeNow = func() time.Time { return time.Now().UTC().Add(time.Duration(i.clock.Load())) }
	t.Cleanup(func() { saml.TimeNow = orig })

	hs.Config.Handler = srv
	hs.Start()
	t.Cleanup(func() {
		hs.Close()
		if t.Failed() {
			t.Logf("samlidp log:\n%s", i.log.String())
		}
	})
	i.put(t, "/users/"+samlUser, `{"name":"`+samlUser+`","password":"`+samlPass+`","email":"`+samlEmail+`",`+
		`"common_name":"`+samlFullName+`","surname":"Partner","given_name":"Carol","groups":["`+strings.Join(samlGroups, `","`)+`"]}`)
	return i
}

func slSelfSigned(t *testing.T, cn string) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: time.Now().Add(-2 * time.Hour), NotAfter: time.Now().AddDate(1, 0, 0), BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageDigitalSignature | x509.KeyUsageKeyEncipherment}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	return key, cert
}

// put configures samlidp through its REST interface.
func (i *slIdP) put(t *testing.T, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, i.URL+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT %s at samlidp: %s", path, resp.Status)
	}
}

// registerSP fetches a connector's SP metadata from fedhub and trusts it at
// the IdP; it returns the SP's entity ID. Without encrypt, the encryption key
// is left out, so the IdP sends plaintext (signed) assertions.
func (i *slIdP) registerSP(t *testing.T, s *Server, connector string, encrypt bool) string {
	t.Helper()
	resp, err := http.Get(s.URL + "/broker/" + connector + "/saml/metadata")
	if err != nil {
		t.Fatal(err)
	}
	md := []byte(readBody(t, resp))
	if resp.StatusCode != http.StatusOK || !strings.Contains(resp.Header.Get("Content-Type"), "xml") {
		t.Fatalf("SP metadata of %s: %d %s\n%s", connector, resp.StatusCode, resp.Header.Get("Content-Type"), md)
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(md, &ed); err != nil {
		t.Fatalf("SP metadata of %s: %v", connector, err)
	}
	prefix := s.URL + "/broker/" + connector
	if ed.EntityID != prefix+"/saml/metadata" || len(ed.SPSSODescriptors) != 1 {
		t.Fatalf("SP metadata of %s: entity %q, %d SP descriptors", connector, ed.EntityID, len(ed.SPSSODescriptors))
	}
	spd := &ed.SPSSODescriptors[0]
	if len(spd.AssertionConsumerServices) != 1 || spd.AssertionConsumerServices[0].Location != prefix+"/callback" ||
		spd.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding {
		t.Fatalf("SP metadata of %s: ACS %+v, want only HTTP-POST at %s/callback", connector, spd.AssertionConsumerServices, prefix)
	}
	if !encrypt {
		kds := spd.KeyDescriptors[:0]
		for _, kd := range spd.KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		spd.KeyDescriptors = kds
		if md, err = xml.Marshal(ed); err != nil {
			t.Fatal(err)
		}
	}
	i.put(t, "/services/"+connector, string(md))
	return ed.EntityID
}

// slForm is an HTML form as a browser would submit it.
type slForm struct {
	Action   string
	Values   url.Values
	Password bool // it asks for a password
	Script   string
}

var (
	slFormRe   = regexp.MustCompile(`(?is)<form[^>]*\baction="([^"]*)"`)
	slInputRe  = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	slAttrRe   = regexp.MustCompile(`(?is)\b(type|name|value)="([^"]*)"`)
	slScriptRe = regexp.MustCompile(`(?is)<script[^>]*\bsrc="([^"]*)"`)
)

func slParseForm(t testing.TB, page string) slForm {
	t.Helper()
	m := slFormRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in the page:\n%s", page)
	}
	f := slForm{Action: html.UnescapeString(m[1]), Values: url.Values{}}
	for _, in := range slInputRe.FindAllString(page, -1) {
		a := map[string]string{}
		for _, am := range slAttrRe.FindAllStringSubmatch(in, -1) {
			a[strings.ToLower(am[1])] = html.UnescapeString(am[2])
		}
		if a["type"] == "password" {
			f.Password = true
		}
		if a["name"] != "" && a["type"] != "submit" {
			f.Values.Set(a["name"], a["value"])
		}
	}
	if m := slScriptRe.FindStringSubmatch(page); m != nil {
		f.Script = html.UnescapeString(m[1])
	}
	return f
}

// slDecode is the XML of a form's SAMLResponse.
func slDecode(t testing.TB, v url.Values) string {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLResponse"))
	if err != nil {
		t.Fatalf("SAMLResponse is not base64: %v", err)
	}
	return string(raw)
}

// slEncode is v with another SAMLResponse, which must be well-formed XML.
func slEncode(t testing.TB, v url.Values, doc string) url.Values {
	t.Helper()
	d := xml.NewDecoder(strings.NewReader(doc))
	for {
		_, err := d.Token()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			t.Fatalf("the edited response is not well-formed XML: %v", err)
		}
	}
	out := url.Values{}
	for k, vs := range v {
		out[k] = slices.Clone(vs)
	}
	out.Set("SAMLResponse", base64.StdEncoding.EncodeToString([]byte(doc)))
	return out
}

// samlToIdP clicks the connector's button on fedhub's login page for an
// authorization request, follows fedhub to the IdP (HTTP-Redirect, or the
// HTTP-POST form fedhub submits with its script) and returns the IdP's page.
func (b *Browser) samlToIdP(s *Server, idp *slIdP, params url.Values, connector string) string {
	b.t.Helper()
	f := b.OpenLogin(s, s.URL+"/authorize?"+params.Encode())
	if !strings.Contains(f.Page, `id="connector-`+connector+`"`) {
		b.t.Fatalf("the login page has no button for %s:\n%s", connector, f.Page)
	}
	resp, page := b.PostForm(s.URL+"/broker/"+connector+"/login", url.Values{"req": {f.Req}, "csrf": {f.CSRF}})
	switch resp.StatusCode {
	case http.StatusFound, http.StatusSeeOther: // HTTP-Redirect binding
		loc, err := url.Parse(resp.Header.Get("Location"))
		if err != nil || loc.Scheme+"://"+loc.Host != idp.URL || loc.Path != "/sso" {
			b.t.Fatalf("the button sends the browser to %q, not the IdP's SSO URL", resp.Header.Get("Location"))
		}
		if q := loc.Query(); q.Get("SAMLRequest") == "" || q.Get("RelayState") == "" {
			b.t.Fatalf("the redirect to the IdP lacks SAMLRequest or RelayState: %s", loc)
		}
		resp, page = b.Get(loc.String())
	case http.StatusOK: // HTTP-POST binding: a form that fedhub's own script submits
		pf := slParseForm(b.t, page)
		if pf.Action != idp.URL+"/sso" || pf.Values.Get("SAMLRequest") == "" || pf.Values.Get("RelayState") == "" {
			b.t.Fatalf("the POST binding form is %+v", pf)
		}
		if pf.Script != s.URL+"/broker/"+connector+"/saml/post.js" || strings.Contains(page, "<script>") {
			b.t.Fatalf("the POST binding form is not submitted by fedhub's post.js (CSP: scripts from 'self' only):\n%s", page)
		}
		js, body := b.Get(pf.Script)
		if js.StatusCode != http.StatusOK || !strings.Contains(body, "submit()") {
			b.t.Fatalf("post.js answered %d: %s", js.StatusCode, body)
		}
		resp, page = b.PostForm(pf.Action, pf.Values)
	default:
		b.t.Fatalf("the button answered %d, want the way to the IdP:\n%s", resp.StatusCode, page)
	}
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("the IdP answered %d:\n%s", resp.StatusCode, page)
	}
	return page
}

// samlAtIdP signs carol in when the IdP asks and returns the form the IdP's
// page auto-posts to fedhub.
func (b *Browser) samlAtIdP(page string) slForm {
	b.t.Helper()
	f := slParseForm(b.t, page)
	if f.Password {
		f.Values.Set("user", samlUser)
		f.Values.Set("password", samlPass)
		var resp *http.Response
		resp, page = b.PostForm(f.Action, f.Values)
		if resp.StatusCode != http.StatusOK {
			b.t.Fatalf("the IdP refused carol: %d\n%s", resp.StatusCode, page)
		}
		f = slParseForm(b.t, page)
	}
	if f.Values.Get("SAMLResponse") == "" {
		b.t.Fatalf("the IdP did not answer with a SAMLResponse form:\n%s", page)
	}
	return f
}

// samlResponse runs an SP-initiated login up to the IdP's answer, which it
// returns without posting it.
func (b *Browser) samlResponse(s *Server, idp *slIdP, params url.Values, connector string) slForm {
	b.t.Helper()
	f := b.samlAtIdP(b.samlToIdP(s, idp, params, connector))
	if acs := s.URL + "/broker/" + connector + "/callback"; f.Action != acs {
		b.t.Fatalf("the IdP posts to %q, not the ACS %q", f.Action, acs)
	}
	if f.Values.Get("RelayState") == "" {
		b.t.Fatal("the IdP's answer lost the RelayState")
	}
	return f
}

// samlIdPInitiated signs carol in at the IdP and opens its IdP-initiated
// link (a samlidp shortcut) for an SP; it returns the form the IdP auto-posts.
func (b *Browser) samlIdPInitiated(idp *slIdP, shortcut string) slForm {
	b.t.Helper()
	resp, body := b.PostForm(idp.URL+"/login", url.Values{"user": {samlUser}, "password": {samlPass}})
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("signing in at the IdP: %d\n%s", resp.StatusCode, body)
	}
	resp, page := b.Get(idp.URL + "/login/" + shortcut)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("the IdP-initiated link answered %d:\n%s", resp.StatusCode, page)
	}
	f := slParseForm(b.t, page)
	if f.Values.Get("SAMLResponse") == "" {
		b.t.Fatalf("the IdP-initiated link gave no SAMLResponse form:\n%s", page)
	}
	return f
}

// samlSignIn posts the IdP's answer to the ACS and follows fedhub to the RP;
// it returns what the RP receives.
func (b *Browser) samlSignIn(s *Server, action string, v url.Values) url.Values {
	b.t.Helper()
	resp, page := b.PostForm(action, v)
	loc := resp.Header.Get("Location")
	if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(loc, "/broker/continue?") {
		b.t.Fatalf("the ACS answered %d Location %q, want a 303 to /broker/continue:\n%s", resp.StatusCode, loc, page)
	}
	u, err := url.Parse(s.URL + loc)
	if err != nil {
		b.t.Fatal(err)
	}
	return b.finishAt(s, u)
}

// samlAs is b for another (sub)test: same cookie jar, failures reported there.
func samlAs(t testing.TB, b *Browser) *Browser { return &Browser{t: t, Client: b.Client} }

// samlLeaks are what an error page must not show: XML, SAML names, Go error text.
var samlLeaks = []string{"<?xml", "<saml", "saml:", "samlp:", "urn:oasis", "xmlns", "InResponseTo", "Assertion",
	"Audience", "NotOnOrAfter", "Signature", "signature", "x509", "crewjam", "goxmldsig", "goroutine", "panic",
	"err=", "Error:", "refused", "verification", "RelayState"}

// samlWantErrorPage checks that fedhub answered the ACS with an HTML error page
// that says what happened in words (want) and shows nothing of the upstream's
// XML or of Go's errors.
func samlWantErrorPage(t testing.TB, v url.Values, resp *http.Response, body, want string) {
	t.Helper()
	if resp.StatusCode < 400 || resp.StatusCode > 599 {
		t.Fatalf("the ACS answered %d Location %q, want an error page:\n%s", resp.StatusCode, resp.Header.Get("Location"), body)
	}
	if loc := resp.Header.Get("Location"); loc != "" {
		t.Fatalf("the error page redirects to %q", loc)
	}
	if ct := resp.Header.Get("Content-Type"); !strings.HasPrefix(ct, "text/html") {
		t.Fatalf("the error page is %q:\n%s", ct, body)
	}
	if !strings.Contains(body, "<h1>") || !strings.Contains(body, want) {
		t.Fatalf("the error page (%d) does not say %q:\n%s", resp.StatusCode, want, body)
	}
	leaks := slices.Clone(samlLeaks)
	if r := v.Get("SAMLResponse"); len(r) > 24 {
		leaks = append(leaks, r[:24])
	}
	for _, leak := range leaks {
		if strings.Contains(body, leak) {
			t.Fatalf("the error page shows %q:\n%s", leak, body)
		}
	}
}

// samlWantNoSession checks that the browser is not signed in to fedhub: a
// prompt=none request gets login_required.
func samlWantNoSession(t testing.TB, s *Server, b *Browser) {
	t.Helper()
	p := AuthParams("prompt", "none")
	ocWantAuthzError(t, s, ocSilent(t, s, samlAs(t, b), p), p, "login_required")
}

// samlWantLogged checks that fedhub logged why it refused, after mark. Its
// output reaches the test through a pipe, possibly after the response.
func samlWantLogged(t testing.TB, s *Server, mark int, wants ...string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		out := s.Output()
		if mark <= len(out) {
			out = out[mark:]
		}
		missing := ""
		for _, w := range wants {
			if !strings.Contains(out, w) {
				missing = w
				break
			}
		}
		if missing == "" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("fedhub's log does not say %q:\n%s", missing, out)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// samlWantCarol checks the ID token of one of carol's logins.
func samlWantCarol(t testing.TB, idt ocIDToken, connector, username string) {
	t.Helper()
	c := idt.Claims
	if c["idp"] != connector || c["preferred_username"] != username || c["email"] != samlEmail ||
		c["name"] != samlFullName || c["email_verified"] != false {
		t.Fatalf("claims of carol's login through %s = %v", connector, c)
	}
	groups, ok := ocStrings(c["groups"])
	slices.Sort(groups)
	var want []string // groups: passthrough keeps them under the connector's namespace
	for _, g := range samlGroups {
		want = append(want, connector+":"+g)
	}
	slices.Sort(want)
	if !ok || !slices.Equal(groups, want) {
		t.Fatalf("groups = %v, want %v (the IdP's eduPersonAffiliation, namespaced)", c["groups"], want)
	}
	if amr, _ := ocStrings(c["amr"]); !slices.Contains(amr, "fed") {
		t.Fatalf("amr = %v, want fed", c["amr"])
	}
}

// TestUpstreamSAML: fedhub is the service provider of a real SAML IdP
// (crewjam's samlidp). SP-initiated login reaches the RP's tokens; responses
// that are replayed, unsolicited, for another request, tampered with, for
// another audience or expired end on an error page and leave no session; an
// IdP-initiated login is accepted once where allow_idp_initiated is set.
func TestUpstreamSAML(t *testing.T) {
	idp := slStartIdP(t)
	s := Start(t, WithAddr(freeAddr(t)), withConnectors(`
  - id: partner
    type: saml
    name: Partner IdP
    label: Login with Partner IdP
    groups: passthrough
    saml:
      idp_metadata_url: `+idp.URL+`/metadata
      sign_requests: true
      attributes: {username: uid, email: mail, name: cn, groups: eduPersonAffiliation}
  - id: portal
    type: saml
    name: Partner Portal
    groups: passthrough
    mappers:
      - type: username_template
        template: "portal-{{.Username}}"
    saml:
      idp_metadata_url: `+idp.URL+`/metadata
      binding: post
      sign_requests: true
      allow_idp_initiated: true
      attributes: {groups: eduPersonAffiliation}
  - id: vault
    type: saml
    name: Partner Vault
    link_only: true
    mappers:
      - type: username_template
        template: "vault-{{.Username}}"
    saml:
      idp_metadata_url: `+idp.URL+`/metadata
      allow_idp_initiated: true
`))
	partnerSP := idp.registerSP(t, s, "partner", false) // plaintext assertions, to tamper with
	portalSP := idp.registerSP(t, s, "portal", true)
	vaultSP := idp.registerSP(t, s, "vault", true)
	idp.put(t, "/shortcuts/partner", `{"service_provider":"`+partnerSP+`"}`)
	idp.put(t, "/shortcuts/portal", `{"service_provider":"`+portalSP+`"}`)
	idp.put(t, "/shortcuts/vault", `{"service_provider":"`+vaultSP+`"}`)

	// SP-initiated login, HTTP-Redirect binding, signed AuthnRequest.
	b := NewBrowser(t)
	params := AuthParams("scope", "openid profile email")
	first := b.samlResponse(s, idp, params, "partner")
	doc := slDecode(t, first.Values)
	if !strings.Contains(doc, "<saml:Assertion") || !strings.Contains(doc, "InResponseTo=") ||
		!strings.Contains(doc, ">"+samlNameID+"</saml:NameID>") || !strings.Contains(doc, samlPersistent) {
		t.Fatalf("the IdP's response is not a plaintext assertion for carol's persistent NameID answering a request:\n%s", doc)
	}
	got := b.samlSignIn(s, first.Action, first.Values)
	_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, params), params)
	samlWantCarol(t, idt, "partner", samlUser)
	carol := idt.Subject
	opWantCounted(t, s, `fedhub_logins_total{connector="partner",outcome="success"}`,
		`fedhub_upstream_request_duration_seconds_count{connector="partner",operation="metadata"}`)
	silent := AuthParams("prompt", "none")
	ocWantCode(t, s, ocSilent(t, s, b, silent), silent) // the browser has an SSO session

	t.Run("replayed response", func(t *testing.T) {
		// The same browser posts the same SAMLResponse and RelayState again.
		resp, page := samlAs(t, b).PostForm(first.Action, first.Values)
		samlWantErrorPage(t, first.Values, resp, page, "already used")
		// So does an attacker who captured them.
		mallory := NewBrowser(t)
		resp, page = mallory.PostForm(first.Action, first.Values)
		samlWantErrorPage(t, first.Values, resp, page, "already used")
		samlWantNoSession(t, s, mallory)
	})

	t.Run("unsolicited response", func(t *testing.T) {
		t.Run("IdP-initiated", func(t *testing.T) {
			c := NewBrowser(t)
			f := c.samlIdPInitiated(idp, "partner")
			if f.Action != s.URL+"/broker/partner/callback" || f.Values.Get("RelayState") != "" ||
				strings.Contains(slDecode(t, f.Values), "InResponseTo=") {
				t.Fatalf("the IdP-initiated answer is not unsolicited: %s %v", f.Action, f.Values)
			}
			mark := len(s.Output())
			resp, page := c.PostForm(f.Action, f.Values)
			samlWantErrorPage(t, f.Values, resp, page, "must start here")
			samlWantLogged(t, s, mark, "allow_idp_initiated")
			samlWantNoSession(t, s, c)
		})
		t.Run("solicited response without RelayState", func(t *testing.T) {
			c := NewBrowser(t)
			p := AuthParams()
			f := c.samlResponse(s, idp, p, "partner")
			v := slEncode(t, f.Values, slDecode(t, f.Values))
			v.Del("RelayState")
			mark := len(s.Output())
			resp, page := c.PostForm(f.Action, v)
			samlWantErrorPage(t, v, resp, page, "started in another browser")
			samlWantLogged(t, s, mark, "no login in progress")
			samlWantNoSession(t, s, c)
			// The refusal did not use up the login it answers.
			ocWantCode(t, s, c.samlSignIn(s, f.Action, f.Values), p)
		})
	})

	t.Run("response for another request", func(t *testing.T) {
		c := NewBrowser(t)
		pa, pb := AuthParams(), AuthParams()
		a := c.samlResponse(s, idp, pa, "partner")
		bf := c.samlResponse(s, idp, pb, "partner")
		v := url.Values{"SAMLResponse": a.Values["SAMLResponse"], "RelayState": bf.Values["RelayState"]}
		mark := len(s.Output())
		resp, page := c.PostForm(a.Action, v)
		samlWantErrorPage(t, v, resp, page, "could not be completed")
		samlWantLogged(t, s, mark, "is not this login")
		samlWantNoSession(t, s, c)
		// Login B got its one answer; login A is untouched and still works.
		resp, page = c.PostForm(bf.Action, bf.Values)
		samlWantErrorPage(t, bf.Values, resp, page, "already used")
		samlWantNoSession(t, s, c)
		got := c.samlSignIn(s, a.Action, a.Values)
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, got, pa), pa)
		if idt.Subject != carol {
			t.Fatalf("carol's second login is sub %q, the first %q", idt.Subject, carol)
		}
	})

	t.Run("tampered assertion", func(t *testing.T) {
		// One character changes in the first from after the element that
		// opens with the (unique) anchor.
		for _, tc := range []struct{ name, anchor, from, to string }{
			{"NameID", "<saml:NameID ", ">" + samlNameID + "<", ">" + samlNameID[:len(samlNameID)-1] + "2<"},
			{"email attribute", `FriendlyName="mail"`, ">" + samlEmail + "<", ">" + strings.Replace(samlEmail, "carol", "carel", 1) + "<"},
			{"group attribute", `FriendlyName="eduPersonAffiliation"`, ">staff<", ">stafe<"},
		} {
			t.Run(tc.name, func(t *testing.T) {
				c := NewBrowser(t)
				f := c.samlResponse(s, idp, AuthParams(), "partner")
				doc := slDecode(t, f.Values)
				before, after, ok := strings.Cut(doc, tc.anchor)
				if !ok || strings.Contains(after, tc.anchor) || !strings.Contains(after, tc.from) {
					t.Fatalf("no single %s with %q in the response:\n%s", tc.anchor, tc.from, doc)
				}
				v := slEncode(t, f.Values, before+tc.anchor+strings.Replace(after, tc.from, tc.to, 1))
				mark := len(s.Output())
				resp, page := c.PostForm(f.Action, v)
				samlWantErrorPage(t, v, resp, page, "could not be completed")
				samlWantLogged(t, s, mark, "verification failed", "signature")
				samlWantNoSession(t, s, c)
			})
		}
	})

	t.Run("wrong audience", func(t *testing.T) {
		idp.setMutate(func(a *saml.Assertion) {
			for i := range a.Conditions.AudienceRestrictions {
				a.Conditions.AudienceRestrictions[i].Audience.Value = "https://other-sp.example/saml/metadata"
			}
		})
		defer idp.setMutate(nil)
		c := NewBrowser(t)
		f := c.samlResponse(s, idp, AuthParams(), "partner")
		mark := len(s.Output())
		resp, page := c.PostForm(f.Action, f.Values)
		samlWantErrorPage(t, f.Values, resp, page, "could not be completed")
		samlWantLogged(t, s, mark, "does not name our entity ID")
		samlWantNoSession(t, s, c)
	})

	t.Run("expired assertion", func(t *testing.T) {
		idp.clock.Store(int64(-time.Hour)) // the IdP's clock is an hour behind
		c := NewBrowser(t)
		f := c.samlResponse(s, idp, AuthParams(), "partner")
		idp.clock.Store(0)
		mark := len(s.Output())
		resp, page := c.PostForm(f.Action, f.Values)
		samlWantErrorPage(t, f.Values, resp, page, "could not be completed")
		samlWantLogged(t, s, mark, "expired")
		samlWantNoSession(t, s, c)
	})

	var portalSub string
	t.Run("POST binding, encrypted assertion", func(t *testing.T) {
		c := NewBrowser(t)
		p := AuthParams("scope", "openid profile email")
		f := c.samlResponse(s, idp, p, "portal")
		if doc := slDecode(t, f.Values); !strings.Contains(doc, "EncryptedAssertion") || strings.Contains(doc, "<saml:Assertion") {
			t.Fatalf("the IdP did not encrypt the assertion to the SP metadata's key:\n%s", doc)
		}
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, c.samlSignIn(s, f.Action, f.Values), p), p)
		samlWantCarol(t, idt, "portal", "portal-"+samlUser)
		if idt.Subject == carol {
			t.Fatal("the same upstream person through another connector is the same local user")
		}
		portalSub = idt.Subject
	})

	t.Run("IdP-initiated login where allowed", func(t *testing.T) {
		c := NewBrowser(t)
		f := c.samlIdPInitiated(idp, "portal")
		if f.Action != s.URL+"/broker/portal/callback" || f.Values.Get("RelayState") != "" {
			t.Fatalf("the IdP-initiated answer goes to %s with %v", f.Action, f.Values)
		}
		resp, page := c.PostForm(f.Action, f.Values)
		if resp.StatusCode != http.StatusOK || !strings.Contains(page, "You are signed in") {
			t.Fatalf("the IdP-initiated login answered %d:\n%s", resp.StatusCode, page)
		}
		p := AuthParams("prompt", "none", "scope", "openid profile email")
		_, idt := ocRedeemAndVerify(t, s, ocRP, ocWantCode(t, s, ocSilent(t, s, c, p), p), p)
		samlWantCarol(t, idt, "portal", "portal-"+samlUser)
		if portalSub != "" && idt.Subject != portalSub {
			t.Fatalf("carol through an IdP-initiated login is sub %q, through an SP-initiated one %q", idt.Subject, portalSub)
		}

		// Replayed, in the same browser and in another one.
		mark := len(s.Output())
		resp, page = c.PostForm(f.Action, f.Values)
		samlWantErrorPage(t, f.Values, resp, page, "already used")
		samlWantLogged(t, s, mark, "replay")
		mallory := NewBrowser(t)
		resp, page = mallory.PostForm(f.Action, f.Values)
		samlWantErrorPage(t, f.Values, resp, page, "already used")
		samlWantNoSession(t, s, mallory)
	})

	// A link-only connector logs nobody in, IdP-initiated included (SECURITY.md).
	t.Run("IdP-initiated login through a link-only connector", func(t *testing.T) {
		c := NewBrowser(t)
		f := c.samlIdPInitiated(idp, "vault")
		resp, page := c.PostForm(f.Action, f.Values)
		if resp.StatusCode < 400 || strings.Contains(page, "You are signed in") {
			t.Fatalf("a link-only connector's IdP-initiated login answered %d:\n%s", resp.StatusCode, page)
		}
		samlWantNoSession(t, s, c)
	})

	if t.Failed() {
		return
	}
	// Nothing above left an error in fedhub's log that is not a refusal.
	if out := s.Output(); strings.Contains(out, "level=ERROR") {
		t.Fatalf("fedhub logged an error:\n%s", out)
	}
}
