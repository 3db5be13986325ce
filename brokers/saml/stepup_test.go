package saml_test

import (
	"context"
	"encoding/base64"
	"errors"
	"maps"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strconv"
	"testing"
	"time"

	"github.com/beevik/etree"
	"github.com/crewjam/saml"

	"github.com/fedhub/fedhub/brokers"
	samlconn "github.com/fedhub/fedhub/brokers/saml"
	"github.com/fedhub/fedhub/login"
)

const (
	passwordClass = "urn:oasis:names:tc:SAML:2.0:ac:classes:PasswordProtectedTransport" // samlidp's
	twoFactor     = "urn:oasis:names:tc:SAML:2.0:ac:classes:MobileTwoFactorContract"
	papeMFA       = "http://schemas.openid.net/pape/policies/2007/06/multi-factor"
)

// sentRequest decodes the AuthnRequest Begin sent, whatever the binding.
func sentRequest(t *testing.T, rec *httptest.ResponseRecorder) *etree.Element {
	t.Helper()
	var raw []byte
	switch rec.Code {
	case http.StatusFound:
		loc, err := url.Parse(rec.Header().Get("Location"))
		if err != nil {
			t.Fatal(err)
		}
		raw = inflate(t, loc.Query().Get("SAMLRequest"))
	case http.StatusOK:
		var err error
		if raw, err = base64.StdEncoding.DecodeString(parseForm(t, rec.Body.String()).values.Get("SAMLRequest")); err != nil {
			t.Fatal(err)
		}
	default:
		t.Fatalf("Begin answered %d", rec.Code)
	}
	doc := etree.NewDocument()
	if err := doc.ReadFromBytes(raw); err != nil {
		t.Fatal(err)
	}
	if doc.Root() == nil || doc.Root().Tag != "AuthnRequest" {
		t.Fatalf("not an AuthnRequest: %s", raw)
	}
	return doc.Root()
}

// asStored is the flow as brokers keeps it between Begin and Finish: its
// state, callback and data.
func asStored(f *brokers.Flow) *brokers.Flow {
	return &brokers.Flow{State: f.State, Callback: f.Callback, Data: maps.Clone(f.Data)}
}

// A forced flow sends ForceAuthn="true" in the AuthnRequest, in both
// bindings, signed or not; the IdP accepts the request.
func TestForceAuthnRequest(t *testing.T) {
	e := newEnv(t)
	started := time.Date(2031, 5, 6, 7, 8, 9, 0, time.UTC)
	for i, tc := range []struct {
		name    string
		binding string
		sign    bool
		force   bool
	}{
		{"redirect", "redirect", false, false},
		{"redirect, forced", "redirect", false, true},
		{"redirect, signed, forced", "redirect", true, true},
		{"post, forced", "post", false, true},
		{"post, signed", "post", true, false},
		{"post, signed, forced", "post", true, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			cfg := e.config("sp" + strconv.Itoa(i))
			cfg.Binding, cfg.SignRequests = tc.binding, tc.sign
			cfg.Now = func() time.Time { return started }
			c := e.registered(cfg, true)
			flow, rec := beginFlow(t, c, tc.force)
			ar := sentRequest(t, rec)
			attr := ar.SelectAttr("ForceAuthn")
			switch {
			case tc.force && (attr == nil || attr.Value != "true"):
				t.Fatalf("ForceAuthn = %v, want \"true\"", attr)
			case !tc.force && attr != nil:
				t.Fatalf("ForceAuthn = %q on a flow that does not force authentication", attr.Value)
			}
			if tc.sign && tc.binding == "post" && ar.FindElement("./Signature") == nil {
				t.Fatal("the posted AuthnRequest is not signed")
			}
			if flow.Data[samlconn.DataStarted] != strconv.FormatInt(started.Unix(), 10) ||
				(flow.Data[samlconn.DataForceAuthn] == "1") != tc.force || flow.Data[samlconn.DataRequestID] != ar.SelectAttrValue("ID", "") {
				t.Fatalf("flow data %v", flow.Data)
			}
			// the IdP takes the request (signature included) and answers it
			v := idpAnswer(t, newBrowser(t), flow, rec)
			if doc := responseDoc(t, v); doc.Root().SelectAttrValue("InResponseTo", "") != flow.Data[samlconn.DataRequestID] {
				t.Fatal("the IdP's answer is not for this request")
			}
		})
	}
}

// AuthnInstant and AuthnContextClassRef of the verified assertion land in
// the identity; MultiFactor compares the class with mfa_context_classes.
func TestAuthnContextInIdentity(t *testing.T) {
	e := newEnv(t)
	cfg := e.config("corp")
	cfg.MFAContextClasses = []string{twoFactor, papeMFA}
	c := e.registered(cfg, true)
	plain := e.registered(e.config("plain"), true)
	old := time.Date(2020, 1, 2, 3, 4, 5, 0, time.UTC)
	now := func(got, before, after time.Time) bool {
		return !got.Before(before.Add(-time.Second)) && !got.After(after)
	}
	for _, tc := range []struct {
		name     string
		c        *samlconn.Connector
		mutate   func(a *saml.Assertion)
		authTime func(got, before, after time.Time) bool
		acr      string
		mfa      bool
	}{
		{name: "samlidp: a password, now", c: c, authTime: now, acr: passwordClass},
		{name: "two-factor class", c: c, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value = twoFactor
		}, authTime: now, acr: twoFactor, mfa: true},
		{name: "PAPE multi-factor", c: c, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value = papeMFA
		}, authTime: now, acr: papeMFA, mfa: true},
		{name: "two-factor class, not configured", c: plain, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value = twoFactor
		}, authTime: now, acr: twoFactor},
		{name: "an old AuthnInstant", c: c, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnInstant = old
		}, authTime: func(got, _, _ time.Time) bool { return got.Equal(old) }, acr: passwordClass},
		{name: "an AuthnInstant in the future counts as now", c: c, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnInstant = saml.TimeNow().Add(time.Hour)
		}, authTime: now, acr: passwordClass},
		{name: "no AuthnContextClassRef", c: c, mutate: func(a *saml.Assertion) {
			a.AuthnStatements[0].AuthnContext.AuthnContextClassRef = nil
		}, authTime: now},
		{name: "no AuthnStatement", c: c, mutate: func(a *saml.Assertion) { a.AuthnStatements = nil },
			authTime: func(got, _, _ time.Time) bool { return got.IsZero() }},
		{name: "two statements: the latest counts", c: c, mutate: func(a *saml.Assertion) {
			earlier := a.AuthnStatements[0]
			earlier.AuthnInstant = old
			earlier.AuthnContext.AuthnContextClassRef = &saml.AuthnContextClassRef{Value: twoFactor}
			a.AuthnStatements = []saml.AuthnStatement{earlier, a.AuthnStatements[0]}
		}, authTime: now, acr: passwordClass},
		{name: "two statements: the latest counts, whatever the order", c: c, mutate: func(a *saml.Assertion) {
			later := a.AuthnStatements[0]
			later.AuthnContext.AuthnContextClassRef = &saml.AuthnContextClassRef{Value: twoFactor}
			a.AuthnStatements[0].AuthnInstant = old
			a.AuthnStatements = append(a.AuthnStatements, later)
		}, authTime: now, acr: twoFactor, mfa: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			e.idp.assertions.set(tc.mutate)
			defer e.idp.assertions.set(nil)
			before := time.Now()
			flow, v := spLogin(t, tc.c, newBrowser(t))
			id, err := finish(tc.c, flow, v)
			after := time.Now()
			e.accepted(id, err, map[*samlconn.Connector]string{c: "corp", plain: "plain"}[tc.c])
			if !tc.authTime(id.AuthTime, before, after) {
				t.Errorf("AuthTime = %v (login between %v and %v)", id.AuthTime, before, after)
			}
			if id.ACR != tc.acr || id.AMR != nil {
				t.Errorf("ACR = %q, AMR = %q; want %q and none", id.ACR, id.AMR, tc.acr)
			}
			if got := tc.c.MultiFactor(id); got != tc.mfa {
				t.Errorf("MultiFactor = %v, want %v", got, tc.mfa)
			}
		})
	}

	// IdP-initiated: the same, through FinishUnsolicited.
	ucfg := e.config("corp")
	ucfg.AllowIDPInitiated, ucfg.MFAContextClasses = true, []string{twoFactor}
	u := e.connector(ucfg)
	e.idp.put(t, "/shortcuts/fedhub", `{"service_provider":"`+u.EntityID()+`"}`)
	e.idp.assertions.set(func(a *saml.Assertion) { a.AuthnStatements[0].AuthnContext.AuthnContextClassRef.Value = twoFactor })
	defer e.idp.assertions.set(nil)
	b := newBrowser(t)
	before := time.Now()
	b.post(e.idp.url+"/login", url.Values{"user": {"alice"}, "password": {alicePass}})
	f := b.login(b.get(e.idp.url + "/login/fedhub"))
	id, err := u.FinishUnsolicited(context.Background(), acsRequest(u.ACSURL(), f.values))
	e.accepted(id, err, "corp")
	if !now(id.AuthTime, before, time.Now()) || id.ACR != twoFactor || !u.MultiFactor(id) {
		t.Errorf("IdP-initiated: AuthTime %v ACR %q MultiFactor %v", id.AuthTime, id.ACR, u.MultiFactor(id))
	}
}

// A forced flow refuses an assertion whose AuthnInstant is before the flow
// began: the IdP ignored ForceAuthn and answered from its session.
func TestForceAuthnFreshness(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("corp"), true)
	instant := func(d time.Duration) func(a *saml.Assertion) {
		return func(a *saml.Assertion) { a.AuthnStatements[0].AuthnInstant = saml.TimeNow().Add(d) }
	}
	for _, tc := range []struct {
		name    string
		force   bool
		session time.Duration // > 0: the browser has an IdP session this old when the flow begins
		mutate  func(a *saml.Assertion)
		refused bool
	}{
		{name: "forced, credentials typed now", force: true},
		{name: "forced, the IdP's session is a minute old", force: true, session: time.Minute, refused: true},
		{name: "not forced, the IdP's session is a minute old", session: time.Minute},
		{name: "forced, AuthnInstant an hour old", force: true, mutate: instant(-time.Hour), refused: true},
		{name: "forced, AuthnInstant 2 s old (IdP clock behind)", force: true, mutate: instant(-2 * time.Second)},
		{name: "forced, AuthnInstant 8 s old", force: true, mutate: instant(-8 * time.Second), refused: true},
		{name: "forced, no AuthnStatement", force: true, mutate: func(a *saml.Assertion) { a.AuthnStatements = nil }, refused: true},
		{name: "not forced, AuthnInstant an hour old", mutate: instant(-time.Hour)},
	} {
		t.Run(tc.name, func(t *testing.T) {
			restoreTime(t)
			b := newBrowser(t)
			var sessionAt time.Time
			if tc.session > 0 {
				sessionAt = saml.TimeNow()
				spLogin(t, c, b) // signs in at the IdP
				real := saml.TimeNow
				saml.TimeNow = func() time.Time { return real().Add(tc.session) }
			}
			e.idp.assertions.set(tc.mutate)
			defer e.idp.assertions.set(nil)
			flow, rec := beginFlow(t, c, tc.force)
			v := idpAnswer(t, b, flow, rec)
			id, err := finish(c, asStored(flow), v)
			if tc.refused {
				if err == nil {
					t.Fatalf("accepted: AuthTime %v", id.AuthTime)
				}
				e.refused(err, samlconn.ErrNotReauthenticated, "ForceAuthn")
				var ue *login.UserError
				if !errors.As(err, &ue) {
					t.Fatal("not a UserError")
				}
				if len(e.store.once) != 0 {
					t.Fatal("the refused assertion went into the replay cache")
				}
				return
			}
			e.accepted(id, err, "corp")
			clear(e.store.once)
			if tc.session > 0 && (id.AuthTime.Before(sessionAt.Add(-time.Second)) || id.AuthTime.After(sessionAt.Add(tc.session/2))) {
				t.Errorf("AuthTime %v, want the IdP session's start %v", id.AuthTime, sessionAt)
			}
		})
	}
}

// The AuthnInstant is read from the verified assertion only: editing it in
// the response breaks the signature.
func TestForceAuthnInstantSigned(t *testing.T) {
	e := newEnv(t)
	c := e.registered(e.config("plain"), false) // plaintext assertions, to edit them
	e.idp.assertions.set(func(a *saml.Assertion) { a.AuthnStatements[0].AuthnInstant = saml.TimeNow().Add(-time.Hour) })
	flow, rec := beginFlow(t, c, true)
	v := idpAnswer(t, newBrowser(t), flow, rec)

	doc := responseDoc(t, v)
	st := doc.FindElement("//AuthnStatement")
	if st == nil {
		t.Fatal("no AuthnStatement")
	}
	st.CreateAttr("AuthnInstant", saml.TimeNow().UTC().Format(time.RFC3339))
	_, err := finish(c, flow, withResponse(t, v, doc))
	e.refused(err, samlconn.ErrInvalidResponse, "verification failed")

	_, err = finish(c, flow, v)
	e.refused(err, samlconn.ErrNotReauthenticated, "ForceAuthn")
}

func TestNewRefusesBadMFAContextClasses(t *testing.T) {
	e := newEnv(t)
	for _, v := range []string{"", " " + twoFactor} {
		cfg := e.config("corp")
		cfg.MFAContextClasses = []string{papeMFA, v}
		if _, err := samlconn.New(context.Background(), cfg, e.store, nil); err == nil {
			t.Errorf("New accepted mfa_context_classes entry %q", v)
		}
	}
}
