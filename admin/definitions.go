package admin

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/audit"
	"github.com/fedhub/fedhub/linking"
)

// Groups and roles: definitions (nesting, roles of groups, composites) and
// users' memberships, from the pages and the API alike.

// definitionRefused turns the definitions' refusals into messages to show.
func definitionRefused(err error) error {
	var msg string
	switch {
	case errors.Is(err, linking.ErrCycle):
		msg = "Refused: " + err.Error() + "."
	case errors.Is(err, linking.ErrNoDefinition):
		msg = "Refused: " + err.Error() + ". Define it first."
	case errors.Is(err, linking.ErrHasSubgroups):
		msg = "Refused: the group has subgroups. Delete them or move them elsewhere first."
	default:
		return err
	}
	return errBadInput{msg}
}

// saveGroup creates or replaces a group definition.
func (s *Service) saveGroup(ctx context.Context, a Actor, g linking.Group) error {
	if strings.TrimSpace(g.Name) == "" {
		return errBadInput{"Give the group a name."}
	}
	g.Source = ""
	if err := s.users.SaveGroup(ctx, g); err != nil {
		return definitionRefused(err)
	}
	return s.record(ctx, a, audit.GroupSaved, "", "", fmt.Sprintf("group %s, parent %q, roles %v", g.Name, g.Parent, g.Roles))
}

// saveRole creates or replaces a role definition.
func (s *Service) saveRole(ctx context.Context, a Actor, r linking.Role) error {
	if strings.TrimSpace(r.Name) == "" {
		return errBadInput{"Give the role a name."}
	}
	r.Source = ""
	if err := s.users.SaveRole(ctx, r); err != nil {
		return definitionRefused(err)
	}
	return s.record(ctx, a, audit.RoleSaved, "", "", fmt.Sprintf("role %s, includes %v", r.Name, r.Includes))
}

func (s *Service) deleteGroup(ctx context.Context, a Actor, name string) error {
	if err := s.users.DeleteGroup(ctx, name); err != nil {
		return definitionRefused(err)
	}
	return s.record(ctx, a, audit.GroupDeleted, "", "", "group "+name+" and its memberships")
}

func (s *Service) deleteRole(ctx context.Context, a Actor, name string) error {
	if err := s.users.DeleteRole(ctx, name); err != nil {
		return definitionRefused(err)
	}
	return s.record(ctx, a, audit.RoleDeleted, "", "", "role "+name+", taken from groups, composites and users")
}

// joinGroup puts a user in a group; leaveGroup takes them out.
func (s *Service) joinGroup(ctx context.Context, a Actor, userID, group string) error {
	if strings.TrimSpace(group) == "" {
		return errBadInput{"Give the group."}
	}
	if _, err := s.users.UserByID(ctx, userID); err != nil {
		return err
	}
	if err := s.users.JoinGroup(ctx, userID, group); err != nil {
		return err
	}
	return s.record(ctx, a, audit.GroupJoined, userID, "", "group "+strings.TrimSpace(group)+" by an administrator")
}

func (s *Service) leaveGroup(ctx context.Context, a Actor, userID, group string) error {
	if _, err := s.users.UserByID(ctx, userID); err != nil {
		return err
	}
	if err := s.users.LeaveGroup(ctx, userID, group); err != nil {
		if errors.Is(err, linking.ErrNotMember) {
			return errBadInput{"The user is not in the group " + group + "."}
		}
		return err
	}
	return s.record(ctx, a, audit.GroupLeft, userID, "", "group "+group+" by an administrator")
}

// nameParam is a group's or role's name from the path, unescaped (echo
// leaves escapes such as %20 in parameters).
func nameParam(c echo.Context, name string) string {
	v, err := url.PathUnescape(c.Param(name))
	if err != nil {
		return c.Param(name)
	}
	return v
}

func (s *Service) apiDefinitions(c echo.Context) error {
	d, err := s.users.Definitions(c.Request().Context())
	if err != nil {
		return err
	}
	groups, roles := d.Groups, d.Roles
	if groups == nil {
		groups = []linking.Group{}
	}
	if roles == nil {
		roles = []linking.Role{}
	}
	return c.JSON(http.StatusOK, map[string]any{"groups": groups, "roles": roles})
}

func (s *Service) apiSaveGroup(c echo.Context) error {
	var in struct {
		Parent string   `json:"parent"`
		Roles  []string `json:"roles"`
	}
	if err := c.Bind(&in); err != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", `the body must be JSON: {"parent": "...", "roles": [...]}`})
	}
	if err := s.saveGroup(c.Request().Context(), actor(c), linking.Group{Name: nameParam(c, "group"), Parent: in.Parent, Roles: in.Roles}); err != nil {
		return apiFail(c, err)
	}
	return s.apiDefinitions(c)
}

func (s *Service) apiSaveRole(c echo.Context) error {
	var in struct {
		Description string   `json:"description"`
		Includes    []string `json:"includes"`
	}
	if err := c.Bind(&in); err != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", `the body must be JSON: {"description": "...", "includes": [...]}`})
	}
	r := linking.Role{Name: nameParam(c, "role"), Description: in.Description, Includes: in.Includes}
	if err := s.saveRole(c.Request().Context(), actor(c), r); err != nil {
		return apiFail(c, err)
	}
	return s.apiDefinitions(c)
}

func (s *Service) apiDeleteGroup(c echo.Context) error {
	if err := s.deleteGroup(c.Request().Context(), actor(c), nameParam(c, "group")); err != nil {
		return apiFail(c, err)
	}
	return s.apiDefinitions(c)
}

func (s *Service) apiDeleteRole(c echo.Context) error {
	if err := s.deleteRole(c.Request().Context(), actor(c), nameParam(c, "role")); err != nil {
		return apiFail(c, err)
	}
	return s.apiDefinitions(c)
}

func (s *Service) apiJoinGroup(c echo.Context) error {
	var in struct {
		Group string `json:"group"`
	}
	if c.Bind(&in) != nil {
		return c.JSON(http.StatusBadRequest, apiError{"invalid_request", `give {"group": "..."} as JSON`})
	}
	if err := s.joinGroup(c.Request().Context(), actor(c), c.Param("id"), in.Group); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

func (s *Service) apiLeaveGroup(c echo.Context) error {
	if err := s.leaveGroup(c.Request().Context(), actor(c), c.Param("id"), nameParam(c, "group")); err != nil {
		return apiFail(c, err)
	}
	return s.apiDone(c, c.Param("id"))
}

// groupsData is the groups-and-roles page; Problem is a refused change.
type groupsData struct {
	linking.Definitions
	Problem string
}

func (s *Service) groupsPage(c echo.Context) error {
	return s.renderGroups(c, http.StatusOK, "")
}

func (s *Service) renderGroups(c echo.Context, status int, problem string) error {
	d, err := s.users.Definitions(c.Request().Context())
	if err != nil {
		return err
	}
	return s.render(c, status, "admin_groups.html", "groups", groupsData{Definitions: d, Problem: problem})
}

// changeGroupsPage saves or deletes a group or a role, as the form's "do" says.
func (s *Service) changeGroupsPage(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	f, ctx, a := c.Request().PostForm, c.Request().Context(), actor(c)
	var err error
	switch f.Get("do") {
	case "save-group":
		err = s.saveGroup(ctx, a, linking.Group{Name: f.Get("name"), Parent: f.Get("parent"), Roles: f["roles"]})
	case "delete-group":
		err = s.deleteGroup(ctx, a, f.Get("name"))
	case "save-role":
		err = s.saveRole(ctx, a, linking.Role{Name: f.Get("name"), Description: f.Get("description"), Includes: f["includes"]})
	case "delete-role":
		err = s.deleteRole(ctx, a, f.Get("name"))
	default:
		err = errBadInput{"Choose what to do."}
	}
	var bad errBadInput
	if errors.As(err, &bad) {
		return s.renderGroups(c, http.StatusUnprocessableEntity, bad.msg)
	}
	if err != nil {
		return err
	}
	return c.Redirect(http.StatusSeeOther, "/admin/groups?done="+f.Get("do"))
}

// membershipPage puts the user in a group or takes them out.
func (s *Service) membershipPage(c echo.Context) error {
	if !s.csrfOK(c) {
		return forbidden(c)
	}
	f, ctx, a, id := c.Request().PostForm, c.Request().Context(), actor(c), c.Param("id")
	var err error
	switch f.Get("do") {
	case "join-group":
		err = s.joinGroup(ctx, a, id, f.Get("group"))
	case "leave-group":
		err = s.leaveGroup(ctx, a, id, f.Get("group"))
	default:
		err = errBadInput{"Choose what to do."}
	}
	if err != nil {
		return s.pageFail(c, err)
	}
	return c.Redirect(http.StatusSeeOther, "/admin/users/"+url.PathEscape(id)+"?done="+f.Get("do"))
}
