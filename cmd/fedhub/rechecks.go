package main

import (
	"context"
	"errors"

	"github.com/fedhub/fedhub/brokers"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/metrics"
)

// countedRechecks is the broker as the issuer sees it, with the re-checks
// that did not say yes counted: the issuer's token path stays as it is.
type countedRechecks struct {
	*brokers.Service
	m *metrics.Metrics
}

func (b countedRechecks) Recheck(ctx context.Context, userID, connector, subject string) error {
	err := b.Service.Recheck(ctx, userID, connector, subject)
	switch {
	case errors.Is(err, login.ErrUpstreamRefused):
		b.m.Recheck(connector, metrics.RecheckRefused)
	case errors.Is(err, login.ErrUpstreamUnreachable):
		b.m.Recheck(connector, metrics.RecheckUnreachable)
	}
	return err
}
