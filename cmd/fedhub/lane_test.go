package main

import (
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/login"
	"github.com/pquerna/otp/totp"
)

// The in-process lane: the whole sign-in — the application's /authorize, the
// login page, a connector, first login, the code, /token and the ID token —
// through fedhub's real router, broker, first login and issuer on SQLite, in
// this test process, with fake connectors (brokers/brokertest) instead of real
// upstreams. It runs in seconds, under -short too; the e2e tests do the same
// against the real binary and real peers, in minutes.
//
//	go test ./cmd/fedhub/ -run Lane -v

// laneLocalPassword is the password of every local account the lane creates.
const laneLocalPassword = "local-Passw0rd!"

// The lane's people. In TestLaneFirstLogin every sign-in finds one local account, jdoe
// (jdoe@example.com, verified, a local password); upstream, these people sign in.
var (
	newcomer = login.Identity{Subject: "up-1", Username: "newcomer",
		Email: "newcomer@example.com", EmailVerified: true, Name: "New Comer"}
	sameEmail = login.Identity{Subject: "up-2", Username: "john.doe",
		Email: "jdoe@example.com", EmailVerified: true, Name: "John Doe"}
	sameEmailUnverified = login.Identity{Subject: "up-3", Username: "john.doe",
		Email: "jdoe@example.com", EmailVerified: false, Name: "John Doe"}
	sameUsername = login.Identity{Subject: "up-4", Username: "jdoe",
		Email: "john@elsewhere.example", EmailVerified: true, Name: "John Doe"}
)

// screen is what the person sees right after the connector.
type screen string

const (
	straight screen = "straight to the application"
	review   screen = "the review page"
	link     screen = "you already have an account"
	denied   screen = "denied"
)

// who is the account the sign-in ends in.
type who string

const (
	nobody   who = "nobody"
	newUser  who = "a new user"
	existing who = "the existing user"
)

// firstLoginCase is one first-login policy and who signs in under it.
type firstLoginCase struct {
	policy firstlogin.Policy
	as     login.Identity // who signs in upstream
	sees   screen
	ends   who
}

// lanePolicy is a connector's first-login policy.
func lanePolicy(onNew, matchBy, onMatch string, trustEmail bool) firstlogin.Policy {
	return firstlogin.Policy{OnNew: onNew, MatchBy: matchBy, OnMatch: onMatch, TrustEmail: trustEmail}
}

const (
	confirm = "confirm_and_reauthenticate"
	auto    = "link_automatically"
)

var firstLoginCases = []firstLoginCase{
	// Nobody matches: on_new decides.
	{lanePolicy("create", "none", confirm, false), newcomer, straight, newUser},
	{lanePolicy("review_then_create", "none", confirm, false), newcomer, review, newUser},
	{lanePolicy("deny", "none", confirm, false), newcomer, denied, nobody},
	{lanePolicy("review_then_create", "email", confirm, false), newcomer, review, newUser},
	{lanePolicy("deny", "email", confirm, false), newcomer, denied, nobody},
	{lanePolicy("create", "none", confirm, false), sameEmail, straight, newUser}, // an email is never an identifier
	// An email match: on_match decides; linking automatically needs all of
	// trust_email, the upstream's verified email and the local one's.
	{lanePolicy("create", "email", confirm, false), sameEmail, link, existing},
	{lanePolicy("create", "email", confirm, true), sameEmail, link, existing},
	{lanePolicy("create", "email", auto, false), sameEmail, link, existing},
	{lanePolicy("create", "email", auto, true), sameEmail, straight, existing},
	{lanePolicy("create", "email", auto, true), sameEmailUnverified, link, existing},
	{lanePolicy("create", "email", "deny", false), sameEmail, denied, nobody},
	{lanePolicy("create", "email", "deny", true), sameEmail, denied, nobody},
	{lanePolicy("deny", "email", confirm, false), sameEmail, link, existing}, // on_new=deny refuses only newcomers
	// A username match: never linked automatically.
	{lanePolicy("create", "username", confirm, false), sameUsername, link, existing},
	{lanePolicy("create", "username", confirm, true), sameUsername, link, existing},
	{lanePolicy("create", "username", auto, false), sameUsername, link, existing},
	{lanePolicy("create", "username", auto, true), sameUsername, link, existing},
	{lanePolicy("create", "username", "deny", false), sameUsername, denied, nobody},
	{lanePolicy("create", "username", "deny", true), sameUsername, denied, nobody},
}

func (c firstLoginCase) String() string {
	p := c.policy
	s := fmt.Sprintf("on_new=%s,match=%s", p.OnNew, p.MatchBy)
	if p.MatchBy != "none" {
		s += ",on_match=" + strings.TrimSuffix(p.OnMatch, "_and_reauthenticate")
	}
	if p.TrustEmail {
		s += ",trust_email"
	}
	s += "/" + c.as.Username
	if !c.as.EmailVerified {
		s += "(unverified)"
	}
	return s
}

// mfaPolicy is the connectors' second-factor policy the lane runs with.
// Local users (jdoe) have an authenticator app unless it is off; new users
// have none.
type mfaPolicy string

const (
	mfaOff      mfaPolicy = "off"
	mfaOptional mfaPolicy = "optional"
	mfaRequired mfaPolicy = "required"
)

var mfaPolicies = []mfaPolicy{mfaOff, mfaOptional, mfaRequired}

// laneKinds are the connector kinds every case runs with.
var laneKinds = []string{"password", "redirect"}

// laneCase is one sign-in of the lane: one more dimension is one more field.
type laneCase struct {
	kind string // password | redirect
	mfa  mfaPolicy
	firstLoginCase
}

func laneCases() []laneCase {
	var out []laneCase
	for _, kind := range laneKinds {
		for _, mfa := range mfaPolicies {
			for _, fl := range firstLoginCases {
				out = append(out, laneCase{kind: kind, mfa: mfa, firstLoginCase: fl})
			}
		}
	}
	return out
}

func TestLaneFirstLogin(t *testing.T) {
	for _, c := range laneCases() {
		t.Run(fmt.Sprintf("%s/mfa=%s/%s", c.kind, c.mfa, c.firstLoginCase), func(t *testing.T) {
			t.Parallel()
			l := startLane(t, c.policy, c.mfa)
			jdoe := l.createLocal(t, "jdoe", "jdoe@example.com", true)
			l.upstreamKnows(c.as)
			b := l.browser(t)

			rp, p := b.signIn(l, c.kind, c.as)
			switch c.sees {
			case straight: // exchange checks that p goes back to the application
			case review:
				p.must(t, http.StatusOK, "Set up your account")
				p = b.post("/first-login/review", p.form(t, "/first-login/review")) // as shown, pre-filled
			case link:
				p.must(t, http.StatusOK, "You already have an account")
				p = reauthenticate(t, b, p)
			case denied:
				p.must(t, http.StatusForbidden, "You cannot sign in this way")
			}
			wantACR := "1"
			if c.sees != denied {
				p, wantACR = secondFactor(t, b, p, c)
			}

			users, links := l.counts(t)
			switch c.ends {
			case nobody:
				if users != 1 || links != 1 {
					t.Errorf("after a denied first login: %d users and %d links, want jdoe and its local link", users, links)
				}
				return
			case newUser:
				if users != 2 || links != 2 {
					t.Errorf("after creating a user: %d users and %d links, want 2 and 2", users, links)
				}
			case existing:
				if users != 1 || links != 2 {
					t.Errorf("after linking to jdoe: %d users and %d links, want 1 and 2", users, links)
				}
			}
			sub, acr := l.exchange(t, p, rp)
			if acr != wantACR {
				t.Errorf("ID token acr %q, want %q", acr, wantACR)
			}
			owner := l.linkedUser(connectorOf(c.kind), c.as.Subject)
			switch {
			case sub != owner:
				t.Errorf("ID token sub %s, but the upstream identity is linked to %q", sub, owner)
			case c.ends == existing && sub != jdoe.ID:
				t.Errorf("ID token sub %s, want jdoe %s", sub, jdoe.ID)
			case c.ends == newUser && sub == jdoe.ID:
				t.Errorf("ID token sub is jdoe, want a new user")
			}
		})
	}
}

// reauthenticate proves control of the matched account on the "you already
// have an account" page p with its local password, then continues.
func reauthenticate(t *testing.T, b *laneBrowser, p lanePage) lanePage {
	t.Helper()
	form := p.form(t, "/first-login/link")
	form.Set("password", laneLocalPassword)
	p = b.post("/first-login/link", form)
	p.must(t, http.StatusOK, "Your accounts are linked")
	return b.post("/first-login/continue", p.form(t, "/first-login/continue"))
}

// secondFactor goes through the second-factor pages case c leads to, if any,
// and returns the page after them and the acr the ID token must then have:
// jdoe is asked for the code of his app unless the policy is off; a new user
// enrols one when it is required.
func secondFactor(t *testing.T, b *laneBrowser, p lanePage, c laneCase) (lanePage, string) {
	t.Helper()
	switch {
	case c.mfa == mfaOff, c.ends == newUser && c.mfa == mfaOptional:
		return p, "1"
	case c.ends == existing:
		p.must(t, http.StatusOK, "Confirm it is you")
		form := p.form(t, "/login/factor")
		code, _ := totp.GenerateCode(laneTOTPKey, time.Now().Add(30*time.Second)) // not the step its enrolment used
		form.Set("code", code)
		return b.post("/login/factor", form), "2"
	}
	p.must(t, http.StatusOK, "Set up a second step")
	key := laneSecretShown.FindStringSubmatch(p.body)
	if key == nil {
		t.Fatalf("the enrolment page shows no key:\n%s", p.body)
	}
	form := p.form(t, "/login/enrol")
	code, _ := totp.GenerateCode(key[1], time.Now())
	form.Set("code", code)
	p = b.post("/login/enrol", form)
	p.must(t, http.StatusOK, "Save your recovery codes")
	return b.post("/login/codes", p.form(t, "/login/codes")), "2"
}

var laneSecretShown = regexp.MustCompile(`<code id="secret">([A-Z2-7]+)</code>`)

// TestLaneStepsRefused: the steps of a sign-in that must not go on.
func TestLaneStepsRefused(t *testing.T) {
	reviewed := lanePolicy("review_then_create", "none", confirm, false)
	for _, kind := range laneKinds {
		t.Run(kind+"/the same form twice", func(t *testing.T) {
			t.Parallel()
			l := startLane(t, reviewed, mfaOff)
			l.upstreamKnows(newcomer)
			b := l.browser(t)
			rp, p := b.signIn(l, kind, newcomer)
			form := p.form(t, "/first-login/review")
			l.exchange(t, b.post("/first-login/review", form), rp)
			b.post("/first-login/review", form).must(t, http.StatusBadRequest, "already completed")
			if users, _ := l.counts(t); users != 1 {
				t.Errorf("%d users, want the one the first post created", users)
			}
		})
		t.Run(kind+"/another sign-in's CSRF token", func(t *testing.T) {
			t.Parallel()
			l := startLane(t, reviewed, mfaOff)
			l.upstreamKnows(newcomer)
			b := l.browser(t)
			rp, p := b.signIn(l, kind, newcomer)
			form := p.form(t, "/first-login/review")
			_, other := b.authorize() // a second sign-in in the same browser
			forged := cloneForm(form)
			forged.Set("csrf", other.form(t, "/broker/"+laneSSO+"/login").Get("csrf"))
			b.post("/first-login/review", forged).must(t, http.StatusForbidden, "The sign-in form has expired")
			l.exchange(t, b.post("/first-login/review", form), rp) // its own form still works
		})
		t.Run(kind+"/another browser", func(t *testing.T) {
			t.Parallel()
			l := startLane(t, reviewed, mfaOff)
			l.upstreamKnows(newcomer)
			b := l.browser(t)
			rp, p := b.signIn(l, kind, newcomer)
			form := p.form(t, "/first-login/review")
			thief := l.browser(t)
			thief.get(p.url.String()).must(t, http.StatusBadRequest, "does not know this sign-in")
			thief.post("/first-login/review", form).must(t, http.StatusBadRequest, "does not know this sign-in")
			if users, _ := l.counts(t); users != 0 {
				t.Errorf("%d users after another browser's post, want none", users)
			}
			l.exchange(t, b.post("/first-login/review", form), rp)
		})
		t.Run(kind+"/continue before the proof", func(t *testing.T) {
			t.Parallel()
			l := startLane(t, lanePolicy("create", "email", confirm, false), mfaOff)
			l.createLocal(t, "jdoe", "jdoe@example.com", true)
			l.upstreamKnows(sameEmail)
			b := l.browser(t)
			rp, p := b.signIn(l, kind, sameEmail)
			p.must(t, http.StatusOK, "You already have an account")
			linkForm := p.form(t, "/first-login/link")
			jump := cloneForm(linkForm)
			jump.Del("connector")
			b.post("/first-login/continue", jump).must(t, http.StatusBadRequest, "This step was already completed")
			if _, links := l.counts(t); links != 1 {
				t.Errorf("%d links after skipping the proof, want jdoe's local link only", links)
			}
			l.exchange(t, reauthenticate(t, b, p), rp)
		})
	}
	t.Run("redirect/a replayed upstream callback", func(t *testing.T) {
		t.Parallel()
		l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
		l.upstreamKnows(newcomer)
		b := l.browser(t)
		rp, p := b.signIn(l, "redirect", newcomer)
		l.exchange(t, p, rp)
		var callback string
		for _, u := range b.visited {
			if u.Path == "/broker/"+laneSSO+"/callback" {
				callback = u.String()
			}
		}
		if callback == "" {
			t.Fatalf("the browser never came back to the callback: %v", b.visited)
		}
		b.get(callback).must(t, http.StatusBadRequest, "already used")
		l.browser(t).get(callback).must(t, http.StatusBadRequest, "already used")
		if users, _ := l.counts(t); users != 1 {
			t.Errorf("%d users after the replays, want 1", users)
		}
	})
}

func cloneForm(v url.Values) url.Values {
	out := make(url.Values, len(v))
	for k, vs := range v {
		out[k] = append([]string(nil), vs...)
	}
	return out
}
