package issuer

import (
	"context"
	"errors"
	"net/url"
	"testing"
	"time"

	"gorm.io/gorm"

	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store/storetest"
)

// TestUnitDeviceGrant: what a polling device is told at each stage, on both
// databases (the approved case, which issues tokens, is in e2e).
func TestUnitDeviceGrant(t *testing.T) {
	ctx := context.Background()
	cases := []struct {
		name     string
		status   string
		polled   time.Duration // how long ago the last poll was; 0: never
		age      time.Duration // how long ago the code was issued
		clientID string
		want     string
	}{
		{"pending", devicePending, 0, time.Minute, "cli", "authorization_pending"},
		{"polled at the interval", devicePending, devicePollInterval, time.Minute, "cli", "authorization_pending"},
		{"polled within the tolerance", devicePending, devicePollInterval - pollTolerance, time.Minute, "cli", "authorization_pending"},
		{"polled too soon", devicePending, time.Second, time.Minute, "cli", "slow_down"},
		{"denied", deviceDenied, 0, time.Minute, "cli", "access_denied"},
		{"expired", devicePending, 0, deviceCodeTTL + time.Second, "cli", "expired_token"},
		{"used", deviceRedeemed, time.Second, time.Minute, "cli", "invalid_grant"},
		{"another client's", devicePending, 0, time.Minute, "other", "invalid_grant"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			storetest.ForEachDB(t, Models(), func(t *testing.T, db *gorm.DB) {
				now := time.Date(2030, 5, 17, 9, 30, 0, 0, time.UTC)
				iss := &Issuer{db: db, now: func() time.Time { return now }}
				issued := now.Add(-c.age)
				d := DeviceAuthorization{ID: "d", DeviceCodeHash: secret.Hash("code"), UserCodeHash: "u", ClientID: "cli",
					Status: c.status, CreatedAt: issued, ExpiresAt: issued.Add(deviceCodeTTL)}
				if c.polled > 0 {
					at := now.Add(-c.polled)
					d.LastPolledAt = &at
				}
				if err := db.Create(&d).Error; err != nil {
					t.Fatal(err)
				}
				_, err := iss.deviceGrant(ctx, &Client{ID: c.clientID}, url.Values{"device_code": {"code"}})
				var oe *oauthError
				if !errors.As(err, &oe) || oe.code != c.want {
					t.Fatalf("got %v, want %s", err, c.want)
				}
			})
		})
	}
}

func TestUnitNormalUserCode(t *testing.T) {
	for typed, want := range map[string]string{
		"BCDF-GHJK": "BCDFGHJK", "bcdfghjk": "BCDFGHJK", " bcdf ghjk ": "BCDFGHJK",
		"BCDF-GHJ": "", "BCDF-GHJA": "", "BCDF-GHJKL": "", "BCDF_GHJK": "", "ВCDF-GHJK": "",
	} {
		if got := normalUserCode(typed); got != want {
			t.Errorf("normalUserCode(%q) = %q, want %q", typed, got, want)
		}
	}
}
