package saml_test

import (
	"bytes"
	"compress/flate"
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/pem"
	"encoding/xml"
	"errors"
	"fmt"
	"html"
	"io"
	"log/slog"
	"math/big"
	"net"
	"net/http"
	"net/http/cookiejar"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/fedhub/fedhub/login"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	"github.com/crewjam/saml/samlidp"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/fedhub/fedhub/brokers"
	samlconn "github.com/fedhub/fedhub/brokers/saml"

	"github.com/fedhub/fedhub/e2e/peers"
)

const (
	baseURL     = "https://fedhub.test"
	alicePass   = "Al1ce-password"
	persistent  = "urn:oasis:names:tc:SAML:2.0:nameid-format:persistent"
	transient   = "urn:oasis:names:tc:SAML:2.0:nameid-format:transient"
	rsaSHA256   = "http://www.w3.org/2001/04/xmldsig-more#rsa-sha256"
	groupsAttr  = "eduPersonAffiliation" // where samlidp puts a user's groups
	aliceNameID = "id-alice-0001"        // the persistent NameID the IdP sends
)

// ---------------------------------------------------------------- fakes

// memStore is an in-memory brokers.ConnectorStore.
type memStore struct {
	mu     sync.Mutex
	once   map[string]time.Time
	values map[string][]byte
}

func newStore() *memStore {
	return &memStore{once: map[string]time.Time{}, values: map[string][]byte{}}
}

// newStoreWithKey is a store that already holds an SP key pair, to save
// generating a 3072-bit key in every test.
func newStoreWithKey(t *testing.T) *memStore {
	s := newStore()
	s.values["sp-key"] = testSPKey(t)
	return s
}

func (s *memStore) Once(_ context.Context, key string, until time.Time) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, seen := s.once[key]; seen {
		return false, nil
	}
	s.once[key] = until
	return true, nil
}

func (s *memStore) Value(_ context.Context, key string, create func() ([]byte, error)) ([]byte, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.values[key]; ok {
		return v, nil
	}
	v, err := create()
	if err != nil {
		return nil, err
	}
	s.values[key] = v
	return v, nil
}

// logBuf collects a connector's log lines.
type logBuf struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *logBuf) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *logBuf) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func (l *logBuf) Reset() {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.b.Reset()
}

// ---------------------------------------------------------------- keys

func selfSigned(t *testing.T, bits int, cn string, notBefore, notAfter time.Time) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, bits)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(time.Now().UnixNano()), Subject: pkix.Name{CommonName: cn},
		NotBefore: notBefore, NotAfter: notAfter, BasicConstraintsValid: true,
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

func pemPair(key *rsa.PrivateKey, cert *x509.Certificate) (keyPEM, certPEM []byte) {
	return pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}),
		pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: cert.Raw})
}

var (
	spKeyOnce sync.Once
	spKeyPEM  []byte
	idpKey    *rsa.PrivateKey
	idpCert   *x509.Certificate
	idpOnce   sync.Once
)

func testSPKey(t *testing.T) []byte {
	spKeyOnce.Do(func() {
		k, c := selfSigned(t, 2048, "test SP", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
		kp, cp := pemPair(k, c)
		spKeyPEM = append(kp, cp...)
	})
	return spKeyPEM
}

func spKeyPair(t *testing.T, pemBytes []byte) (*rsa.PrivateKey, *x509.Certificate) {
	t.Helper()
	var key *rsa.PrivateKey
	var cert *x509.Certificate
	for rest := pemBytes; ; {
		var b *pem.Block
		if b, rest = pem.Decode(rest); b == nil {
			break
		}
		switch b.Type {
		case "RSA PRIVATE KEY":
			k, err := x509.ParsePKCS1PrivateKey(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			key = k
		case "PRIVATE KEY":
			k, err := x509.ParsePKCS8PrivateKey(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			key = k.(*rsa.PrivateKey)
		case "CERTIFICATE":
			c, err := x509.ParseCertificate(b.Bytes)
			if err != nil {
				t.Fatal(err)
			}
			cert = c
		}
	}
	if key == nil || cert == nil {
		t.Fatal("no key pair in PEM")
	}
	return key, cert
}

// ---------------------------------------------------------------- the IdP

// testIDP is crewjam's samlidp, a complete IdP, on a loopback port.
type testIDP struct {
	srv          *httptest.Server
	idp          *samlidp.Server
	url          string
	entityID     string
	metadataDown atomic.Bool
	sessions     *sessionWrap
	assertions   *assertionWrap
}

// sessionWrap makes samlidp's sessions carry a NameID format (samlidp itself
// always sends transient NameIDs holding the email): a real IdP configured
// for persistent NameIDs.
type sessionWrap struct {
	inner  saml.SessionProvider
	mu     sync.Mutex
	format string
}

func (s *sessionWrap) setFormat(f string) { s.mu.Lock(); s.format = f; s.mu.Unlock() }

func (s *sessionWrap) GetSession(w http.ResponseWriter, r *http.Request, req *saml.IdpAuthnRequest) *saml.Session {
	sess := s.inner.GetSession(w, r, req)
	if sess == nil {
		return nil
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	sess.NameIDFormat = s.format
	if s.format == persistent {
		sess.NameID = "id-" + sess.UserName + "-0001"
	}
	return sess
}

// assertionWrap lets a test change the assertion before the IdP signs it: a
// misbehaving (or misconfigured) IdP whose assertions still verify.
type assertionWrap struct {
	mu     sync.Mutex
	mutate func(*saml.Assertion)
}

func (a *assertionWrap) set(f func(*saml.Assertion)) { a.mu.Lock(); a.mutate = f; a.mu.Unlock() }

func (a *assertionWrap) MakeAssertion(req *saml.IdpAuthnRequest, session *saml.Session) error {
	if err := (saml.DefaultAssertionMaker{}).MakeAssertion(req, session); err != nil {
		return err
	}
	a.mu.Lock()
	defer a.mu.Unlock()
	if a.mutate != nil {
		a.mutate(req.Assertion)
	}
	return nil
}

type quiet struct{}

func (quiet) Printf(string, ...any) {}
func (quiet) Print(...any)          {}
func (quiet) Println(...any)        {}
func (quiet) Fatal(v ...any)        { panic(fmt.Sprint(v...)) }
func (quiet) Fatalf(f string, v ...any) {
	panic(fmt.Sprintf(f, v...))
}
func (quiet) Fatalln(v ...any)          { panic(fmt.Sprint(v...)) }
func (quiet) Panic(v ...any)            { panic(fmt.Sprint(v...)) }
func (quiet) Panicf(f string, v ...any) { panic(fmt.Sprintf(f, v...)) }
func (quiet) Panicln(v ...any)          { panic(fmt.Sprint(v...)) }

// newIDP starts samlidp on ln (a fresh loopback port when nil) with user
// alice.
func newIDP(t *testing.T, ln net.Listener) *testIDP {
	t.Helper()
	idpOnce.Do(func() {
		idpKey, idpCert = selfSigned(t, 2048, "test IdP", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	})
	if ln == nil {
		var err error
		if ln, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
			t.Fatal(err)
		}
	}
	ti := &testIDP{url: "http://" + ln.Addr().String()}
	u, _ := url.Parse(ti.url)
	s, err := samlidp.New(samlidp.Options{URL: *u, Key: idpKey, Certificate: idpCert,
		Store: &samlidp.MemoryStore{}, Logger: quiet{}})
	if err != nil {
		t.Fatal(err)
	}
	s.IDP.SignatureMethod = rsaSHA256
	// samlidp's login form posts to /login, which only starts a session;
	// posting it to the SSO URL makes it answer the AuthnRequest like a
	// real IdP does.
	s.IDP.LoginURL = s.IDP.SSOURL
	ti.sessions = &sessionWrap{inner: s.IDP.SessionProvider, format: persistent}
	s.IDP.SessionProvider = ti.sessions
	ti.assertions = &assertionWrap{}
	s.IDP.AssertionMaker = ti.assertions
	ti.idp = s
	ti.entityID = s.IDP.MetadataURL.String()

	ti.srv = httptest.NewUnstartedServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/metadata" && ti.metadataDown.Load() {
			http.Error(w, "down for maintenance", http.StatusServiceUnavailable)
			return
		}
		s.ServeHTTP(w, r)
	}))
	ti.srv.Listener.Close()
	ti.srv.Listener = ln
	ti.srv.Start()
	t.Cleanup(ti.srv.Close)

	ti.put(t, "/users/alice", `{"name":"alice","password":"`+alicePass+`","email":"alice@example.com",`+
		`"common_name":"Alice Liddell","surname":"Liddell","given_name":"Alice","groups":["admins","staff"]}`)
	return ti
}

func (ti *testIDP) put(t *testing.T, path, body string) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodPut, ti.url+path, strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode/100 != 2 {
		t.Fatalf("PUT %s: %s", path, resp.Status)
	}
}

// register trusts the connector's SP metadata at the IdP. Without encrypt,
// the encryption key is left out, so the IdP sends plaintext assertions.
func (ti *testIDP) register(t *testing.T, c *samlconn.Connector, name string, encrypt bool) {
	t.Helper()
	md := spMetadata(t, c)
	if !encrypt {
		var ed saml.EntityDescriptor
		if err := xml.Unmarshal(md, &ed); err != nil {
			t.Fatal(err)
		}
		spd := &ed.SPSSODescriptors[0]
		var kds []saml.KeyDescriptor
		for _, kd := range spd.KeyDescriptors {
			if kd.Use != "encryption" {
				kds = append(kds, kd)
			}
		}
		spd.KeyDescriptors = kds
		out, err := xml.Marshal(ed)
		if err != nil {
			t.Fatal(err)
		}
		md = out
	}
	ti.put(t, "/services/"+name, string(md))
}

func (ti *testIDP) metadata(t *testing.T) []byte {
	t.Helper()
	resp, err := http.Get(ti.url + "/metadata")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return b
}

// ---------------------------------------------------------------- the connector

type env struct {
	t     *testing.T
	idp   *testIDP
	store *memStore
	log   *logBuf
}

func newEnv(t *testing.T) *env {
	return &env{t: t, idp: newIDP(t, nil), store: newStoreWithKey(t), log: &logBuf{}}
}

func (e *env) config(id string) samlconn.Config {
	return samlconn.Config{ID: id, BaseURL: baseURL, IDPMetadataURL: e.idp.url + "/metadata",
		Attributes: map[string]string{"groups": groupsAttr}}
}

func (e *env) connector(cfg samlconn.Config) *samlconn.Connector {
	e.t.Helper()
	c, err := samlconn.New(context.Background(), cfg, e.store, slog.New(slog.NewTextHandler(e.log, nil)))
	if err != nil {
		e.t.Fatal(err)
	}
	return c
}

// registered makes a connector and trusts it at the IdP.
func (e *env) registered(cfg samlconn.Config, encrypt bool) *samlconn.Connector {
	c := e.connector(cfg)
	e.idp.register(e.t, c, cfg.ID, encrypt)
	return c
}

func routes(c *samlconn.Connector) map[string]http.HandlerFunc {
	m := map[string]http.HandlerFunc{}
	c.Routes(func(method, path string, h http.HandlerFunc) { m[method+" "+path] = h })
	return m
}

func spMetadata(t *testing.T, c *samlconn.Connector) []byte {
	t.Helper()
	h := routes(c)["GET /saml/metadata"]
	if h == nil {
		t.Fatal("no GET /saml/metadata route")
	}
	rec := httptest.NewRecorder()
	h(rec, httptest.NewRequest(http.MethodGet, "/broker/x/saml/metadata", nil))
	if rec.Code != http.StatusOK {
		t.Fatalf("metadata: %d", rec.Code)
	}
	return rec.Body.Bytes()
}

// ---------------------------------------------------------------- the browser

type browser struct {
	t *testing.T
	c *http.Client
}

func newBrowser(t *testing.T) *browser {
	jar, _ := cookiejar.New(nil)
	return &browser{t: t, c: &http.Client{Jar: jar, Timeout: 10 * time.Second}}
}

func (b *browser) send(req *http.Request) string {
	b.t.Helper()
	resp, err := b.c.Do(req)
	if err != nil {
		b.t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		b.t.Fatalf("%s %s: %s: %s", req.Method, req.URL, resp.Status, body)
	}
	return string(body)
}

func (b *browser) get(u string) string {
	req, _ := http.NewRequest(http.MethodGet, u, nil)
	return b.send(req)
}

func (b *browser) post(u string, v url.Values) string {
	req, _ := http.NewRequest(http.MethodPost, u, strings.NewReader(v.Encode()))
	req.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return b.send(req)
}

type htmlForm struct {
	action string
	values url.Values
	hasPwd bool
}

var (
	formRe  = regexp.MustCompile(`(?is)<form[^>]*\baction="([^"]*)"`)
	inputRe = regexp.MustCompile(`(?is)<input\b[^>]*>`)
	attrRe  = regexp.MustCompile(`(?is)\b(type|name|value)="([^"]*)"`)
	scriptR = regexp.MustCompile(`(?is)<script[^>]*\bsrc="([^"]*)"`)
)

// parseForm reads the first form of a page, as a browser would submit it.
func parseForm(t *testing.T, page string) htmlForm {
	t.Helper()
	m := formRe.FindStringSubmatch(page)
	if m == nil {
		t.Fatalf("no form in page:\n%s", page)
	}
	f := htmlForm{action: html.UnescapeString(m[1]), values: url.Values{}}
	for _, in := range inputRe.FindAllString(page, -1) {
		a := map[string]string{}
		for _, am := range attrRe.FindAllStringSubmatch(in, -1) {
			a[strings.ToLower(am[1])] = html.UnescapeString(am[2])
		}
		if a["type"] == "password" {
			f.hasPwd = true
		}
		if a["name"] != "" && a["type"] != "submit" {
			f.values.Set(a["name"], a["value"])
		}
	}
	return f
}

// login answers the IdP's login form if it shows one and returns the form
// the IdP auto-submits to the ACS.
func (b *browser) login(page string) htmlForm {
	b.t.Helper()
	f := parseForm(b.t, page)
	if f.hasPwd {
		f.values.Set("user", "alice")
		f.values.Set("password", alicePass)
		f = parseForm(b.t, b.post(f.action, f.values))
	}
	if f.values.Get("SAMLResponse") == "" {
		b.t.Fatalf("the IdP did not answer with a SAMLResponse form: %v", f.values)
	}
	return f
}

// begin runs Begin for a fresh flow.
func begin(t *testing.T, c *samlconn.Connector) (*brokers.Flow, *httptest.ResponseRecorder) {
	t.Helper()
	return beginFlow(t, c, false)
}

// beginFlow runs Begin for a fresh flow, with ForceAuthn set as asked.
func beginFlow(t *testing.T, c *samlconn.Connector, forceAuthn bool) (*brokers.Flow, *httptest.ResponseRecorder) {
	t.Helper()
	state := make([]byte, 24)
	_, _ = rand.Read(state)
	flow := &brokers.Flow{State: base64.RawURLEncoding.EncodeToString(state), Callback: c.ACSURL(), Data: map[string]string{},
		ForceAuthn: forceAuthn, MaxAge: -1}
	rec := httptest.NewRecorder()
	if err := c.Begin(context.Background(), rec, httptest.NewRequest(http.MethodGet, baseURL+"/login", nil), flow); err != nil {
		t.Fatalf("Begin: %v", err)
	}
	if flow.Data["request_id"] == "" {
		t.Fatal("Begin stored no request_id")
	}
	return flow, rec
}

// spLogin is an SP-initiated login up to the IdP's answer: Begin, the
// browser at the IdP, the login form. It returns the flow and the form the
// IdP posts to the ACS.
func spLogin(t *testing.T, c *samlconn.Connector, b *browser) (*brokers.Flow, url.Values) {
	t.Helper()
	flow, rec := begin(t, c)
	return flow, idpAnswer(t, b, flow, rec)
}

// idpAnswer takes the browser from Begin's answer rec through the IdP and
// returns the form the IdP posts to the ACS.
func idpAnswer(t *testing.T, b *browser, flow *brokers.Flow, rec *httptest.ResponseRecorder) url.Values {
	t.Helper()
	var page string
	switch rec.Code {
	case http.StatusFound:
		page = b.get(rec.Header().Get("Location"))
	case http.StatusOK:
		f := parseForm(t, rec.Body.String())
		page = b.post(f.action, f.values)
	default:
		t.Fatalf("Begin answered %d", rec.Code)
	}
	f := b.login(page)
	if f.action != flow.Callback {
		t.Fatalf("the IdP posts to %q, not the flow's callback %q", f.action, flow.Callback)
	}
	if f.values.Get("RelayState") != flow.State {
		t.Fatalf("RelayState %q, want the flow state", f.values.Get("RelayState"))
	}
	return f.values
}

// acsRequest is the browser's POST of the IdP's form to the ACS.
func acsRequest(callback string, v url.Values) *http.Request {
	r := httptest.NewRequest(http.MethodPost, callback, strings.NewReader(v.Encode()))
	r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
	return r
}

func finish(c *samlconn.Connector, flow *brokers.Flow, v url.Values) (login.Identity, error) {
	return c.Finish(context.Background(), acsRequest(flow.Callback, v), flow)
}

// refused checks that err is the expected refusal, carries no upstream XML,
// and that the log says why.
func (e *env) refused(err, want error, logWants ...string) {
	e.t.Helper()
	if err == nil {
		e.t.Fatal("accepted; want a refusal")
	}
	if !errors.Is(err, want) {
		e.t.Fatalf("error %v; want %v", err, want)
	}
	if strings.ContainsAny(err.Error(), "<>") || strings.Contains(err.Error(), "urn:") {
		e.t.Fatalf("error shows upstream data: %q", err)
	}
	logs := e.log.String()
	for _, w := range logWants {
		if !strings.Contains(logs, w) {
			e.t.Fatalf("log lacks %q:\n%s", w, logs)
		}
	}
	e.log.Reset()
}

func (e *env) accepted(id login.Identity, err error, connector string) {
	e.t.Helper()
	if err != nil {
		e.t.Fatalf("refused: %v\nlog:\n%s", err, e.log.String())
	}
	want := e.idp.entityID + "!" + aliceNameID
	if id.Subject != want || id.Connector != connector {
		e.t.Fatalf("identity %+v; want subject %q connector %q", id, want, connector)
	}
}

func checkAlice(t *testing.T, id login.Identity) {
	t.Helper()
	if id.Username != "alice" || id.Email != "alice@example.com" || id.Name != "Alice Liddell" || id.EmailVerified {
		t.Fatalf("profile %+v", id)
	}
	if strings.Join(id.Groups, ",") != "admins,staff" {
		t.Fatalf("groups %v", id.Groups)
	}
	if v, ok := id.Raw["urn:oid:0.9.2342.19200300.100.1.1"].([]string); !ok || len(v) != 1 || v[0] != "alice" {
		t.Fatalf("raw uid by Name: %#v", id.Raw)
	}
	if v, ok := id.Raw["mail"].([]string); !ok || v[0] != "alice@example.com" {
		t.Fatalf("raw mail by FriendlyName: %#v", id.Raw)
	}
	if v, _ := id.Raw[groupsAttr].([]string); len(v) != 2 {
		t.Fatalf("raw groups: %#v", id.Raw)
	}
}

// ---------------------------------------------------------------- XML helpers

func responseDoc(t *testing.T, v url.Values) *etree.Document {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	return doc
}

func withResponse(t *testing.T, v url.Values, doc *etree.Document) url.Values {
	t.Helper()
	raw, err := doc.WriteToBytes()
	if err != nil {
		t.Fatal(err)
	}
	out := url.Values{}
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	out.Set("SAMLResponse", base64.StdEncoding.EncodeToString(raw))
	return out
}

func child(t *testing.T, el *etree.Element, tag string) *etree.Element {
	t.Helper()
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			return c
		}
	}
	t.Fatalf("no %s in %s", tag, el.Tag)
	return nil
}

func removeChild(el *etree.Element, tag string) {
	for _, c := range el.ChildElements() {
		if c.Tag == tag {
			el.RemoveChild(c)
		}
	}
}

func inflate(t *testing.T, b64 string) []byte {
	t.Helper()
	raw, err := base64.StdEncoding.DecodeString(b64)
	if err != nil {
		t.Fatal(err)
	}
	out, err := io.ReadAll(flate.NewReader(bytes.NewReader(raw)))
	if err != nil {
		t.Fatal(err)
	}
	return out
}

func restoreTime(t *testing.T) {
	orig := saml.TimeNow
	t.Cleanup(func() { saml.TimeNow = orig })
}

// ================================================================ tests

// SP-initiated login, HTTP-Redirect binding, signed AuthnRequest, encrypted
// assertion.
func TestLoginRedirectBindingSigned(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("corp")
	cfg.SignRequests = true
	c := e.registered(cfg, true)
	_, spCert := spKeyPair(t, e.store.values["sp-key"])

	flow, rec := begin(t, c)
	if rec.Code != http.StatusFound {
		t.Fatalf("Begin: %d", rec.Code)
	}
	loc, err := url.Parse(rec.Header().Get("Location"))
	if err != nil || loc.Scheme+"://"+loc.Host != e.idp.url || loc.Path != "/sso" {
		t.Fatalf("redirect to %v", loc)
	}
	q := loc.Query()
	if q.Get("RelayState") != flow.State {
		t.Fatalf("RelayState %q, want the opaque flow state", q.Get("RelayState"))
	}
	// The redirect binding signs the query string: SAMLRequest, RelayState, SigAlg.
	if q.Get("SigAlg") != rsaSHA256 {
		t.Fatalf("SigAlg %q", q.Get("SigAlg"))
	}
	signed, sigPart, ok := strings.Cut(loc.RawQuery, "&Signature=")
	if !ok {
		t.Fatal("no Signature")
	}
	sigB64, _ := url.QueryUnescape(sigPart)
	sig, _ := base64.StdEncoding.DecodeString(sigB64)
	sum := sha256.Sum256([]byte(signed))
	if err := rsa.VerifyPKCS1v15(spCert.PublicKey.(*rsa.PublicKey), crypto.SHA256, sum[:], sig); err != nil {
		t.Fatalf("AuthnRequest signature: %v", err)
	}
	var ar saml.AuthnRequest
	if err := xml.Unmarshal(inflate(t, q.Get("SAMLRequest")), &ar); err != nil {
		t.Fatal(err)
	}
	if ar.ID != flow.Data["request_id"] || ar.AssertionConsumerServiceURL != flow.Callback ||
		ar.Issuer.Value != c.EntityID() || *ar.NameIDPolicy.Format != persistent {
		t.Fatalf("AuthnRequest %+v", ar)
	}

	b := newBrowser(t)
	f := b.login(b.get(loc.String()))
	raw, _ := base64.StdEncoding.DecodeString(f.values.Get("SAMLResponse"))
	if !bytes.Contains(raw, []byte("EncryptedAssertion")) || bytes.Contains(raw, []byte("<saml:Assertion")) {
		t.Fatal("the IdP did not encrypt the assertion to the SP metadata's encryption certificate")
	}
	id, err := finish(c, flow, f.values)
	e.accepted(id, err, "corp")
	checkAlice(t, id)

	// A flipped byte in the ciphertext is refused.
	doc := responseDoc(t, f.values)
	cv := doc.FindElement("//CipherValue")
	ct, _ := base64.StdEncoding.DecodeString(cv.Text())
	ct[len(ct)-20] ^= 1
	cv.SetText(base64.StdEncoding.EncodeToString(ct))
	_, err = finish(c, flow, withResponse(t, f.values, doc))
	e.refused(err, samlconn.ErrInvalidResponse, "verification failed")
}

// SP-initiated login, HTTP-POST binding, signed AuthnRequest.
func TestLoginPostBindingSigned(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("partner")
	cfg.SignRequests = true
	cfg.Binding = "post"
	c := e.registered(cfg, true)
	_, spCert := spKeyPair(t, e.store.values["sp-key"])

	flow, rec := begin(t, c)
	if rec.Code != http.StatusOK || !strings.HasPrefix(rec.Header().Get("Content-Type"), "text/html") {
		t.Fatalf("Begin: %d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	page := rec.Body.String()
	if strings.Contains(page, "<script>") {
		t.Fatal("inline script: fedhub's CSP blocks it")
	}
	m := scriptR.FindStringSubmatch(page)
	if m == nil || m[1] != baseURL+"/broker/partner/saml/post.js" {
		t.Fatalf("submit script: %v", m)
	}
	js := httptest.NewRecorder()
	routes(c)["GET /saml/post.js"](js, httptest.NewRequest(http.MethodGet, m[1], nil))
	if !strings.Contains(js.Body.String(), `getElementById("saml-post").submit()`) || !strings.Contains(page, `id="saml-post"`) {
		t.Fatalf("script %q does not submit the form", js.Body.String())
	}
	f := parseForm(t, page)
	if f.action != e.idp.url+"/sso" || f.values.Get("RelayState") != flow.State {
		t.Fatalf("form %+v", f)
	}
	// The XML AuthnRequest carries an enveloped signature by the SP key.
	reqXML, _ := base64.StdEncoding.DecodeString(f.values.Get("SAMLRequest"))
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(reqXML); err != nil {
		t.Fatal(err)
	}
	vc := dsig.NewDefaultValidationContext(&dsig.MemoryX509CertificateStore{Roots: []*x509.Certificate{spCert}})
	if _, err := vc.Validate(doc.Root()); err != nil {
		t.Fatalf("AuthnRequest signature: %v", err)
	}
	if doc.Root().SelectAttrValue("ID", "") != flow.Data["request_id"] {
		t.Fatal("request ID not kept in the flow")
	}

	b := newBrowser(t)
	resp := b.login(b.post(f.action, f.values))
	if resp.values.Get("RelayState") != flow.State {
		t.Fatal("RelayState lost")
	}
	id, err := finish(c, flow, resp.values)
	e.accepted(id, err, "partner")
	checkAlice(t, id)
}

// Forged signatures, unsigned responses and signature wrapping are refused;
// the unchanged assertion (response signature removed) is still accepted,
// which shows the refusals did not burn it in the replay cache.
func TestForgedSignaturesRefused(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("plain"), false) // plaintext assertions, to edit them
	flow, v := spLogin(t, c, newBrowser(t))
	attackerKey, attackerCert := selfSigned(t, 2048, "attacker", time.Now().Add(-time.Hour), time.Now().Add(time.Hour))

	assertion := func(doc *etree.Document) *etree.Element { return child(t, doc.Root(), "Assertion") }
	nameID := func(doc *etree.Document) *etree.Element {
		return child(t, child(t, assertion(doc), "Subject"), "NameID")
	}
	evilName := func(doc *etree.Document) { n := nameID(doc); n.SetText("id-mallory-0001") }
	resign := func(doc *etree.Document) {
		a := assertion(doc)
		removeChild(a, "Signature")
		sc := dsig.NewDefaultSigningContext(dsig.TLSCertKeyStore(tls.Certificate{
			Certificate: [][]byte{attackerCert.Raw}, PrivateKey: attackerKey}))
		sc.Canonicalizer = dsig.MakeC14N10ExclusiveCanonicalizerWithPrefixList("")
		if err := sc.SetSignatureMethod(rsaSHA256); err != nil {
			t.Fatal(err)
		}
		signedEl, err := sc.SignEnveloped(a)
		if err != nil {
			t.Fatal(err)
		}
		doc.Root().RemoveChild(a)
		doc.Root().AddChild(signedEl)
	}
	cases := []struct {
		name string
		edit func(doc *etree.Document)
		log  string
	}{
		{"NameID changed, signatures kept", evilName, "Signature could not be verified"},
		{"byte flipped in the response SignatureValue", func(doc *etree.Document) {
			sv := child(t, child(t, doc.Root(), "Signature"), "SignatureValue")
			sig, _ := base64.StdEncoding.DecodeString(sv.Text())
			sig[7] ^= 0x40
			sv.SetText(base64.StdEncoding.EncodeToString(sig))
		}, "cannot validate signature on Response"},
		{"response unsigned, NameID changed in the signed assertion", func(doc *etree.Document) {
			removeChild(doc.Root(), "Signature")
			evilName(doc)
		}, "cannot validate signature on Assertion"},
		{"response unsigned, assertion re-signed with another key", func(doc *etree.Document) {
			removeChild(doc.Root(), "Signature")
			evilName(doc)
			resign(doc)
		}, "Could not verify certificate against trusted certs"},
		{"no signature at all", func(doc *etree.Document) {
			removeChild(doc.Root(), "Signature")
			removeChild(assertion(doc), "Signature")
		}, "signature element not present"},
		{"wrapping: evil assertion, signed original inside it", func(doc *etree.Document) {
			removeChild(doc.Root(), "Signature")
			orig := assertion(doc)
			evil := orig.Copy()
			child(t, child(t, evil, "Subject"), "NameID").SetText("id-mallory-0001")
			advice := evil.CreateElement("saml:Advice")
			advice.AddChild(orig.Copy())
			doc.Root().RemoveChild(orig)
			doc.Root().AddChild(evil)
		}, "exactly one is accepted"},
		{"wrapping: evil assertion next to the signed one", func(doc *etree.Document) {
			removeChild(doc.Root(), "Signature")
			orig := assertion(doc)
			evil := orig.Copy()
			evil.CreateAttr("ID", "id-evil")
			removeChild(evil, "Signature")
			child(t, child(t, evil, "Subject"), "NameID").SetText("id-mallory-0001")
			doc.Root().InsertChildAt(orig.Index(), evil)
		}, "exactly one is accepted"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			doc := responseDoc(t, v)
			tc.edit(doc)
			id, err := finish(c, flow, withResponse(t, v, doc))
			if err == nil {
				t.Fatalf("accepted as %q", id.Subject)
			}
			e.refused(err, samlconn.ErrInvalidResponse, tc.log)
		})
	}
	if len(e.store.once) != 0 {
		t.Fatal("a refused response reached the replay cache")
	}

	// A non-success status is shown as the IdP's refusal, without its details.
	doc := responseDoc(t, v)
	child(t, child(t, doc.Root(), "Status"), "StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Requester")
	_, err := finish(c, flow, withResponse(t, v, doc))
	e.refused(err, samlconn.ErrIDPDenied, "status:Requester")

	// Control: the same assertion, response signature removed, unchanged.
	doc = responseDoc(t, v)
	removeChild(doc.Root(), "Signature")
	id, err := finish(c, flow, withResponse(t, v, doc))
	e.accepted(id, err, "plain")
}

// A response is accepted once: a second Finish (a fresh flow with the same
// request ID, and another node sharing the store) is a replay.
func TestReplayRefused(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("corp")
	c := e.registered(cfg, true)
	flow, v := spLogin(t, c, newBrowser(t))
	id, err := finish(c, flow, v)
	e.accepted(id, err, "corp")
	if len(e.store.once) != 1 {
		t.Fatalf("replay cache: %v", e.store.once)
	}
	for key, until := range e.store.once {
		if !strings.HasPrefix(key, "assertion:") || time.Until(until) < saml.MaxIssueDelay {
			t.Fatalf("replay cache entry %s until %s: must outlive the assertion's NotOnOrAfter", key, until)
		}
	}

	fresh := &brokers.Flow{State: "another-state", Callback: flow.Callback,
		Data: map[string]string{"request_id": flow.Data["request_id"]}}
	v2 := url.Values{"SAMLResponse": v["SAMLResponse"], "RelayState": {fresh.State}}
	_, err = finish(c, fresh, v2)
	e.refused(err, samlconn.ErrReplayed, "replay")

	// Another node: its own Connector over the same (shared) store.
	node2 := e.connector(cfg)
	_, err = finish(node2, flow, v)
	e.refused(err, samlconn.ErrReplayed, "replay")
}

// An assertion for another SP (audience) or another ACS (recipient) is
// refused.
func TestWrongAudienceOrRecipientRefused(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	flow, v := spLogin(t, c, newBrowser(t))

	// Same ACS URL and key, another entity ID: the assertion was not meant
	// for it.
	other := e.config("corp")
	other.EntityID = "https://other-sp.example/saml"
	_, err := finish(e.connector(other), flow, v)
	e.refused(err, samlconn.ErrInvalidResponse, "AudienceRestriction", "does not name our entity ID")

	// Same entity ID, another ACS URL (another fedhub base URL).
	moved := e.config("corp")
	moved.BaseURL = "https://elsewhere.test"
	moved.EntityID = c.EntityID()
	mc := e.connector(moved)
	_, err = mc.Finish(context.Background(), acsRequest(mc.ACSURL(), v), flow)
	e.refused(err, samlconn.ErrInvalidResponse, "Destination")

	id, err := finish(c, flow, v)
	e.accepted(id, err, "corp")
}

// What crewjam does not check, and this connector does: the IdP itself
// (real, signing properly) sends defective assertions.
func TestDefectiveAssertionsRefused(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	b := newBrowser(t)
	cases := []struct {
		name   string
		mutate func(a *saml.Assertion)
		log    string
	}{
		{"no AudienceRestriction", func(a *saml.Assertion) { a.Conditions.AudienceRestrictions = nil }, "no AudienceRestriction"},
		{"a second AudienceRestriction for someone else", func(a *saml.Assertion) {
			a.Conditions.AudienceRestrictions = append(a.Conditions.AudienceRestrictions,
				saml.AudienceRestriction{Audience: saml.Audience{Value: "https://other-sp.example"}})
		}, "does not name our entity ID"},
		{"no SubjectConfirmation", func(a *saml.Assertion) { a.Subject.SubjectConfirmations = nil }, "no bearer SubjectConfirmation"},
		{"holder-of-key instead of bearer", func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].Method = "urn:oasis:names:tc:SAML:2.0:cm:holder-of-key"
		}, "no bearer SubjectConfirmation"},
		{"Recipient is another ACS", func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.Recipient = "https://evil.example/acs"
		}, "Recipient"},
		{"SubjectConfirmationData expired", func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.NotOnOrAfter = time.Now().Add(-10 * time.Minute)
		}, "SubjectConfirmationData is expired"},
		{"SubjectConfirmation for another request", func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = "id-other-request"
		}, "SubjectConfirmation"},
		{"another issuer", func(a *saml.Assertion) { a.Issuer.Value = "https://other-idp.example" }, "issuer is not"},
		// crewjam dereferences a missing SubjectConfirmationData.
		{"SubjectConfirmation without data", func(a *saml.Assertion) {
			a.Subject.SubjectConfirmations[0].SubjectConfirmationData = nil
		}, "panic while verifying"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			e.idp.assertions.set(tc.mutate)
			defer e.idp.assertions.set(nil)
			flow, v := spLogin(t, c, b)
			id, err := finish(c, flow, v)
			if err == nil {
				t.Fatalf("accepted as %q", id.Subject)
			}
			e.refused(err, samlconn.ErrInvalidResponse, tc.log)
		})
	}
	flow, v := spLogin(t, c, b)
	id, err := finish(c, flow, v)
	e.accepted(id, err, "corp")
}

// Expired assertions (our clock ahead, or the IdP's clock behind) are refused.
func TestExpiredAssertionRefused(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	b := newBrowser(t)
	restoreTime(t)
	real := saml.TimeNow

	flow, v := spLogin(t, c, b)
	saml.TimeNow = func() time.Time { return real().Add(10 * time.Minute) }
	_, err := finish(c, flow, v)
	e.refused(err, samlconn.ErrInvalidResponse, "expired")
	saml.TimeNow = real
	id, err := finish(c, flow, v) // the refusal did not consume it
	e.accepted(id, err, "corp")

	// The IdP's clock is an hour behind: its assertion is already stale.
	saml.TimeNow = func() time.Time { return real().Add(-time.Hour) }
	flow, v = spLogin(t, c, b)
	saml.TimeNow = real
	_, err = finish(c, flow, v)
	e.refused(err, samlconn.ErrInvalidResponse, "expired")
}

// IdP-initiated responses: refused unless allowed, then accepted once.
func TestUnsolicitedResponse(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("corp")
	c := e.registered(cfg, true)
	e.idp.put(t, "/shortcuts/fedhub", `{"service_provider":"`+c.EntityID()+`"}`)
	b := newBrowser(t)
	b.post(e.idp.url+"/login", url.Values{"user": {"alice"}, "password": {alicePass}})
	idpInitiated := func() url.Values {
		f := b.login(b.get(e.idp.url + "/login/fedhub"))
		if f.action != c.ACSURL() {
			t.Fatalf("IdP-initiated response posts to %s", f.action)
		}
		return f.values
	}
	unsolicited := func(c *samlconn.Connector, v url.Values) (login.Identity, error) {
		return c.FinishUnsolicited(context.Background(), acsRequest(c.ACSURL(), v))
	}

	v := idpInitiated()
	if doc := responseDoc(t, v); doc.Root().SelectAttrValue("InResponseTo", "") != "" {
		t.Fatal("an IdP-initiated response answers no request")
	}
	_, err := unsolicited(c, v)
	e.refused(err, samlconn.ErrUnsolicited, "allow_idp_initiated")

	cfg.AllowIDPInitiated = true
	allowed := e.connector(cfg)
	id, err := unsolicited(allowed, v)
	e.accepted(id, err, "corp")
	checkAlice(t, id)
	_, err = unsolicited(allowed, v)
	e.refused(err, samlconn.ErrReplayed, "replay")

	// An IdP-initiated assertion must not answer a request either.
	e.idp.assertions.set(func(a *saml.Assertion) {
		a.Subject.SubjectConfirmations[0].SubjectConfirmationData.InResponseTo = "id-some-request"
	})
	_, err = unsolicited(allowed, idpInitiated())
	e.idp.assertions.set(nil)
	e.refused(err, samlconn.ErrInvalidResponse, "InResponseTo is set on an IdP-initiated response")

	// Through Finish (a flow with some request ID) it does not pass either.
	flow, _ := begin(t, allowed)
	_, err = finish(allowed, flow, url.Values{"SAMLResponse": idpInitiated()["SAMLResponse"], "RelayState": {flow.State}})
	e.refused(err, samlconn.ErrInvalidResponse, "InResponseTo")

	// A solicited response whose flow is gone is not IdP-initiated: refused
	// on both connectors, and the allowed one does not consume it.
	flow, v = spLogin(t, allowed, b)
	_, err = unsolicited(allowed, v)
	e.refused(err, samlconn.ErrUnknownLogin, "no login in progress")
	_, err = unsolicited(c, v)
	e.refused(err, samlconn.ErrUnknownLogin, "no login in progress")
	id, err = finish(allowed, flow, v)
	e.accepted(id, err, "corp")
}

// InResponseTo must be this flow's request ID.
func TestResponseForAnotherRequestRefused(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	b := newBrowser(t)
	flow, v := spLogin(t, c, b)
	other, _ := begin(t, c)

	wrong := &brokers.Flow{State: flow.State, Callback: flow.Callback, Data: map[string]string{"request_id": other.Data["request_id"]}}
	_, err := finish(c, wrong, v)
	e.refused(err, samlconn.ErrInvalidResponse, "is not this login's AuthnRequest")

	empty := &brokers.Flow{State: flow.State, Callback: flow.Callback, Data: map[string]string{}}
	_, err = finish(c, empty, v)
	e.refused(err, samlconn.ErrInvalidResponse, "no AuthnRequest ID")

	// RelayState must be the flow's state.
	moved := &brokers.Flow{State: other.State, Callback: flow.Callback, Data: flow.Data}
	_, err = finish(c, moved, v)
	e.refused(err, samlconn.ErrInvalidResponse, "RelayState does not match")

	id, err := finish(c, flow, v)
	e.accepted(id, err, "corp")
}

// Transient NameIDs do not identify anyone; a subject attribute can.
func TestTransientNameID(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	e.idp.sessions.setFormat(transient)
	b := newBrowser(t)

	flow, v := spLogin(t, c, b)
	_, err := finish(c, flow, v)
	e.refused(err, samlconn.ErrNoStableSubject, "not persistent")
	var ue *login.UserError
	if !errors.As(err, &ue) {
		t.Fatal("not a UserError")
	}

	cfg := e.config("bysubject")
	cfg.Attributes["subject"] = "uid"
	sc := e.registered(cfg, true)
	flow, v = spLogin(t, sc, b)
	id, err := finish(sc, flow, v)
	if err != nil || id.Subject != e.idp.entityID+"!alice" {
		t.Fatalf("subject attribute: %+v %v", id, err)
	}

	cfg = e.config("x")
	cfg.NameIDFormat = transient
	if _, err := samlconn.New(context.Background(), cfg, e.store, nil); err == nil || !strings.Contains(err.Error(), "attributes.subject") {
		t.Fatalf("New with a transient NameID format and no subject attribute: %v", err)
	}
}

// The SP metadata: entity ID, ACS, signing and encryption certificates.
func TestSPMetadata(t *testing.T) {
	store := newStore() // no key yet: generated once, shared by both nodes
	ctx := context.Background()
	cfg := samlconn.Config{ID: "corp", BaseURL: baseURL + "/", IDPMetadataURL: "http://127.0.0.1:1/metadata", SignRequests: true}
	c, err := samlconn.New(ctx, cfg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	c2, err := samlconn.New(ctx, cfg, store, nil)
	if err != nil {
		t.Fatal(err)
	}
	key, cert := spKeyPair(t, store.values["sp-key"])
	if key.N.BitLen() != 3072 {
		t.Fatalf("generated key: %d bits", key.N.BitLen())
	}

	rec := httptest.NewRecorder()
	routes(c)["GET /saml/metadata"](rec, httptest.NewRequest(http.MethodGet, "/broker/corp/saml/metadata", nil))
	if rec.Code != 200 || rec.Header().Get("Content-Type") != "application/samlmetadata+xml" {
		t.Fatalf("%d %s", rec.Code, rec.Header().Get("Content-Type"))
	}
	if !bytes.Equal(rec.Body.Bytes(), spMetadata(t, c2)) && !bytes.Contains(spMetadata(t, c2), []byte(base64.StdEncoding.EncodeToString(cert.Raw))) {
		t.Fatal("the second node publishes another certificate")
	}
	var ed saml.EntityDescriptor
	if err := xml.Unmarshal(rec.Body.Bytes(), &ed); err != nil {
		t.Fatalf("metadata is not valid SAML metadata: %v\n%s", err, rec.Body)
	}
	const entity = baseURL + "/broker/corp/saml/metadata"
	if ed.EntityID != entity || c.EntityID() != entity {
		t.Fatalf("entity ID %q", ed.EntityID)
	}
	spd := ed.SPSSODescriptors[0]
	if len(spd.AssertionConsumerServices) != 1 || spd.AssertionConsumerServices[0].Binding != saml.HTTPPostBinding ||
		spd.AssertionConsumerServices[0].Location != baseURL+"/broker/corp/callback" {
		t.Fatalf("ACS %+v", spd.AssertionConsumerServices)
	}
	if !*spd.AuthnRequestsSigned || !*spd.WantAssertionsSigned {
		t.Fatal("AuthnRequestsSigned / WantAssertionsSigned")
	}
	if len(spd.NameIDFormats) != 1 || string(spd.NameIDFormats[0]) != persistent {
		t.Fatalf("NameIDFormat %v", spd.NameIDFormats)
	}
	uses := map[string]bool{}
	for _, kd := range spd.KeyDescriptors {
		if kd.KeyInfo.X509Data.X509Certificates[0].Data != base64.StdEncoding.EncodeToString(cert.Raw) {
			t.Fatalf("%s certificate is not the SP certificate", kd.Use)
		}
		uses[kd.Use] = true
	}
	if !uses["signing"] || !uses["encryption"] {
		t.Fatalf("key uses %v", uses)
	}

	// From files; a signing certificate is published even when requests
	// are not signed.
	dir := t.TempDir()
	fk, fc := selfSigned(t, 2048, "file SP", time.Now().Add(-time.Hour), time.Now().AddDate(1, 0, 0))
	kp, cp := pemPair(fk, fc)
	os.WriteFile(filepath.Join(dir, "sp.key"), kp, 0o600)
	os.WriteFile(filepath.Join(dir, "sp.crt"), cp, 0o600)
	fcfg := samlconn.Config{ID: "files", BaseURL: baseURL, IDPMetadataURL: "http://127.0.0.1:1/metadata",
		EntityID: "urn:fedhub:test", SPKeyFile: filepath.Join(dir, "sp.key"), SPCertFile: filepath.Join(dir, "sp.crt")}
	fcon, err := samlconn.New(ctx, fcfg, newStore(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ed = saml.EntityDescriptor{}
	if err := xml.Unmarshal(spMetadata(t, fcon), &ed); err != nil {
		t.Fatal(err)
	}
	if ed.EntityID != "urn:fedhub:test" {
		t.Fatalf("entity ID %q", ed.EntityID)
	}
	n := 0
	for _, kd := range ed.SPSSODescriptors[0].KeyDescriptors {
		if kd.KeyInfo.X509Data.X509Certificates[0].Data == base64.StdEncoding.EncodeToString(fc.Raw) {
			n++
		}
	}
	if n != 2 {
		t.Fatal("the file certificate is not published for signing and encryption")
	}
	fcfg.SPCertFile = filepath.Join(dir, "missing.crt")
	if _, err := samlconn.New(ctx, fcfg, newStore(), nil); err == nil {
		t.Fatal("missing certificate file accepted")
	}
}

// IdP metadata from a file; Health and certificate expiry.
func TestIDPMetadataFile(t *testing.T) {
	e := newEnv(t)
	path := filepath.Join(t.TempDir(), "idp.xml")
	os.WriteFile(path, e.idp.metadata(t), 0o600)
	cfg := e.config("file")
	cfg.IDPMetadataURL, cfg.IDPMetadataFile = "", path
	c := e.registered(cfg, true)
	if !c.CertificateExpiry().Equal(idpCert.NotAfter) {
		t.Fatalf("CertificateExpiry %s, want %s", c.CertificateExpiry(), idpCert.NotAfter)
	}
	if err := c.Health(context.Background()); err != nil {
		t.Fatalf("Health: %v", err)
	}
	flow, v := spLogin(t, c, newBrowser(t))
	id, err := finish(c, flow, v)
	e.accepted(id, err, "file")

	os.WriteFile(path, []byte("<html>not metadata</html>"), 0o600)
	if _, err := samlconn.New(context.Background(), cfg, e.store, nil); err == nil {
		t.Fatal("invalid metadata file accepted")
	}

	// An IdP certificate about to expire, and one that has expired.
	for _, tc := range []struct {
		notAfter time.Time
		want     string
	}{
		{time.Now().Add(72 * time.Hour), "expires on " + time.Now().Add(72*time.Hour).UTC().Format("2006-01-02")},
		{time.Now().Add(-time.Hour), "no IdP signing certificate is valid now"},
	} {
		_, cert := selfSigned(t, 2048, "short IdP", time.Now().Add(-48*time.Hour), tc.notAfter)
		idp := saml.IdentityProvider{Certificate: cert, MetadataURL: url.URL{Scheme: "https", Host: "idp.example", Path: "/md"},
			SSOURL: url.URL{Scheme: "https", Host: "idp.example", Path: "/sso"}}
		md, _ := xml.Marshal(idp.Metadata())
		os.WriteFile(path, md, 0o600)
		sc, err := samlconn.New(context.Background(), cfg, e.store, nil)
		if err != nil {
			t.Fatal(err)
		}
		if err := sc.Health(context.Background()); err == nil || !strings.Contains(err.Error(), tc.want) {
			t.Fatalf("Health: %v; want %q", err, tc.want)
		}
		if !sc.CertificateExpiry().Equal(cert.NotAfter) {
			t.Fatal("CertificateExpiry")
		}
	}
}

// IdP metadata from a URL: down at New (New works, Begin fails with a user
// message), then up (logins work), then failing refreshes (the last good
// metadata is kept and Health says so).
func TestIDPMetadataURL(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now

	store, logs := newStoreWithKey(t), &logBuf{}
	cfg := samlconn.Config{ID: "corp", BaseURL: baseURL, IDPMetadataURL: "http://" + addr + "/metadata",
		MetadataRefresh: time.Millisecond, Attributes: map[string]string{"groups": groupsAttr}}
	c, err := samlconn.New(context.Background(), cfg, store, slog.New(slog.NewTextHandler(logs, nil)))
	if err != nil {
		t.Fatalf("New must not need the IdP: %v", err)
	}
	flow := &brokers.Flow{State: "s", Callback: c.ACSURL(), Data: map[string]string{}}
	err = c.Begin(context.Background(), httptest.NewRecorder(), httptest.NewRequest(http.MethodGet, "/", nil), flow)
	var ue *login.UserError
	if !errors.As(err, &ue) || !errors.Is(err, samlconn.ErrIDPUnavailable) {
		t.Fatalf("Begin with the IdP down: %v", err)
	}
	if err := c.Health(context.Background()); err == nil || !strings.Contains(err.Error(), "cannot be loaded") {
		t.Fatalf("Health with the IdP down: %v", err)
	}
	if !c.CertificateExpiry().IsZero() {
		t.Fatal("CertificateExpiry before any metadata")
	}

	if ln, err = peers.Relisten(addr); err != nil { // a failure, never a skip: CI must see it
		t.Fatalf("port %s was taken meanwhile: %v", addr, err)
	}
	e := &env{t: t, idp: newIDP(t, ln), store: store, log: logs}
	e.idp.register(t, c, "corp", true)
	b := newBrowser(t)
	flow, v := spLogin(t, c, b)
	id, err := finish(c, flow, v)
	e.accepted(id, err, "corp")
	checkAlice(t, id)

	// The metadata URL fails: the last good metadata keeps logins working.
	e.idp.metadataDown.Store(true)
	deadline := time.Now().Add(5 * time.Second)
	for {
		time.Sleep(5 * time.Millisecond)
		flow, v = spLogin(t, c, b) // each Begin starts a background refresh
		if err := c.Health(context.Background()); err != nil && strings.Contains(err.Error(), "refresh") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("Health never reported the failing refresh")
		}
	}
	if !strings.Contains(logs.String(), "kept_metadata_from") {
		t.Fatalf("log:\n%s", logs)
	}
	id, err = finish(c, flow, v)
	e.accepted(id, err, "corp")

	e.idp.metadataDown.Store(false)
	for deadline = time.Now().Add(5 * time.Second); ; time.Sleep(5 * time.Millisecond) {
		_, _ = begin(t, c)
		if err := c.Health(context.Background()); err == nil {
			break
		} else if time.Now().After(deadline) {
			t.Fatalf("Health after recovery: %v", err)
		}
	}
}

// Config mistakes are reported by New.
func TestNewRefusesBadConfig(t *testing.T) {
	store := newStoreWithKey(t)
	ok := samlconn.Config{ID: "x", BaseURL: baseURL, IDPMetadataURL: "https://idp.example/md"}
	for name, edit := range map[string]func(*samlconn.Config){
		"no metadata":        func(c *samlconn.Config) { c.IDPMetadataURL = "" },
		"two metadata":       func(c *samlconn.Config) { c.IDPMetadataFile = "/etc/idp.xml" },
		"relative base URL":  func(c *samlconn.Config) { c.BaseURL = "/fedhub" },
		"unknown binding":    func(c *samlconn.Config) { c.Binding = "artifact" },
		"unknown attribute":  func(c *samlconn.Config) { c.Attributes = map[string]string{"phone": "tel"} },
		"email NameID":       func(c *samlconn.Config) { c.NameIDFormat = "urn:oasis:names:tc:SAML:1.1:nameid-format:emailAddress" },
		"key without cert":   func(c *samlconn.Config) { c.SPKeyFile = "/etc/sp.key" },
		"negative refresh":   func(c *samlconn.Config) { c.MetadataRefresh = -time.Second },
		"no connector ID":    func(c *samlconn.Config) { c.ID = "" },
		"metadata URL ftp":   func(c *samlconn.Config) { c.IDPMetadataURL = "ftp://idp.example/md" },
		"missing file":       func(c *samlconn.Config) { c.IDPMetadataURL, c.IDPMetadataFile = "", "/nonexistent/idp.xml" },
		"transient, no subj": func(c *samlconn.Config) { c.NameIDFormat = transient },
		"metadata over http": func(c *samlconn.Config) { c.IDPMetadataURL = "http://idp.example/md" },
		"negative max age":   func(c *samlconn.Config) { c.MaxAgeWithoutUpstream = -time.Hour },
		"MFA class twice":    func(c *samlconn.Config) { c.MFAContextClasses = []string{"urn:a", "urn:a"} },
	} {
		cfg := ok
		edit(&cfg)
		if _, err := samlconn.New(context.Background(), cfg, store, nil); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := samlconn.New(context.Background(), ok, store, nil); err != nil {
		t.Fatal(err)
	}
}
