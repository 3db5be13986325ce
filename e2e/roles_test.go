package e2e

import (
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/chromedp/chromedp"
	"golang.org/x/oauth2"

	"github.com/fedhub/fedhub/e2e/peers"
)

// Groups that nest and carry roles, and composite roles, against the real
// binary: definitions made through the admin API reach a go-oidc relying
// party's tokens as realm_access.roles; cycles are refused by the API and by
// the configuration's loader.

// roConfigRoles is a role defined in the configuration, which an
// administrator's group may carry.
const roConfigRoles = `roles:
  - name: cfg-viewer
    description: Defined in the configuration
`

// roDefinitions is the admin API's view of the groups and roles.
type roDefinitions struct {
	Groups []struct {
		Name, Parent, Source string
		Roles                []string
	} `json:"groups"`
	Roles []struct {
		Name, Source string
		Includes     []string
	} `json:"roles"`
}

func TestAdminAPIGroupsAndRoles(t *testing.T) {
	t.Parallel()
	s := Start(t, aaEnv(), WithConfig(aaConfig("", "", "")+roConfigRoles))
	token := aaClientCredentials(t, s, aaAutomation, aaAdminScope).Access
	bobID := aaUserID(t, s, token, "bob")
	actor := "client:" + aaAutomationID

	for _, step := range []struct{ method, path, body string }{
		{"PUT", "/roles/reader", `{"description": "Reads"}`},
		{"PUT", "/roles/editor", `{"includes": ["reader"]}`},
		{"PUT", "/groups/eng", `{"roles": ["cfg-viewer"]}`},
		{"PUT", "/groups/eng%20backend", `{"parent": "eng", "roles": ["editor"]}`},
		{"POST", "/users/" + bobID + "/groups", `{"group": "eng backend"}`},
	} {
		aaWant(t, aaCall(t, s, step.method, step.path, token, step.body), http.StatusOK, nil, step.method+" "+step.path)
	}
	var defs roDefinitions
	aaWant(t, aaCall(t, s, "GET", "/groups-and-roles", token, ""), http.StatusOK, &defs, "definitions")
	if len(defs.Groups) != 2 || defs.Groups[1].Name != "eng backend" || defs.Groups[1].Parent != "eng" || len(defs.Roles) != 3 ||
		defs.Roles[0].Name != "cfg-viewer" || defs.Roles[0].Source != "config" || defs.Roles[1].Source != "" {
		t.Fatalf("definitions = %+v", defs)
	}
	for _, typ := range []string{"role.saved", "group.saved"} {
		aaWantEvent(t, s, token, typ, "", "", actor)
	}
	aaWantEvent(t, s, token, "user.group_joined", bobID, "", actor)

	// A go-oidc relying party sees the inherited (eng's cfg-viewer) and
	// composite (editor's reader) roles, in the ID token and the access token.
	rp := newGoRP(t, s, rpID, rpSecret)
	tok, _, claims := rp.login(t, NewBrowser(t), "bob", bobPass)
	wantRoles, wantGroups := []string{"cfg-viewer", "editor", "reader"}, []string{"eng", "eng backend"}
	for name, c := range map[string]map[string]any{"ID token": claims, "access token": rpJWTPart(t, tok.AccessToken, 1)} {
		ra, _ := c["realm_access"].(map[string]any)
		if !rpStrings(ra["roles"], wantRoles...) || !rpStrings(c["groups"], wantGroups...) {
			t.Errorf("%s: realm_access %v groups %v, want roles %v groups %v", name, c["realm_access"], c["groups"], wantRoles, wantGroups)
		}
	}

	t.Run("cycles refused", func(t *testing.T) {
		for _, c := range []struct{ path, body, msg string }{
			{"/groups/eng", `{"parent": "eng backend"}`, "cycle: eng → eng backend → eng"},
			{"/roles/reader", `{"includes": ["editor"]}`, "cycle: editor → reader → editor"},
			{"/groups/ops", `{"parent": "nope"}`, "no such group or role"},
		} {
			a := aaCall(t, s, "PUT", c.path, token, c.body)
			if a.Status != http.StatusUnprocessableEntity || !strings.Contains(a.Raw, c.msg) {
				t.Errorf("PUT %s %s answered %d %s, want 422 with %q", c.path, c.body, a.Status, a.Raw, c.msg)
			}
		}
		var after roDefinitions
		aaWant(t, aaCall(t, s, "GET", "/groups-and-roles", token, ""), http.StatusOK, &after, "definitions")
		if len(after.Groups) != 2 || after.Groups[0].Parent != "" || len(after.Roles[2].Includes) != 0 {
			t.Errorf("a refused change changed the definitions: %+v", after)
		}
	})

	t.Run("leaving the group and deleting a role", func(t *testing.T) {
		aaWant(t, aaCall(t, s, "DELETE", "/roles/reader", token, ""), http.StatusOK, nil, "delete reader")
		refreshed := roRefresh(t, rp, tok)
		ra, _ := rpJWTPart(t, refreshed.AccessToken, 1)["realm_access"].(map[string]any)
		if !rpStrings(ra["roles"], "cfg-viewer", "editor") {
			t.Errorf("after deleting reader: roles %v, want [cfg-viewer editor]", ra["roles"])
		}
		aaWant(t, aaCall(t, s, "DELETE", "/users/"+bobID+"/groups/eng%20backend", token, ""), http.StatusOK, nil, "leave")
		aaWantEvent(t, s, token, "user.group_left", bobID, "", actor)
		c := rpJWTPart(t, roRefresh(t, rp, refreshed).AccessToken, 1)
		if ra, _ := c["realm_access"].(map[string]any); !rpStrings(ra["roles"]) || !rpStrings(c["groups"]) {
			t.Errorf("after leaving: realm_access %v groups %v, want none", c["realm_access"], c["groups"])
		}
		a := aaCall(t, s, "DELETE", "/groups/eng", token, "")
		if a.Status != http.StatusUnprocessableEntity || !strings.Contains(a.Raw, "subgroups") {
			t.Errorf("deleting a group with subgroups answered %d %s, want 422", a.Status, a.Raw)
		}
	})
}

// roRefresh refreshes the RP's tokens.
func roRefresh(t *testing.T, rp *goRP, tok *oauth2.Token) *oauth2.Token {
	t.Helper()
	expired := &oauth2.Token{AccessToken: tok.AccessToken, RefreshToken: tok.RefreshToken, TokenType: "Bearer", Expiry: time.Now().Add(-time.Hour)}
	out, err := rp.conf.TokenSource(t.Context(), expired).Token()
	if err != nil {
		t.Fatalf("refresh: %v", err)
	}
	return out
}

// TestConfigGroupCycleRefused: the configuration's loader refuses a cycle of
// nested groups or composite roles, naming the key and line.
func TestConfigGroupCycleRefused(t *testing.T) {
	t.Parallel()
	for _, c := range []struct{ name, yaml, want string }{
		{"groups", "groups:\n  - name: a\n    parent: b\n  - name: b\n    parent: a\n",
			"groups[0].parent: nests the groups in a cycle: a → b → a"},
		{"roles", "roles:\n  - name: a\n    includes: [b]\n  - name: b\n    includes: [a]\n",
			"roles[0].includes: makes the composite roles a cycle: a → b → a"},
	} {
		t.Run(c.name, func(t *testing.T) {
			out, err := ocCheckConfig(t, defaultConfig+c.yaml)
			if err == nil || !strings.Contains(out, c.want) || !strings.Contains(out, "line ") {
				t.Errorf("check-config = %v\n%s\nwant a refusal with %q and its line", err, out, c.want)
			}
		})
	}
}

// TestAdminUIGroups: in Chromium, an administrator defines a composite role
// and a nested group carrying it, is refused a cycle, and puts bob in the
// subgroup; bob's next token has the roles.
func TestAdminUIGroups(t *testing.T) {
	s := Start(t)
	ctx := peers.Chromium(t)
	if st := auAdminLogin(t, ctx, s, "alice", alicePass); st != http.StatusOK {
		t.Fatalf("alice's sign-in to /admin answered %d:\n%s", st, auBody(ctx))
	}
	bobID := auUserID(t, ctx, s, "bob")
	save := func(form, name string, fill func(), status int64, flash string) {
		t.Helper()
		auNav(t, ctx, s.URL+"/admin/groups")
		auType(t, ctx, "#"+form+"-name", name)
		if fill != nil {
			fill()
		}
		if st := auClick(t, ctx, "#save-"+form+" button"); st != status {
			t.Fatalf("saving %s %s answered %d, want %d:\n%s", form, name, st, status, auBody(ctx))
		}
		if got := textOf(t, ctx, map[bool]string{true: "#flash", false: "#problem"}[status == http.StatusOK]); !strings.Contains(got, flash) {
			t.Fatalf("saving %s %s says %q, want %q", form, name, got, flash)
		}
	}
	check := func(sel string) func() {
		return func() {
			if err := chromedp.Do(ctx, chromedp.Click(chromedp.CSS(sel))); err != nil {
				t.Fatalf("tick %s: %v", sel, err)
			}
		}
	}
	parent := func(name string) func() {
		return func() {
			if err := chromedp.Do(ctx, chromedp.SetValue(chromedp.CSS("#group-parent"), name)); err != nil {
				t.Fatalf("choose parent %s: %v", name, err)
			}
		}
	}
	save("role", "reader", nil, http.StatusOK, "The role is saved.")
	save("role", "editor", check(`#save-role input[value="reader"]`), http.StatusOK, "The role is saved.")
	save("group", "eng", nil, http.StatusOK, "The group is saved.")
	save("group", "eng-backend", func() { parent("eng")(); check(`#save-group input[value="editor"]`)() }, http.StatusOK, "The group is saved.")
	save("group", "eng", parent("eng-backend"), http.StatusUnprocessableEntity, "cycle: eng → eng-backend → eng")

	auNav(t, ctx, s.URL+"/admin/groups")
	rows := auRows(t, ctx, "#groups")
	if len(rows) != 2 || rows[1][0] != "eng-backend" || rows[1][1] != "eng" || rows[1][2] != "editor" || rows[0][1] != "" {
		t.Fatalf("the groups table shows %q", rows)
	}
	if got := auRows(t, ctx, "#roles"); len(got) != 2 || got[0][0] != "editor" || got[0][2] != "reader" {
		t.Fatalf("the roles table shows %q", got)
	}
	auShot(t, ctx, "admin-groups", true)

	auNav(t, ctx, s.URL+"/admin/users/"+bobID)
	auType(t, ctx, "#join-group-name", "eng-backend")
	if st := auClick(t, ctx, "#join-group button"); st != http.StatusOK || textOf(t, ctx, "#flash") != "The user is in the group." {
		t.Fatalf("adding bob to eng-backend answered %d:\n%s", st, auBody(ctx))
	}
	auShot(t, ctx, "admin-user-groups", false)

	idt := auSignInAs(t, s, NewBrowser(t), "bob", bobPass)
	ra, _ := idt.Claims["realm_access"].(map[string]any)
	if !rpStrings(ra["roles"], "editor", "reader") || !rpStrings(idt.Claims["groups"], "eng", "eng-backend") {
		t.Errorf("bob's ID token: realm_access %v groups %v, want roles [editor reader] groups [eng eng-backend]", ra, idt.Claims["groups"])
	}

	auNav(t, ctx, s.URL+"/admin/users/"+bobID)
	if st := auClick(t, ctx, "#own-groups button"); st != http.StatusOK || textOf(t, ctx, "#flash") != "The user is out of the group." {
		t.Fatalf("taking bob out of eng-backend answered %d:\n%s", st, auBody(ctx))
	}
	if auHas(t, ctx, `#own-groups input[value="leave-group"]`) {
		t.Errorf("after the removal bob's page still shows a group of his own:\n%s", auBody(ctx))
	}
}

// TestReloadGroups: SIGHUP writes the configuration's groups and roles (alice
// is in staff: its role reaches her next token), takes them away when they
// leave the file, and refuses a file with a cycle.
func TestReloadGroups(t *testing.T) {
	s := Start(t)
	roles := func() any {
		t.Helper()
		ra, _ := auSignInAs(t, s, NewBrowser(t), "alice", alicePass).Claims["realm_access"].(map[string]any)
		return ra["roles"]
	}
	for _, c := range []struct {
		name, more, log string
		roles           []string
	}{
		{"defined", "roles:\n  - name: reader\n  - name: staff-role\n    includes: [reader]\ngroups:\n  - name: staff\n    roles: [staff-role]\n",
			"configuration reloaded", []string{"admin", "reader", "staff-role"}},
		{"a cycle refused", "roles:\n  - name: reader\n    includes: [reader]\n", "configuration reload refused", []string{"admin", "reader", "staff-role"}},
		{"removed", "", "configuration reloaded", []string{"admin"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			rlWrite(t, s, "", c.more)
			rlSignal(t, s, syscall.SIGHUP, c.log)
			if got := roles(); !rpStrings(got, c.roles...) {
				t.Errorf("alice's roles = %v, want %v", got, c.roles)
			}
		})
	}
}
