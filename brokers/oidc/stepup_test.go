package oidc_test

import (
	"errors"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/fedhub/fedhub/brokers"
	fedoidc "github.com/fedhub/fedhub/brokers/oidc"
	"github.com/fedhub/fedhub/login"
)

// Step-up: prompt=login and max_age reach the upstream's authorization
// request, and what was asked is kept in the flow.
func TestStepUpRequest(t *testing.T) {
	up := startUpstream(t, nil, upstreamOpts{})
	started := time.Date(2031, 5, 6, 7, 8, 9, 500, time.UTC)
	c := newConnector(t, fedoidc.Config{Issuer: up.issuer, Now: func() time.Time { return started }})
	for _, tc := range []struct {
		name       string
		force      bool
		maxAge     int
		wantPrompt string // "" for none
		wantMaxAge string // "" for none
	}{
		{"zero flow", false, 0, "", ""},
		{"no max_age", false, -1, "", ""},
		{"forced", true, -1, "login", ""},
		{"forced, max_age 0", true, 0, "login", ""},
		{"max_age", false, 300, "", "300"},
		{"forced and max_age", true, 60, "login", "60"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			flow, authURL := beginFlow(t, c, &brokers.Flow{State: randomState(), Callback: callback,
				ForceAuthn: tc.force, MaxAge: tc.maxAge})
			u, err := url.Parse(authURL)
			if err != nil {
				t.Fatal(err)
			}
			q := u.Query()
			if q.Get("prompt") != tc.wantPrompt || q.Has("prompt") != (tc.wantPrompt != "") {
				t.Errorf("prompt = %q (present %v), want %q", q.Get("prompt"), q.Has("prompt"), tc.wantPrompt)
			}
			if q.Get("max_age") != tc.wantMaxAge || q.Has("max_age") != (tc.wantMaxAge != "") {
				t.Errorf("max_age = %q (present %v), want %q", q.Get("max_age"), q.Has("max_age"), tc.wantMaxAge)
			}

			// what the upstream understood
			resp, err := newBrowser().Get(authURL)
			if err != nil {
				t.Fatal(err)
			}
			resp.Body.Close()
			reqs := up.authRequests()
			if len(reqs) == 0 || reqs[len(reqs)-1].State != flow.State {
				t.Fatalf("the upstream did not record this authorization request")
			}
			ar := reqs[len(reqs)-1]
			if got := slices.Contains(ar.Prompt, "login"); got != (tc.wantPrompt == "login") || len(ar.Prompt) > 1 {
				t.Errorf("upstream prompt = %v, want %q", ar.Prompt, tc.wantPrompt)
			}
			gotMaxAge := ""
			if ar.MaxAge != nil {
				gotMaxAge = strconv.FormatUint(uint64(*ar.MaxAge), 10)
			}
			want := tc.wantMaxAge
			if tc.force {
				want = "0" // zitadel reads prompt=login as max_age 0, whatever max_age says
			}
			if gotMaxAge != want {
				t.Errorf("upstream max_age = %q, want %q", gotMaxAge, want)
			}

			if flow.Data[fedoidc.DataStarted] != strconv.FormatInt(started.Unix(), 10) {
				t.Errorf("started = %q, want the clock's %d", flow.Data[fedoidc.DataStarted], started.Unix())
			}
			if (flow.Data[fedoidc.DataForceAuthn] == "1") != tc.force {
				t.Errorf("force_authn = %q, want %v", flow.Data[fedoidc.DataForceAuthn], tc.force)
			}
			if flow.Data[fedoidc.DataMaxAge] != tc.wantMaxAge {
				t.Errorf("flow max_age = %q, want %q", flow.Data[fedoidc.DataMaxAge], tc.wantMaxAge)
			}
		})
	}
}

// auth_time, amr and acr land in the identity; MultiFactor reads them.
func TestAuthContextInIdentity(t *testing.T) {
	old := time.Unix(1_700_000_000, 0)
	// now: auth_time is when the example OP checked the password, in whole seconds
	now := func(got, before, after time.Time) bool {
		return !got.Before(before.Truncate(time.Second)) && !got.After(after)
	}
	for _, tc := range []struct {
		name     string
		opts     upstreamOpts
		mfaACR   []string
		authTime func(got, before, after time.Time) bool
		amr      []string
		acr      string
		mfa      bool
	}{
		{name: "the example OP: a password, now", authTime: now, amr: []string{"pwd"}},
		{name: "mfa in amr", opts: upstreamOpts{amr: []string{"pwd", "mfa"}, acr: "urn:example:loa:2"},
			authTime: now, amr: []string{"pwd", "mfa"}, acr: "urn:example:loa:2", mfa: true},
		{name: "a configured acr", opts: upstreamOpts{amr: []string{"pwd", "otp"}, acr: "gold"}, mfaACR: []string{"silver", "gold"},
			authTime: now, amr: []string{"pwd", "otp"}, acr: "gold", mfa: true},
		{name: "two methods without mfa do not count", opts: upstreamOpts{amr: []string{"pwd", "otp"}, acr: "bronze"},
			mfaACR: []string{"gold"}, authTime: now, amr: []string{"pwd", "otp"}, acr: "bronze"},
		{name: "an SSO session's old auth_time", opts: upstreamOpts{authTime: func(time.Time) time.Time { return old }},
			authTime: func(got, _, _ time.Time) bool { return got.Equal(old) }, amr: []string{"pwd"}},
		{name: "no auth_time", opts: upstreamOpts{authTime: func(time.Time) time.Time { return time.Time{} }},
			authTime: func(got, _, _ time.Time) bool { return got.IsZero() }, amr: []string{"pwd"}},
		{name: "an auth_time in the future counts as now",
			opts:     upstreamOpts{authTime: func(checked time.Time) time.Time { return checked.Add(time.Hour) }},
			authTime: now, amr: []string{"pwd"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.opts.claimsInIDToken = true
			up := startUpstream(t, nil, tc.opts)
			c := newConnector(t, fedoidc.Config{Issuer: up.issuer, MFAACRValues: tc.mfaACR})
			before := time.Now()
			flow, authURL := begin(t, c)
			id, err := finish(t, c, flow, upstreamLogin(t, authURL, up.username, password))
			after := time.Now()
			if err != nil {
				t.Fatalf("Finish: %v", err)
			}
			if !tc.authTime(id.AuthTime, before, after) {
				t.Errorf("AuthTime = %v (login between %v and %v)", id.AuthTime, before, after)
			}
			if !slices.Equal(id.AMR, tc.amr) || id.ACR != tc.acr {
				t.Errorf("AMR, ACR = %q %q, want %q %q", id.AMR, id.ACR, tc.amr, tc.acr)
			}
			if got := c.MultiFactor(id); got != tc.mfa {
				t.Errorf("MultiFactor = %v, want %v", got, tc.mfa)
			}
		})
	}
}

// A forced login (prompt=login) or max_age is held to the ID token's
// auth_time: an upstream answering from its SSO session is refused.
func TestStepUpFreshness(t *testing.T) {
	ago := func(d time.Duration) func(time.Time) time.Time {
		return func(checked time.Time) time.Time { return checked.Add(-d) }
	}
	none := func(time.Time) time.Time { return time.Time{} }
	for _, tc := range []struct {
		name     string
		authTime func(checked time.Time) time.Time // nil: when the password was checked
		force    bool
		maxAge   int
		clock    time.Duration // the connector's clock, ahead of the real one
		refused  bool
	}{
		{name: "forced, credentials typed now", force: true, maxAge: -1},
		{name: "forced, SSO session 10 min old", authTime: ago(10 * time.Minute), force: true, maxAge: -1, refused: true},
		{name: "forced, no auth_time", authTime: none, force: true, maxAge: -1, refused: true},
		{name: "forced, upstream clock 2 s behind", authTime: ago(2 * time.Second), force: true, maxAge: -1},
		{name: "forced, auth_time 8 s before the start", authTime: ago(8 * time.Second), force: true, maxAge: -1, refused: true},
		{name: "forced, the flow began 2 min after the login (clock)", force: true, maxAge: -1, clock: 2 * time.Minute, refused: true},
		{name: "not forced, SSO session 10 min old", authTime: ago(10 * time.Minute), maxAge: -1},
		{name: "not forced, no auth_time", authTime: none, maxAge: -1},
		{name: "zero flow, SSO session 10 min old", authTime: ago(10 * time.Minute)},
		{name: "max_age 60, auth_time 2 min old", authTime: ago(2 * time.Minute), maxAge: 60, refused: true},
		{name: "max_age 600, auth_time 2 min old", authTime: ago(2 * time.Minute), maxAge: 600},
		{name: "max_age 60, no auth_time", authTime: none, maxAge: 60, refused: true},
		{name: "max_age 60, login now, clock 2 min ahead at the callback", maxAge: 60, clock: 2 * time.Minute, refused: true},
		{name: "forced and max_age, SSO session 10 min old", authTime: ago(10 * time.Minute), force: true, maxAge: 3600, refused: true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			up := startUpstream(t, nil, upstreamOpts{claimsInIDToken: true, authTime: tc.authTime})
			c := newConnector(t, fedoidc.Config{Issuer: up.issuer,
				Now: func() time.Time { return time.Now().Add(tc.clock) }})
			flow, authURL := beginFlow(t, c, &brokers.Flow{State: randomState(), Callback: callback,
				ForceAuthn: tc.force, MaxAge: tc.maxAge})
			cb := upstreamLogin(t, authURL, up.username, password)
			// brokers keeps only State and Data between Begin and Finish
			id, err := finish(t, c, cloneFlow(flow), cb)
			if !tc.refused {
				if err != nil {
					t.Fatalf("Finish: %v", err)
				}
				if id.Subject != up.issuer+"|id1" {
					t.Errorf("subject %q", id.Subject)
				}
				return
			}
			if !errors.Is(err, fedoidc.ErrNotReauthenticated) {
				t.Fatalf("Finish = %v, %+v; want ErrNotReauthenticated", err, id)
			}
			var ue *login.UserError
			if !errors.As(err, &ue) || !strings.Contains(ue.Message, "Corporate SSO did not ask for your credentials again") {
				t.Fatalf("Finish = %v, want a UserError for the person", err)
			}
			if id.Subject != "" {
				t.Errorf("a refused login returned an identity: %+v", id)
			}
		})
	}
}

func TestNewValidatesMFAACRValues(t *testing.T) {
	for _, v := range []string{"", " gold", "gold\n"} {
		_, err := fedoidc.New(fedoidc.Config{ID: "corp", Issuer: "https://idp.example", ClientID: "a", ClientSecret: "b",
			MFAACRValues: []string{"silver", v}}, nil)
		if err == nil {
			t.Errorf("New accepted mfa_acr_values entry %q", v)
		}
	}
}
