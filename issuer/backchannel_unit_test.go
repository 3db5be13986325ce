package issuer

import (
	"context"
	"crypto"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/coreos/go-oidc/v3/oidc"
	"github.com/go-jose/go-jose/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/store/storetest"
)

// logoutRP is an application's back-channel logout endpoint: it verifies each
// logout token as an RP would (go-oidc, against fedhub's JWKS) and answers
// 500 to the first fail posts.
type logoutRP struct {
	t    *testing.T
	iss  *Issuer
	url  string
	mu   sync.Mutex
	fail int
	got  []logoutClaims // verified tokens, in arrival order
}

type logoutClaims struct {
	Audience string
	Subject  string         `json:"sub"`
	SID      string         `json:"sid"`
	Nonce    *string        `json:"nonce"`
	Events   map[string]any `json:"events"`
	Type     string
}

func (rp *logoutRP) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	if rp.fail > 0 {
		rp.fail--
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	raw := r.PostFormValue("logout_token")
	var jwks jose.JSONWebKeySet
	if err := json.Unmarshal(rp.iss.keys.encodedJWKS(), &jwks); err != nil {
		rp.t.Error(err)
	}
	var pub []crypto.PublicKey
	for _, k := range jwks.Keys {
		pub = append(pub, k.Key)
	}
	// The audience is whichever client the path names.
	aud := r.URL.Path[1:]
	v := oidc.NewVerifier(rp.iss.url, &oidc.StaticKeySet{PublicKeys: pub}, &oidc.Config{ClientID: aud, Now: rp.iss.now, SupportedSigningAlgs: []string{"EdDSA"}})
	tok, err := v.Verify(r.Context(), raw)
	if err != nil {
		rp.t.Errorf("logout token does not verify: %v", err)
		http.Error(w, "bad token", http.StatusBadRequest)
		return
	}
	var c logoutClaims
	if err := tok.Claims(&c); err != nil {
		rp.t.Error(err)
	}
	jws, _ := jose.ParseSigned(raw, []jose.SignatureAlgorithm{jose.EdDSA})
	c.Type, _ = jws.Signatures[0].Header.ExtraHeaders[jose.HeaderType].(string)
	c.Audience = aud
	rp.got = append(rp.got, c)
}

func (rp *logoutRP) received() []logoutClaims {
	rp.mu.Lock()
	defer rp.mu.Unlock()
	return slices.Clone(rp.got)
}

// bcFixture is an issuer on db with three applications (a and b listen for
// logouts, c does not) and alice's sessions s1 (tokens for a, b and c) and s2
// (for a), and bob's s3 (for a).
func bcFixture(t *testing.T, db *gorm.DB, clock func() time.Time) (*Issuer, *logoutRP) {
	t.Helper()
	rp := &logoutRP{t: t}
	srv := httptest.NewServer(rp)
	t.Cleanup(srv.Close)
	rp.url = srv.URL
	rp.iss = bcIssuer(t, db, clock, srv.URL)
	later := clock().Add(time.Hour)
	for _, r := range []any{
		&Session{ID: "s1", TokenHash: "1", UserID: "alice", ExpiresAt: later},
		&Session{ID: "s2", TokenHash: "2", UserID: "alice", ExpiresAt: later},
		&Session{ID: "s3", TokenHash: "3", UserID: "bob", ExpiresAt: later},
		&Grant{ID: "g1a", ClientID: "a", UserID: "alice", SessionID: "s1"},
		&Grant{ID: "g1a2", ClientID: "a", UserID: "alice", SessionID: "s1"}, // a second grant: still one notice
		&Grant{ID: "g1b", ClientID: "b", UserID: "alice", SessionID: "s1"},
		&Grant{ID: "g1c", ClientID: "c", UserID: "alice", SessionID: "s1"},
		&Grant{ID: "g2a", ClientID: "a", UserID: "alice", SessionID: "s2"},
		&Grant{ID: "g3a", ClientID: "a", UserID: "bob", SessionID: "s3"},
	} {
		if err := db.Create(r).Error; err != nil {
			t.Fatal(err)
		}
	}
	return rp.iss, rp
}

// bcIssuer is one node's issuer with the applications of bcFixture, whose
// logout endpoints are under rpURL.
func bcIssuer(t *testing.T, db *gorm.DB, clock func() time.Time, rpURL string) *Issuer {
	t.Helper()
	cfg := config.Defaults()
	cfg.Issuer = "https://id.example.com"
	cfg.Signing.Algorithm = "EdDSA"
	cfg.Clients = []config.Client{
		{ID: "a", Secret: "s", GrantTypes: []string{config.GrantClientCredentials}, BackchannelLogoutURI: rpURL + "/a"},
		{ID: "b", Secret: "s", GrantTypes: []string{config.GrantClientCredentials}, BackchannelLogoutURI: rpURL + "/b"},
		{ID: "c", Secret: "s", GrantTypes: []string{config.GrantClientCredentials}},
	}
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	iss, err := New(context.Background(), &cfg, db, nil, nil, audit.New(db, log, clock), log, clock)
	if err != nil {
		t.Fatal(err)
	}
	return iss
}

// TestUnitBackchannelLogout: each way a session ends tells exactly the
// applications that got tokens in it and listen, once each, with a logout
// token an RP library accepts; on both databases.
func TestUnitBackchannelLogout(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name string
		end  func(iss *Issuer) error
		want []string // aud/sid
	}{
		{"one session", func(iss *Issuer) error {
			return iss.db.Transaction(func(tx *gorm.DB) error { return iss.endSessions(tx, "id = ?", "s1") })
		}, []string{"a/s1", "b/s1"}},
		{"user", func(iss *Issuer) error {
			return iss.db.Transaction(func(tx *gorm.DB) error { return iss.RevokeUser(ctx, tx, "alice") })
		}, []string{"a/s1", "a/s2", "b/s1"}},
		{"other sessions", func(iss *Issuer) error { return iss.EndOtherSessions(ctx, "alice", "s1") }, []string{"a/s2"}},
		{"ended already", func(iss *Issuer) error {
			if err := iss.db.Model(&Session{}).Where("id = ?", "s2").Update("ended_at", iss.now()).Error; err != nil {
				return err
			}
			return iss.EndOtherSessions(ctx, "alice", "s1")
		}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.ForEachDB(t, append(Models(), audit.Models()...), func(t *testing.T, db *gorm.DB) {
				now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
				iss, rp := bcFixture(t, db, func() time.Time { return now })
				if err := c.end(iss); err != nil {
					t.Fatal(err)
				}
				if err := iss.deliverDue(ctx, NoticeClient()); err != nil {
					t.Fatal(err)
				}
				var got []string
				for _, lc := range rp.received() {
					got = append(got, lc.Audience+"/"+lc.SID)
					_, event := lc.Events[backchannelEvent]
					if lc.Subject != "alice" || !event || lc.Nonce != nil || lc.Type != typLogout {
						t.Errorf("logout token %+v: want sub alice, the back-channel logout event, no nonce, typ %s", lc, typLogout)
					}
				}
				slices.Sort(got)
				if !slices.Equal(got, c.want) {
					t.Fatalf("notified %v, want %v", got, c.want)
				}
				var left int64
				db.Model(&LogoutNotice{}).Count(&left)
				if left != 0 {
					t.Fatalf("%d notices left after delivery", left)
				}
			})
		})
	}
}

// TestUnitBackchannelRetries: an application that is down is tried again
// with backoff until it answers, and after the last attempt the notice is
// dropped and the failure audited; two nodes never deliver one notice twice.
func TestUnitBackchannelRetries(t *testing.T) {
	ctx := context.Background()
	storetest.ForEachDB(t, append(Models(), audit.Models()...), func(t *testing.T, db *gorm.DB) {
		now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
		clock := func() time.Time { return now }
		iss, rp := bcFixture(t, db, clock)
		end := func(sid string) {
			t.Helper()
			if err := iss.db.Transaction(func(tx *gorm.DB) error { return iss.endSessions(tx, "id = ?", sid) }); err != nil {
				t.Fatal(err)
			}
		}
		pass := func() {
			t.Helper()
			if err := iss.deliverDue(ctx, NoticeClient()); err != nil {
				t.Fatal(err)
			}
		}

		// Down twice, then up: delivered at the third attempt, not before its time.
		rp.fail = 4 // a and b, twice each
		end("s1")
		pass() // attempt 1 fails; retry in 2s
		now = now.Add(time.Second)
		pass() // not due
		now = now.Add(time.Second)
		pass() // attempt 2 fails; retry in 4s
		now = now.Add(3 * time.Second)
		pass() // not due
		if n := len(rp.received()); n != 0 {
			t.Fatalf("%d delivered while the application was down", n)
		}
		now = now.Add(time.Second)
		pass()
		if n := len(rp.received()); n != 2 {
			t.Fatalf("delivered %d after the application came back, want 2", n)
		}

		// Down for good: given up after noticeAttempts, audited.
		rp.fail = 1 << 30
		end("s2")
		for range noticeAttempts {
			pass()
			now = now.Add(noticeMaxRetry)
		}
		var left int64
		db.Model(&LogoutNotice{}).Count(&left)
		var failed []audit.Event
		db.Where("type = ?", audit.LogoutNoticeFailed).Find(&failed)
		if left != 0 || len(failed) != 1 || failed[0].ClientID != "a" {
			t.Fatalf("after %d failed attempts: %d notices left, failure events %+v; want none left and one event for a",
				noticeAttempts, left, failed)
		}

		// Two nodes at once: bob's one notice is delivered once.
		rp.fail = 0
		other := bcIssuer(t, db, clock, rp.url)
		before := len(rp.received())
		end("s3")
		var wg sync.WaitGroup
		for _, node := range []*Issuer{iss, other} {
			wg.Go(func() {
				if err := node.deliverDue(ctx, NoticeClient()); err != nil {
					t.Error(err)
				}
			})
		}
		wg.Wait()
		if got := rp.received()[before:]; len(got) != 1 || got[0].SID != "s3" {
			t.Fatalf("two nodes delivered %+v, want bob's one notice once", got)
		}
	})
}

func TestUnitRetryAfter(t *testing.T) {
	for _, c := range []struct {
		attempt int
		want    time.Duration
	}{{1, 2 * time.Second}, {2, 4 * time.Second}, {5, 32 * time.Second}, {10, noticeMaxRetry}, {40, noticeMaxRetry}} {
		if got := retryAfter(c.attempt); got != c.want {
			t.Errorf("retryAfter(%d) = %v, want %v", c.attempt, got, c.want)
		}
	}
}
