package brokertest

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"sync"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

// RedirectConnector is a fake redirect connector (as OIDC and SAML are) with
// a fake upstream that answers at once:
//
//	Begin ──303──▶ URL/authorize?state&redirect_uri&who ──303──▶ callback?state&code ──▶ Finish
//
// Serve [RedirectConnector.Handler] at URL (an httptest.Server of its own
// makes the round trip cross-site, as in production). The upstream signs in
// whoever [RedirectConnector.As] chose last, and its code names that person's
// identity in the table [RedirectConnector.Set] fills.
type RedirectConnector struct {
	URL      string // where Handler is served
	Upstream        // its re-checks after login

	mu   sync.Mutex
	ids  map[string]login.Identity // by code
	next string
}

var (
	_ brokers.RedirectConnector = (*RedirectConnector)(nil)
	_ brokers.Refresher         = (*RedirectConnector)(nil)
)

// Set puts id in the upstream's table under code.
func (c *RedirectConnector) Set(code string, id login.Identity) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ids == nil {
		c.ids = map[string]login.Identity{}
	}
	c.ids[code] = id
}

// As makes the upstream sign in the identity under code from now on, as if
// that person typed their password there.
func (c *RedirectConnector) As(code string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.next = code
}

// Begin implements brokers.RedirectConnector: it sends the browser to the
// upstream, remembering (in the flow) whom it asked for.
func (c *RedirectConnector) Begin(_ context.Context, w http.ResponseWriter, r *http.Request, flow *brokers.Flow) error {
	c.mu.Lock()
	who := c.next
	c.mu.Unlock()
	if who == "" {
		return errors.New("brokertest: As was not called: the upstream signs in nobody")
	}
	flow.Data["who"] = who
	q := url.Values{"state": {flow.State}, "redirect_uri": {flow.Callback}, "who": {who}}
	http.Redirect(w, r, c.URL+"/authorize?"+q.Encode(), http.StatusSeeOther)
	return nil
}

// Handler is the upstream: /authorize sends the browser straight back to
// redirect_uri with the state and a code naming the identity.
func (c *RedirectConnector) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /authorize", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		back, err := url.Parse(q.Get("redirect_uri"))
		if err != nil || back.Scheme == "" {
			http.Error(w, "bad redirect_uri", http.StatusBadRequest)
			return
		}
		back.RawQuery = url.Values{"state": {q.Get("state")}, "code": {q.Get("who")}}.Encode()
		http.Redirect(w, r, back.String(), http.StatusSeeOther)
	})
	return mux
}

// Finish implements brokers.RedirectConnector: the code must name the
// identity Begin asked for, and one in the table. Its upstream state is
// "session:<code>", what an OIDC connector's tokens are.
func (c *RedirectConnector) Finish(_ context.Context, r *http.Request, flow *brokers.Flow) (login.Identity, error) {
	code := r.FormValue("code")
	if code == "" || code != flow.Data["who"] {
		return login.Identity{}, errors.New("brokertest: the upstream answered for another sign-in")
	}
	c.mu.Lock()
	id, ok := c.ids[code]
	c.mu.Unlock()
	if !ok {
		return login.Identity{}, login.ErrInvalidCredentials
	}
	id.Upstream = []byte("session:" + code)
	return id, nil
}
