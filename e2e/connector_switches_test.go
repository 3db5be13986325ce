package e2e

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
)

// TestConnectorSwitches: disabled and link-only connectors cannot be used to
// log in through any entry point; hidden ones are reachable only by idp_hint.
func TestConnectorSwitches(t *testing.T) {
	addr := freeAddr(t)
	issuer := startZitadel(t, "fedhub", "http://"+addr+"/broker/hidden/callback")
	oidcBlock := func(id string) string {
		return `
  - id: ` + id + `
    type: oidc
    name: ` + id + `
    ` + map[string]string{"off": "enabled: false", "linkonly": "link_only: true", "hidden": "hidden: true"}[id] + `
    oidc:
      issuer: ` + issuer + `
      client_id: fedhub
      client_secret: ${UP_SECRET}
      use_userinfo: true
`
	}
	s := Start(t, WithAddr(addr), WithEnv("UP_SECRET="+upstreamSecret),
		withConnectors(oidcBlock("off")+oidcBlock("linkonly")+oidcBlock("hidden")))
	b := NewBrowser(t)

	f := b.OpenLogin(s, s.URL+"/authorize?"+AuthParams().Encode())
	for _, id := range []string{"off", "linkonly", "hidden"} {
		if strings.Contains(f.Page, `id="connector-`+id+`"`) {
			t.Errorf("the login page shows connector %s", id)
		}
	}
	for _, id := range []string{"off", "linkonly"} {
		t.Run(id+" refused at the button route", func(t *testing.T) {
			resp, page := b.PostForm(s.URL+"/broker/"+id+"/login", url.Values{"req": {f.Req}, "csrf": {f.CSRF}})
			if resp.StatusCode != http.StatusNotFound || !strings.Contains(page, "not available") {
				t.Fatalf("answered %d:\n%s", resp.StatusCode, page)
			}
		})
		t.Run(id+" refused at the callback", func(t *testing.T) {
			// A disabled connector has no callback at all; a link-only one
			// answers only flows that link, and no login flow can start for it.
			resp, _ := b.Get(s.URL + "/broker/" + id + "/callback?state=x&code=y")
			if want := map[string]int{"off": http.StatusNotFound, "linkonly": http.StatusBadRequest}[id]; resp.StatusCode != want {
				t.Fatalf("answered %d, want %d", resp.StatusCode, want)
			}
		})
		t.Run(id+" ignored as idp_hint", func(t *testing.T) {
			resp, _ := b.Get(s.URL + "/authorize?" + AuthParams("idp_hint", id, "prompt", "login").Encode())
			resp, page := b.Get(s.URL + resp.Header.Get("Location"))
			if resp.StatusCode != http.StatusOK || !strings.Contains(page, `id="form-local"`) {
				t.Fatalf("idp_hint=%s answered %d:\n%s", id, resp.StatusCode, page)
			}
		})
	}
	t.Run("hidden reachable through idp_hint", func(t *testing.T) {
		params := AuthParams("idp_hint", "hidden", "prompt", "login")
		resp, _ := b.Get(s.URL + "/authorize?" + params.Encode())
		resp, _ = b.Get(s.URL + resp.Header.Get("Location")) // the login page skips straight to the upstream
		if resp.StatusCode != http.StatusSeeOther || !strings.HasPrefix(resp.Header.Get("Location"), issuer) {
			t.Fatalf("idp_hint=hidden answered %d %q, want a redirect to the upstream", resp.StatusCode, resp.Header.Get("Location"))
		}
		atFedhub := func(u *url.URL) bool { return strings.HasPrefix(u.String(), s.URL+"/broker/hidden/callback") }
		u, _, page := b.follow(resp.Header.Get("Location"), atFedhub)
		cb, _, _ := b.follow(b.zitadelSignIn(u, page), atFedhub)
		got := b.finishAt(s, cb)
		if got.Get("code") == "" {
			t.Fatalf("RP got %v", got)
		}
	})
}
