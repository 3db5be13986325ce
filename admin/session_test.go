package admin

import (
	"context"
	"io"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/labstack/echo/v4"
	"gorm.io/gorm"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/issuer"
	"github.com/fedhub/fedhub/linking"
	"github.com/fedhub/fedhub/login"
	"github.com/fedhub/fedhub/secret"
	"github.com/fedhub/fedhub/store/storetest"
	"github.com/fedhub/fedhub/templates"
)

// TestAdminSessionEndsWithSSOSession: an admin session is let in only while
// the SSO session it was made from is live. Once that one is ended (logout,
// an admin's revoke, a disabled user), expired or idle — or when the admin
// session names none — pages redirect to the sign-in, forms are refused, and
// the admin session is gone for good.
func TestAdminSessionEndsWithSSOSession(t *testing.T) {
	models := append(issuer.Models(), Models()...)
	models = append(models, linking.Models()...)
	models = append(models, audit.Models()...)
	models = append(models, login.Models()...)
	storetest.ForEachDB(t, models, func(t *testing.T, db *gorm.DB) {
		ctx := context.Background()
		log := slog.New(slog.NewTextHandler(io.Discard, nil))
		users := linking.New(db, time.Now)
		alice, err := users.CreateUser(ctx, linking.NewUser{Username: "alice", Roles: []string{issuer.AdminRole}})
		if err != nil {
			t.Fatal(err)
		}
		cfg := config.Defaults()
		cfg.Issuer = "https://id.example.com"
		cfg.Signing.Algorithm = "EdDSA"
		iss, err := issuer.New(ctx, &cfg, db, nil, users, audit.New(db, log, time.Now), log, time.Now)
		if err != nil {
			t.Fatal(err)
		}
		s := &Service{db: db, users: users, issuer: iss}
		e := echo.New()
		if e.Renderer, err = templates.New(); err != nil {
			t.Fatal(err)
		}
		ok := func(c echo.Context) error { return c.String(http.StatusOK, "admin page") }
		e.GET("/admin/page", ok, s.requireAdminPage)
		e.POST("/admin/page", ok, s.requireAdminPage)

		now := time.Now().UTC()
		for _, c := range []struct {
			name string
			sso  *issuer.Session // nil: the admin session names no SSO session
			end  func(sid string) error
			live bool
		}{
			{"live SSO session", &issuer.Session{LastSeenAt: now, ExpiresAt: now.Add(time.Hour)}, nil, true},
			{"SSO session used a while ago, not idle yet", &issuer.Session{LastSeenAt: now.Add(-cfg.Tokens.SSOIdle + time.Minute),
				ExpiresAt: now.Add(time.Hour)}, nil, true},
			{"SSO session ended (logout)", &issuer.Session{LastSeenAt: now, ExpiresAt: now.Add(time.Hour), EndedAt: &now}, nil, false},
			{"SSO session expired", &issuer.Session{LastSeenAt: now, ExpiresAt: now.Add(-time.Second)}, nil, false},
			{"SSO session idle", &issuer.Session{LastSeenAt: now.Add(-cfg.Tokens.SSOIdle - time.Second), ExpiresAt: now.Add(time.Hour)}, nil, false},
			{"SSO sessions ended by an admin or a disable", &issuer.Session{LastSeenAt: now, ExpiresAt: now.Add(time.Hour)},
				func(string) error { return iss.EndSessions(ctx, alice.ID) }, false},
			{"no SSO session named (made before sessions were bound)", nil, nil, false},
		} {
			t.Run(c.name, func(t *testing.T) {
				sid := ""
				if c.sso != nil {
					sid = secret.Token(16)
					c.sso.ID, c.sso.TokenHash, c.sso.UserID = sid, secret.Hash(sid), alice.ID
					if err := db.Create(c.sso).Error; err != nil {
						t.Fatal(err)
					}
				}
				if c.end != nil {
					if err := c.end(sid); err != nil {
						t.Fatal(err)
					}
				}
				for _, method := range []string{http.MethodGet, http.MethodPost} {
					token := secret.Token(32)
					row := Session{TokenHash: secret.Hash(token), UserID: alice.ID, SSOSessionID: sid, CSRF: "csrf",
						AuthTime: now, CreatedAt: now, ExpiresAt: now.Add(time.Hour)}
					if err := db.Create(&row).Error; err != nil {
						t.Fatal(err)
					}
					r := httptest.NewRequest(method, "/admin/page", strings.NewReader("csrf=csrf"))
					r.Header.Set("Content-Type", "application/x-www-form-urlencoded")
					r.AddCookie(&http.Cookie{Name: sessionCookie, Value: token})
					w := httptest.NewRecorder()
					e.ServeHTTP(w, r)
					loc := w.Header().Get("Location")
					switch {
					case c.live && w.Code != http.StatusOK:
						t.Errorf("%s answered %d, want 200", method, w.Code)
					case c.live:
						continue
					case method == http.MethodGet && (w.Code != http.StatusSeeOther || !strings.HasPrefix(loc, "/admin/login?")):
						t.Errorf("GET answered %d to %q, want a redirect to the sign-in", w.Code, loc)
					case method == http.MethodPost && w.Code != http.StatusForbidden:
						t.Errorf("POST answered %d, want 403", w.Code)
					}
					var left int64
					if err := db.Model(&Session{}).Where("token_hash = ?", row.TokenHash).Count(&left).Error; err != nil || left != 0 {
						t.Errorf("after %s, the admin session is still stored (%d, %v)", method, left, err)
					}
				}
			})
		}
	})
}
