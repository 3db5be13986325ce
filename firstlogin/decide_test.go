package firstlogin_test

import (
	"context"
	"os"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/firstlogin"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/store/storetest"
)

func TestMain(m *testing.M) {
	code := m.Run()
	peers.StopAll()
	os.Exit(code)
}

// TestDecideCandidates: only a verified local email makes a candidate
// (finding 6 of issue 15), and an account that has its one identity of the
// connector is none (finding 11); without a candidate, on_new decides.
func TestDecideCandidates(t *testing.T) {
	ctx := context.Background()
	storetest.ForEachDB(t, linking.Models(), func(t *testing.T, db *gorm.DB) {
		users := linking.New(db, time.Now)
		create := func(username, email string, verified bool) *linking.User {
			u, err := users.CreateUser(ctx, linking.NewUser{Username: username, Email: email, EmailVerified: verified, Password: "Passw0rd!-" + username})
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		squatter := create("mallory", "victor@example.com", false) // typed victor's email
		alice := create("alice", "alice@example.com", true)
		if err := users.AdminLink(ctx, alice.ID, linking.Upstream{Connector: "corp", Subject: "alice-at-corp"}); err != nil {
			t.Fatal(err)
		}
		pol := func(onNew string) firstlogin.Policy {
			return firstlogin.Policy{OnNew: onNew, MatchBy: "email", OnMatch: "link_automatically", TrustEmail: true}
		}
		several := pol("create")
		several.MultipleIdentities = true
		victor := firstlogin.Upstream{Connector: "corp", Subject: "victor", Username: "victor", Email: "Victor@Example.com", EmailVerified: true}
		other := firstlogin.Upstream{Connector: "corp", Subject: "someone", Username: "someone", Email: "alice@example.com", EmailVerified: true}
		partner := firstlogin.Upstream{Connector: "partner", Subject: "alice-at-partner", Username: "al", Email: "alice@example.com", EmailVerified: true}
		for _, c := range []struct {
			name      string
			p         firstlogin.Policy
			up        firstlogin.Upstream
			action    firstlogin.Action
			review    bool
			candidate *linking.User
		}{
			{"an unverified local email is no candidate", pol("create"), victor, firstlogin.Enroll, false, nil},
			{"…nor under review_then_create", pol("review_then_create"), victor, firstlogin.Enroll, true, nil},
			{"…and on_new: deny still denies", pol("deny"), victor, firstlogin.Deny, false, nil},
			{"a verified one is", pol("create"), partner, firstlogin.Link, false, alice},
			{"an account with its one corp identity is none", pol("create"), other, firstlogin.Enroll, false, nil},
			{"unless corp allows several", several, other, firstlogin.Link, false, alice},
		} {
			d, err := firstlogin.Decide(ctx, users, c.p, c.up)
			if err != nil {
				t.Fatal(err)
			}
			if d.Action != c.action || d.Review != c.review || (d.Candidate == nil) != (c.candidate == nil) ||
				(c.candidate != nil && d.Candidate.ID != c.candidate.ID) || (d.Candidate != nil && d.Candidate.ID == squatter.ID) {
				t.Errorf("%s: %+v, want %s (review %v) with candidate %v", c.name, d, c.action, c.review, c.candidate)
			}
		}
		for onNew, want := range map[string]bool{"create": true, "review_then_create": true, "deny": false} {
			if got := firstlogin.SeparateAllowed(firstlogin.Policy{OnNew: onNew}); got != want {
				t.Errorf("SeparateAllowed(on_new: %s) = %v", onNew, got)
			}
		}
	})
}
