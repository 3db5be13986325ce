package brokertest

import (
	"context"
	"sync"
	"time"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
)

// Upstream is a fake upstream's side of the re-checks after login. Both fake
// connectors embed it, which makes them brokers.Refresher: by default the
// upstream says yes; [Upstream.Answer] sets its answer for one identity.
type Upstream struct {
	// Current is what a yes says of the person now (brokers.Rechecked),
	// as a directory read again does; nil says only yes.
	Current *login.Identity

	rmu     sync.Mutex
	answers map[string]error // by subject
	asked   []Asked
}

// Asked is one re-check the upstream was asked.
type Asked struct {
	Identity login.Identity // Upstream holds the connector's state as kept by fedhub
	AuthAt   time.Time
}

// Answer makes the upstream answer the re-checks of subject with err: nil
// for yes, an error wrapping login.ErrUpstreamRefused for no, any other for
// an upstream that cannot answer.
func (u *Upstream) Answer(subject string, err error) {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	if u.answers == nil {
		u.answers = map[string]error{}
	}
	u.answers[subject] = err
}

// Asked returns the re-checks asked so far, oldest first.
func (u *Upstream) Asked() []Asked {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	return append([]Asked(nil), u.asked...)
}

// Refresh implements brokers.Refresher. A yes hands the upstream state on
// with a mark of one more re-check, as an upstream that rotates its tokens.
func (u *Upstream) Refresh(_ context.Context, id login.Identity, authAt time.Time) (brokers.Rechecked, error) {
	u.rmu.Lock()
	defer u.rmu.Unlock()
	u.asked = append(u.asked, Asked{Identity: id, AuthAt: authAt})
	if err := u.answers[id.Subject]; err != nil {
		return brokers.Rechecked{}, err
	}
	return brokers.Rechecked{Upstream: append(append([]byte(nil), id.Upstream...), '+'), Current: u.Current}, nil
}
