package ldap_test

import (
	"errors"
	"testing"

	"github.com/fedhub/fedhub/brokers/ldap"
	"github.com/fedhub/fedhub/e2e/peers"
	"github.com/fedhub/fedhub/login"
)

// admitRecorder is an admit function that records the accounts it was asked
// about and answers refuse.
type admitRecorder struct {
	asked  []string
	refuse error
}

func (a *admitRecorder) admit(account string) error {
	a.asked = append(a.asked, account)
	return a.refuse
}

// wantOneAccount logs in as each spelling of one entry with a wrong password
// and wants every failure, and every admission, to name the entry's subject:
// the brute-force limiter then has one counter for them all (issue 15,
// finding 2).
func wantOneAccount(t *testing.T, c *ldap.Connector, subject string, spellings []string) {
	t.Helper()
	for _, user := range spellings {
		a := &admitRecorder{}
		_, err := c.Login(ctx(t), user, "wrong-password", a.admit)
		if !errors.Is(err, login.ErrInvalidCredentials) || login.AccountOf(err) != subject {
			t.Errorf("Login(%q, wrong) = %v (account %q); want invalid credentials of %q", user, err, login.AccountOf(err), subject)
		}
		if len(a.asked) != 1 || a.asked[0] != subject {
			t.Errorf("Login(%q) asked to admit %q, want %q once", user, a.asked, subject)
		}
	}
}

// wantRefusedBeforeBind: an account the limiter refuses is not tried, even
// with its right password, and an unknown username names no account.
func wantRefusedBeforeBind(t *testing.T, c *ldap.Connector, user, password string) {
	t.Helper()
	refusal := errors.New("wait")
	a := &admitRecorder{refuse: refusal}
	if _, err := c.Login(ctx(t), user, password, a.admit); err != refusal {
		t.Errorf("Login(%q) refused by admit = %v, want admit's error", user, err)
	}
	a = &admitRecorder{}
	_, err := c.Login(ctx(t), "nobody-at-all", password, a.admit)
	if !errors.Is(err, login.ErrInvalidCredentials) || login.AccountOf(err) != "" || len(a.asked) != 0 {
		t.Errorf("Login(nobody-at-all) = %v (account %q), admit asked %q; want invalid credentials of no account, admit not asked",
			err, login.AccountOf(err), a.asked)
	}
}

func TestAccountOpenLDAP(t *testing.T) {
	s := peers.OpenLDAP(t)
	c, _ := connector(t, openLDAPConfig(s))
	alice := s.Users["alice"]
	wantOneAccount(t, c, alice.ID, []string{"alice", " alice", "Alice ", "ALICE", "ａｌｉｃｅ", "ＡＬＩＣＥ"})
	wantRefusedBeforeBind(t, c, "alice", alice.Password)
	// Admitted, the right password signs in as the entry admitted.
	a := &admitRecorder{}
	if id, err := c.Login(ctx(t), "ａｌｉｃｅ", alice.Password, a.admit); err != nil || id.Subject != alice.ID || len(a.asked) != 1 {
		t.Errorf("Login(ａｌｉｃｅ) = %+v, %v, admit asked %q; want alice", id, err, a.asked)
	}
}

// Active Directory's three forms of one name: sAMAccountName, DOMAIN\user
// and the UPN.
func TestAccountAD(t *testing.T) {
	s := peers.SambaAD(t)
	c, _ := connector(t, adConfig(s))
	alice := s.Users["alice"]
	wantOneAccount(t, c, alice.ID, []string{"alice", `EXAMPLE\alice`, `example\ALICE`, "alice@example.test",
		"ALICE@EXAMPLE.TEST", " alice", "ａｌｉｃｅ", `ＥＸＡＭＰＬＥ＼ａｌｉｃｅ`})
	wantRefusedBeforeBind(t, c, `EXAMPLE\alice`, alice.Password)
}
