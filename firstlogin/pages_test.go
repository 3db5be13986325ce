package firstlogin

import (
	"errors"
	"fmt"
	"testing"
)

type userErr struct{ msg string }

func (e userErr) Error() string       { return "internal: " + e.msg }
func (e userErr) UserMessage() string { return e.msg }

func TestMessageOf(t *testing.T) {
	for _, c := range []struct {
		err  error
		want string
	}{
		{errors.New("ldap: result 49"), "That password is not right."},
		{userErr{"Too many failed sign-in attempts. Try again in 1m0s."}, "Too many failed sign-in attempts. Try again in 1m0s."},
		{fmt.Errorf("wrapped: %w", userErr{"Your password has expired."}), "Your password has expired."},
	} {
		if got := messageOf(c.err); got != c.want {
			t.Errorf("messageOf(%v) = %q, want %q", c.err, got, c.want)
		}
	}
}
