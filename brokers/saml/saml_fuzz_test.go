package saml_test

import (
	"context"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base64"
	"encoding/json"
	"errors"
	"io"
	"log/slog"
	"math/big"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"
	dsig "github.com/russellhaering/goxmldsig"

	"github.com/fedhub/fedhub/brokers"
	samlconn "github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/login"
)

// The fuzz targets verify mutations of one real response of crewjam's
// samlidp, signed (response and assertion) and not encrypted, kept in
// testdata/saml-fuzz with the IdP's metadata: every fuzzing process must see
// the same signed bytes. The clocks of crewjam and goxmldsig are stopped at
// the moment the response was made. Rewrite the fixture with
//
//	FEDHUB_WRITE_SAML_FUZZ_FIXTURE=1 go test -run TestWriteSAMLFuzzFixture ./brokers/saml/
const fixtureDir = "testdata/saml-fuzz"

// fixture is testdata/saml-fuzz/fixture.json.
type fixture struct {
	ConnectorID string    `json:"connector_id"`
	BaseURL     string    `json:"base_url"`
	RequestID   string    `json:"request_id"`
	RelayState  string    `json:"relay_state"`
	Now         time.Time `json:"now"`
}

// TestWriteSAMLFuzzFixture writes the fixture of the fuzz targets: a login at
// samlidp with plaintext assertions, as TestForgedSignaturesRefused makes it.
func TestWriteSAMLFuzzFixture(t *testing.T) {
	if os.Getenv("FEDHUB_WRITE_SAML_FUZZ_FIXTURE") == "" {
		t.Skip("set FEDHUB_WRITE_SAML_FUZZ_FIXTURE=1 to rewrite " + fixtureDir)
	}
	e := newEnv(t)
	cfg := e.config("fuzz")
	c := e.registered(cfg, false)
	flow, v := spLogin(t, c, newBrowser(t))
	raw, err := base64.StdEncoding.DecodeString(v.Get("SAMLResponse"))
	if err != nil {
		t.Fatal(err)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	issued, err := time.Parse(time.RFC3339Nano, doc.Root().SelectAttrValue("IssueInstant", ""))
	if err != nil {
		t.Fatal(err)
	}
	fx := fixture{ConnectorID: cfg.ID, BaseURL: cfg.BaseURL, RequestID: flow.Data["request_id"], RelayState: flow.State,
		Now: issued.Add(time.Second).UTC()}
	meta, err := json.MarshalIndent(fx, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	if err := os.MkdirAll(fixtureDir, 0o755); err != nil {
		t.Fatal(err)
	}
	for name, data := range map[string][]byte{
		"fixture.json": append(meta, '\n'), "response.xml": raw, "idp-metadata.xml": e.idp.metadata(t),
	} {
		if err := os.WriteFile(filepath.Join(fixtureDir, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

// onceStore is a connector store without a replay cache: every accepted
// mutation is compared with the original, not refused as its replay.
type onceStore struct{ *memStore }

func (onceStore) Once(context.Context, string, time.Time) (bool, error) { return true, nil }

// samlFuzz is the connector and the original response of the fuzz targets.
type samlFuzz struct {
	c        *samlconn.Connector
	fx       fixture
	raw      []byte
	original login.Identity
}

func newSAMLFuzz(f *testing.F) *samlFuzz {
	f.Helper()
	var s samlFuzz
	data, err := os.ReadFile(filepath.Join(fixtureDir, "fixture.json"))
	if err != nil {
		f.Fatal(err)
	}
	if err := json.Unmarshal(data, &s.fx); err != nil {
		f.Fatal(err)
	}
	if s.raw, err = os.ReadFile(filepath.Join(fixtureDir, "response.xml")); err != nil {
		f.Fatal(err)
	}
	// The clocks stop when the response was made (crewjam's checks, the
	// connector's, and the certificate's validity in goxmldsig).
	origNow, origClock := saml.TimeNow, saml.Clock
	f.Cleanup(func() { saml.TimeNow, saml.Clock = origNow, origClock })
	saml.TimeNow = func() time.Time { return s.fx.Now }
	saml.Clock = dsig.NewFakeClockAt(s.fx.Now)

	store := onceStore{newStore()}
	store.values["sp-key"] = fuzzSPKey(f)
	s.c, err = samlconn.New(context.Background(), samlconn.Config{ID: s.fx.ConnectorID, BaseURL: s.fx.BaseURL,
		IDPMetadataFile: filepath.Join(fixtureDir, "idp-metadata.xml"), Attributes: map[string]string{"groups": groupsAttr}},
		store, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		f.Fatal(err)
	}
	// The control: the response as the IdP sent it is accepted.
	if s.original, err = s.finish(s.raw); err != nil {
		f.Fatalf("the fixture's response is refused: %v", err)
	}
	if !strings.HasSuffix(s.original.Subject, "!"+aliceNameID) || s.original.Username != "alice" {
		f.Fatalf("the fixture's response is accepted as %+v", s.original)
	}
	return &s
}

// fuzzSPKey is an SP key pair in the store's PEM form (only metadata uses it:
// the fixture's assertions are not encrypted).
func fuzzSPKey(f *testing.F) []byte {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		f.Fatal(err)
	}
	tmpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "fuzz SP"},
		NotBefore: time.Unix(0, 0), NotAfter: time.Date(2100, 1, 1, 0, 0, 0, 0, time.UTC)}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		f.Fatal(err)
	}
	kp, cp := pemPair(key, &x509.Certificate{Raw: der})
	return append(kp, cp...)
}

// finish posts raw to the ACS as the answer to the fixture's login.
func (s *samlFuzz) finish(raw []byte) (login.Identity, error) {
	flow := &brokers.Flow{State: s.fx.RelayState, Callback: s.c.ACSURL(),
		Data: map[string]string{samlconn.DataRequestID: s.fx.RequestID}}
	v := url.Values{"SAMLResponse": {base64.StdEncoding.EncodeToString(raw)}, "RelayState": {s.fx.RelayState}}
	return s.c.Finish(context.Background(), acsRequest(flow.Callback, v), flow)
}

// samlErrors are the only errors Finish may answer with: none carries
// upstream data.
var samlErrors = []error{samlconn.ErrInvalidResponse, samlconn.ErrIDPUnavailable, samlconn.ErrReplayed,
	samlconn.ErrUnsolicited, samlconn.ErrUnknownLogin, samlconn.ErrNoStableSubject, samlconn.ErrIDPDenied,
	samlconn.ErrNotReauthenticated}

// check is the property of both targets: raw is refused with one of the
// connector's errors, or accepted as exactly the original identity.
func (s *samlFuzz) check(t *testing.T, raw []byte) {
	id, err := s.finish(raw)
	if err != nil {
		for _, want := range samlErrors {
			if errors.Is(err, want) {
				return
			}
		}
		t.Fatalf("refused with an unexpected error %v", err)
	}
	if !reflect.DeepEqual(id, s.original) {
		t.Fatalf("a changed response is accepted as another identity:\n got %+v\nwant %+v\nresponse:\n%s", id, s.original, raw)
	}
}

// samlSeeds are the original response and known attacks on it.
func (s *samlFuzz) seeds(f *testing.F) [][]byte {
	f.Helper()
	load := func() *etree.Document {
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(s.raw); err != nil {
			f.Fatal(err)
		}
		return doc
	}
	find := func(el *etree.Element, tag string) *etree.Element {
		for _, c := range el.ChildElements() {
			if c.Tag == tag {
				return c
			}
		}
		f.Fatalf("no %s in %s", tag, el.Tag)
		return nil
	}
	assertion := func(doc *etree.Document) *etree.Element { return find(doc.Root(), "Assertion") }
	nameID := func(el *etree.Element) *etree.Element { return find(find(el, "Subject"), "NameID") }
	unsign := func(doc *etree.Document) { doc.Root().RemoveChild(find(doc.Root(), "Signature")) }
	out := func(doc *etree.Document) []byte {
		b, err := doc.WriteToBytes()
		if err != nil {
			f.Fatal(err)
		}
		return b
	}
	edits := []func(doc *etree.Document){
		func(*etree.Document) {},
		unsign,
		// The signed NameID changed.
		func(doc *etree.Document) { nameID(assertion(doc)).SetText("id-mallory-0001") },
		func(doc *etree.Document) { unsign(doc); nameID(assertion(doc)).SetText("id-mallory-0001") },
		// Comments in the NameID: c14n drops them, so the signature holds;
		// the identity must be the signed one, not a truncation of it.
		func(doc *etree.Document) {
			unsign(doc)
			n := nameID(assertion(doc))
			n.SetText("id-alice")
			n.CreateComment("x")
			n.CreateText("-0001")
		},
		func(doc *etree.Document) {
			unsign(doc)
			n := nameID(assertion(doc))
			n.SetText("")
			n.CreateComment("")
			n.CreateText("id-alice-0001")
		},
		// Wrapping: an evil assertion around, beside or instead of the signed one.
		func(doc *etree.Document) {
			unsign(doc)
			orig := assertion(doc)
			evil := orig.Copy()
			nameID(evil).SetText("id-mallory-0001")
			evil.CreateElement("saml:Advice").AddChild(orig.Copy())
			doc.Root().RemoveChild(orig)
			doc.Root().AddChild(evil)
		},
		func(doc *etree.Document) {
			unsign(doc)
			orig := assertion(doc)
			evil := orig.Copy()
			evil.CreateAttr("ID", "id-evil")
			evil.RemoveChild(find(evil, "Signature"))
			nameID(evil).SetText("id-mallory-0001")
			doc.Root().InsertChildAt(orig.Index(), evil)
		},
		func(doc *etree.Document) { // the same ID twice
			unsign(doc)
			orig := assertion(doc)
			evil := orig.Copy()
			evil.RemoveChild(find(evil, "Signature"))
			nameID(evil).SetText("id-mallory-0001")
			doc.Root().InsertChildAt(orig.Index(), evil)
		},
		func(doc *etree.Document) { // the signed assertion hidden in Extensions
			unsign(doc)
			orig := assertion(doc)
			evil := orig.Copy()
			evil.RemoveChild(find(evil, "Signature"))
			nameID(evil).SetText("id-mallory-0001")
			doc.Root().RemoveChild(orig)
			ext := etree.NewElement("samlp:Extensions")
			ext.AddChild(orig)
			doc.Root().InsertChildAt(0, ext)
			doc.Root().AddChild(evil)
		},
		func(doc *etree.Document) { // the response's signature over an evil response
			orig := assertion(doc)
			evil := orig.Copy()
			evil.RemoveChild(find(evil, "Signature"))
			nameID(evil).SetText("id-mallory-0001")
			doc.Root().RemoveChild(orig)
			doc.Root().AddChild(evil)
		},
		// Another IdP status.
		func(doc *etree.Document) {
			find(find(doc.Root(), "Status"), "StatusCode").CreateAttr("Value", "urn:oasis:names:tc:SAML:2.0:status:Requester")
		},
		// A namespace prefix redeclared inside the signed assertion.
		func(doc *etree.Document) {
			unsign(doc)
			nameID(assertion(doc)).CreateAttr("xmlns:saml", "urn:evil")
		},
	}
	var seeds [][]byte
	for _, edit := range edits {
		doc := load()
		edit(doc)
		seeds = append(seeds, out(doc))
	}
	raw := string(s.raw)
	seeds = append(seeds,
		// A DTD with an entity in the NameID.
		[]byte(`<?xml version="1.0"?><!DOCTYPE r [<!ENTITY e "id-mallory-0001">]>`+strings.Replace(raw, aliceNameID, "&e;", 1)),
		// Character references for the signed text: the same after parsing.
		[]byte(strings.Replace(raw, aliceNameID, "id-alice&#45;0001", 1)),
		// Another encoding, a byte-order mark, a cut document, nothing.
		[]byte(`<?xml version="1.0" encoding="ISO-8859-1"?>`+raw),
		append([]byte("\xef\xbb\xbf"), s.raw...),
		s.raw[:len(s.raw)/2],
		[]byte("<samlp:Response xmlns:samlp=\"urn:oasis:names:tc:SAML:2.0:protocol\"/>"),
		nil,
	)
	return seeds
}

// FuzzSAMLResponse verifies byte mutations of a real signed response: each is
// refused with one of the connector's errors (no upstream data in it), or
// accepted as exactly the identity of the unmodified response — an altered
// response never passes as someone else (signature wrapping, comment
// truncation, entities, duplicate IDs).
func FuzzSAMLResponse(f *testing.F) {
	s := newSAMLFuzz(f)
	for _, seed := range s.seeds(f) {
		f.Add(seed)
	}
	f.Fuzz(func(t *testing.T, raw []byte) { s.check(t, raw) })
}

// FuzzSAMLResponseEdit verifies structural edits of the same response, which
// byte mutations rarely reach: ops is read three bytes at a time as (edit,
// element a, element b), elements numbered in document order, and text is
// the text an edit writes. Edits copy or move a into b, remove a, set its
// text, give it b's ID attribute, put a comment into its text, wrap it in a
// new element, or rename its namespace prefix. The property is
// FuzzSAMLResponse's.
func FuzzSAMLResponseEdit(f *testing.F) {
	s := newSAMLFuzz(f)
	for _, seed := range []struct {
		ops  []byte
		text string
	}{
		{nil, ""},
		{[]byte{2, 0, 0}, "x"}, // the Response's text
		{[]byte{1, 3, 0}, ""},  // remove the response's Signature
		{[]byte{0, 14, 1, 2, 15, 0}, "id-mallory-0001"},
		{[]byte{6, 15, 0}, "samlp:Extensions"}, // wrap
		{[]byte{4, 13, 1}, ""},                 // duplicate IDs
		{[]byte{5, 20, 3}, ""},                 // a comment
		{[]byte{7, 20, 0}, "evil"},             // a namespace prefix
		{[]byte{3, 13, 1, 0, 13, 0}, ""},       // move, then copy
	} {
		f.Add(seed.ops, seed.text)
	}
	f.Fuzz(func(t *testing.T, ops []byte, text string) {
		if len(ops) > 30 {
			ops = ops[:30]
		}
		doc := etree.NewDocument()
		if err := doc.ReadFromBytes(s.raw); err != nil {
			t.Fatal(err)
		}
		for i := 0; i+2 < len(ops); i += 3 {
			els := doc.FindElements("//*")
			if len(els) > 200 { // copies of copies: keep the document small
				break
			}
			a, b := els[int(ops[i+1])%len(els)], els[int(ops[i+2])%len(els)]
			switch ops[i] % 8 {
			case 0: // a copy of a as the last child of b
				b.AddChild(a.Copy())
			case 1:
				if p := a.Parent(); p != nil && a != doc.Root() {
					p.RemoveChild(a)
				}
			case 2:
				a.SetText(text)
			case 3: // a moved into b (unless b is inside a)
				inside := false
				for p := b; p != nil; p = p.Parent() {
					inside = inside || p == a
				}
				if p := a.Parent(); !inside && p != nil && a != doc.Root() {
					p.RemoveChild(a)
					b.AddChild(a)
				}
			case 4:
				if id := b.SelectAttrValue("ID", ""); id != "" {
					a.CreateAttr("ID", id)
				}
			case 5: // a comment inside a's text, at b's number
				old := a.Text()
				cut := int(ops[i+2]) % (len(old) + 1)
				a.SetText(old[:cut])
				a.CreateComment(text)
				a.CreateText(old[cut:])
			case 6: // a wrapped in a new element
				if p := a.Parent(); p != nil && a != doc.Root() && text != "" {
					w := etree.NewElement(text)
					p.InsertChildAt(a.Index(), w)
					p.RemoveChild(a)
					w.AddChild(a)
				}
			case 7:
				a.Space = text
			}
		}
		raw, err := doc.WriteToBytes()
		if err != nil {
			return
		}
		s.check(t, raw)
	})
}
