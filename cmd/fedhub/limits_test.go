package main

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/throttle"
)

// The brute-force limiter and usernames, in the lane (issue 15, findings 1
// to 3). The lane's server has the local connector first and corp-dir, a
// directory, second: the password grant tries them in that order.

// lanePasswordClient is the lane's client of the password grant.
const lanePasswordClient = "lane-script"

// passwordGrant asks for tokens with the password grant; it returns the
// status and, for a refusal, the error's description.
func (l *laneServer) passwordGrant(t *testing.T, username, password string) (int, string) {
	t.Helper()
	var answer struct {
		AccessToken string `json:"access_token"`
		Description string `json:"error_description"`
	}
	status := l.token(t, lanePasswordClient, url.Values{"grant_type": {"password"}, "username": {username}, "password": {password},
		"scope": {"openid"}}, &answer)
	if status == http.StatusOK && answer.AccessToken == "" {
		t.Fatal("token endpoint: 200 without an access token")
	}
	return status, answer.Description
}

// failureRows are the limiter's counters, by key.
func (l *laneServer) failureRows(t *testing.T) map[string]int {
	t.Helper()
	var rows []throttle.Failure
	if err := l.app.db.Find(&rows).Error; err != nil {
		t.Fatal(err)
	}
	out := map[string]int{}
	for _, r := range rows {
		out[r.Key] = r.Count
	}
	return out
}

const (
	laneIPKey  = "ip:127.0.0.1"
	tooMany    = "Too many failed sign-in attempts"
	badLogin   = "Invalid username or password"
	laneFactor = 30 // the default failure_factor; an address may fail ten times as often
)

// Finding 1: good logins of a directory user through the password grant
// counted as failures at the local connector, tried first: the 31st was
// locked out, and 300 locked the address. Now they count for nothing, and a
// success never raises the address's counter.
func TestLaneLimitsGoodDirectoryLogins(t *testing.T) {
	l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
	carol := login.Identity{Subject: "entry-carol", Username: "carol", Email: "carol@corp.test", Name: "Carol"}
	l.upstreamKnows(carol)
	for i := 1; i <= 10*laneFactor; i++ {
		if status, says := l.passwordGrant(t, "carol", laneUpstreamPw); status != http.StatusOK {
			t.Fatalf("good login %d of a directory user through the password grant: %d %q", i, status, says)
		}
		if i == laneFactor+1 || i == 10*laneFactor {
			if rows := l.failureRows(t); len(rows) != 0 {
				t.Fatalf("after %d good logins the limiter counts %v, want nothing", i, rows)
			}
		}
	}

	// A wrong password counts once against carol's directory entry and once
	// against the address, not against a local account she does not have.
	if status, says := l.passwordGrant(t, "carol", "wrong"); status != http.StatusBadRequest || !strings.Contains(says, badLogin) {
		t.Fatalf("wrong password: %d %q", status, says)
	}
	if rows, want := l.failureRows(t), map[string]int{"user:" + laneDir + ":entry-carol": 1, laneIPKey: 1}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("after one wrong password the limiter counts %v, want %v", rows, want)
	}
	// The next good login forgets carol's failure and leaves the address's alone.
	if status, says := l.passwordGrant(t, "carol", laneUpstreamPw); status != http.StatusOK {
		t.Fatalf("good login after a wrong one: %d %q", status, says)
	}
	if rows, want := l.failureRows(t), map[string]int{laneIPKey: 1}; fmt.Sprint(rows) != fmt.Sprint(want) {
		t.Fatalf("after a good login the limiter counts %v, want %v", rows, want)
	}
}

// Finding 2: spellings of one name were separate counters. Failures count
// against the account the name resolves to, however it is spelled: the local
// user (usernames.Key), the directory entry (the spellings the directory
// finds it by, AD's DOMAIN\user and user@domain among them).
func TestLaneLimitsSpellingsShareOneCounter(t *testing.T) {
	l := startLane(t, lanePolicy("create", "none", confirm, false), mfaOff)
	alice := l.createLocal(t, "alice", "alice@example.test", true)
	john := login.Identity{Subject: "entry-jsmith", Username: "john smith", Email: "john@corp.test", Name: "John Smith"}
	spellings := []string{"john smith", "john  smith", "John Smith", `CORP\jsmith`, "jsmith@corp.test"}
	for _, name := range spellings {
		l.dir.Set(name, laneUpstreamPw, john)
	}

	// Local: the password grant, with the spellings of alice in turn.
	aliceSpellings := []string{"alice", " alice", "ａｌｉｃｅ", "ALICE", "Ａｌｉｃｅ\u3000", "alice\t"}
	for i := range laneFactor {
		name := aliceSpellings[i%len(aliceSpellings)]
		if status, says := l.passwordGrant(t, name, "wrong"); status != http.StatusBadRequest || !strings.Contains(says, badLogin) {
			t.Fatalf("wrong password %d as %q: %d %q", i+1, name, status, says)
		}
	}
	if status, says := l.passwordGrant(t, "alice", laneLocalPassword); status != http.StatusBadRequest || !strings.Contains(says, tooMany) {
		t.Fatalf("alice's right password after %d wrong ones under other spellings: %d %q, want %q", laneFactor, status, says, tooMany)
	}
	aliceKey := throttle.UserKey("local", alice.ID)
	if rows := l.failureRows(t); rows[aliceKey] != laneFactor || rows[laneIPKey] != laneFactor || len(rows) != 2 {
		t.Fatalf("the limiter counts %v, want %d for %s and the address", rows, laneFactor, aliceKey)
	}

	// Directory: the login form, with the spellings of john in turn.
	b := l.browser(t)
	_, p := b.authorize()
	p = b.get(p.link(t, "connector-"+laneDir))
	form := p.form(t, "/broker/"+laneDir+"/login")
	try := func(name, password string) lanePage {
		form.Set("username", name)
		form.Set("password", password)
		return b.post("/broker/"+laneDir+"/login", form)
	}
	for i := range laneFactor {
		try(spellings[i%len(spellings)], "wrong").must(t, http.StatusUnauthorized, badLogin)
	}
	try("john smith", laneUpstreamPw).must(t, http.StatusUnauthorized, tooMany)
	try(`CORP\jsmith`, laneUpstreamPw).must(t, http.StatusUnauthorized, tooMany)
	// Refusals that checked nothing are audited once a minute per address,
	// not once per request: waiting attackers do not grow the audit log.
	throttledEvents := func() int64 {
		var n int64
		if err := l.app.db.Model(&audit.Event{}).Where("type = ? AND detail LIKE ?", audit.LoginFailed, tooMany+"%").Count(&n).Error; err != nil {
			t.Fatal(err)
		}
		return n
	}
	before := throttledEvents()
	for range 20 {
		try("john smith", laneUpstreamPw).must(t, http.StatusUnauthorized, tooMany)
	}
	if before != 1 || throttledEvents() != 1 {
		t.Fatalf("throttled refusals audited %d times, then %d after 20 more; want once", before, throttledEvents())
	}
	if rows := l.failureRows(t); rows["user:"+laneDir+":entry-jsmith"] != laneFactor || len(rows) != 3 {
		t.Fatalf("the limiter counts %v, want %d for john's entry", rows, laneFactor)
	}

	// Usernames that name nobody count for the address only: no counter each.
	for i := range 10 {
		name := fmt.Sprintf("nobody-%d", i)
		if status, says := l.passwordGrant(t, name, "wrong"); status != http.StatusBadRequest || !strings.Contains(says, badLogin) {
			t.Fatalf("unknown username %q: %d %q", name, status, says)
		}
		try(name+"@corp.test", "wrong").must(t, http.StatusUnauthorized, badLogin)
	}
	if rows := l.failureRows(t); len(rows) != 3 || rows[laneIPKey] != 2*laneFactor+20 {
		t.Fatalf("after unknown usernames the limiter counts %v, want the same three counters, the address's at %d", rows, 2*laneFactor+20)
	}
}

// Finding 3: "ａｌｉｃｅ" became a second user beside "alice". On the
// first-login review page it is taken, and names with look-alike or
// invisible characters are refused, saying why.
func TestLaneUsernameLookAlikesOnReview(t *testing.T) {
	l := startLane(t, lanePolicy("review_then_create", "none", confirm, false), mfaOff)
	l.createLocal(t, "alice", "alice@example.test", true)
	l.upstreamKnows(newcomer)
	users, _ := l.counts(t)

	b := l.browser(t)
	rp, p := b.signIn(l, "password", newcomer)
	form := p.form(t, "/first-login/review")
	for _, c := range []struct {
		username string
		status   int
		says     string
	}{
		{"ａｌｉｃｅ", http.StatusConflict, "That username is already taken."},
		{"ALICE ", http.StatusConflict, "That username is already taken."},
		{"\u0430lice", http.StatusUnprocessableEntity, "cannot mix letters of different scripts (here Cyrillic and Latin)"},
		{"p\u0430ypal", http.StatusUnprocessableEntity, "cannot mix letters of different scripts"},
		{"ali\u200bce", http.StatusUnprocessableEntity, "cannot contain invisible or control characters"},
		{"alice\u200d", http.StatusUnprocessableEntity, "cannot contain invisible or control characters"},
		{"\u0251lice", http.StatusUnprocessableEntity, "phonetic letters"},
		{"асе", http.StatusUnprocessableEntity, "only with Cyrillic letters that look like Latin ones"},
	} {
		form.Set("username", c.username)
		b.post("/first-login/review", form).must(t, c.status, c.says)
	}
	if n, _ := l.counts(t); n != users {
		t.Fatalf("refused usernames made %d users", n-users)
	}
	form.Set("username", "New  Comer")
	sub, _ := l.exchange(t, b.post("/first-login/review", form), rp)
	u, err := l.app.users.UserByID(context.Background(), sub)
	if err != nil || u.Username != "New Comer" {
		t.Fatalf("the new user = %+v, %v; want username %q", u, err, "New Comer")
	}
}
