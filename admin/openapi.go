package admin

import (
	"net/http"
	"strings"

	"github.com/labstack/echo/v4"

	"github.com/fedhub/fedhub/issuer"
)

// operation describes one API operation for the OpenAPI document.
type operation struct {
	method, path, summary string
	body                  map[string]any // JSON properties of the request body, if any
	query                 []string       // query parameters
}

// apiOperations are every route of the API; a test checks they match the router.
var apiOperations = []operation{
	{"get", "/users", "Search users by username or email prefix, upstream subject, or connector: subject matches first, then usernames, then emails. " +
		"The answer has users, more, and while more follow next: a cursor that after= takes to continue with the next page of the same q and connector " +
		"(as fast at any depth; an altered cursor, or one of another search, is a 400). offset skips users as well, slower for deep pages",
		nil, []string{"q", "connector", "after", "offset", "limit"}},
	{"get", "/users/{id}", "A user: profile, roles, groups, linked identities, sessions and recent audit events", nil, nil},
	{"post", "/users/{id}/disable", "Disable a user and end their sessions and grants", nil, nil},
	{"post", "/users/{id}/enable", "Enable a user", nil, nil},
	{"post", "/users/{id}/revoke-sessions", "Revoke a user's sessions and refresh tokens", nil, nil},
	{"post", "/users/{id}/links", "Link an upstream identity (connector and subject) to a user. The subject as fedhub stores it: " +
		"OIDC <issuer>|<sub>, SAML <IdP entity ID>!<NameID>, LDAP the entryUUID, AD the objectGUID",
		map[string]any{"connector": str, "subject": str, "username": str, "email": str}, nil},
	{"delete", "/users/{id}/links/{link}", "Unlink an upstream identity; force=true removes the last way to log in", nil, []string{"force"}},
	{"post", "/users/{id}/links/{link}/move", "Move a link to another user",
		map[string]any{"to_user_id": str, "force": map[string]string{"type": "boolean"}}, nil},
	{"post", "/users/{id}/merge", "Merge another user into this one (links, roles and groups move)",
		map[string]any{"from_user_id": str}, nil},
	{"get", "/users/{id}/factors", "A user's second factors (authenticator apps; passkeys where available), recovery codes left, " +
		"and their own second-factor policy (default: the connector's and the client's apply)", nil, nil},
	{"post", "/users/{id}/factors/reset", "Remove all of a user's second factors and recovery codes, and end their sessions and grants; " +
		"their next sign-in asks for no second factor, or enrols one where their policy requires it", nil, nil},
	{"put", "/users/{id}/mfa", "Set a user's own second-factor policy, which replaces the connector's and the client's: " +
		"default (none of their own), off, optional or required",
		map[string]any{"policy": map[string]any{"type": "string", "enum": mfaPolicies}}, nil},
	{"post", "/users/{id}/groups", "Put a user in a group (defined or not); they get its roles and its ancestors' roles",
		map[string]any{"group": str}, nil},
	{"delete", "/users/{id}/groups/{group}", "Take a user out of a group, whoever put them in (a mapper or sync may put them back at their next login or sync)", nil, nil},
	{"get", "/groups-and-roles", "Group definitions (parent, roles) and role definitions (description, included roles), each with its source: config or an administrator", nil, nil},
	{"put", "/groups/{group}", "Create or replace a group: its parent group and its roles (both defined already). " +
		"422 when a name is unknown or the nesting would make a cycle",
		map[string]any{"parent": str, "roles": strList}, nil},
	{"delete", "/groups/{group}", "Delete a group with its roles and memberships; 422 while it has subgroups", nil, nil},
	{"put", "/roles/{role}", "Create or replace a role: its description and the roles it includes (a composite; defined already). " +
		"422 when a name is unknown or the composites would make a cycle",
		map[string]any{"description": str, "includes": strList}, nil},
	{"delete", "/roles/{role}", "Delete a role, and take it from the groups, composites and users that have it", nil, nil},
	{"get", "/connectors", "Connectors with live status, certificate expiry, logins of the last 24 hours and, for those that import their directory, the sync's progress or last counts", nil, nil},
	{"post", "/connectors/{id}/sync", "Start the directory sync of an LDAP/AD connector that imports its directory: 202 with its state, " +
		"409 with the state of the run already going on (on any node)", nil, nil},
	{"get", "/clients", "Clients (never their secrets)", nil, nil},
	{"post", "/clients/{id}/rotate-secret", "Give a client a new secret; the answer is the only time it is shown", nil, nil},
	{"get", "/audit", "The audit log, filtered; format=csv exports it", nil, []string{"user", "connector", "type", "request_id", "since", "until", "offset", "limit", "format"}},
}

// pathParams are the path parameters the document declares.
var pathParams = []string{"id", "link", "group", "role"}

var (
	str     = map[string]string{"type": "string"}
	strList = map[string]any{"type": "array", "items": str}
)

// openAPI serves the API's OpenAPI 3.1 description.
func (s *Service) openAPI(c echo.Context) error {
	paths := map[string]map[string]any{}
	for _, op := range apiOperations {
		o := map[string]any{
			"summary":  op.summary,
			"security": []map[string][]string{{"bearer": {issuer.AdminScope}}},
			"responses": map[string]any{
				"200": map[string]string{"description": "done; JSON"},
				"400": map[string]string{"description": "a request body that is not the JSON described, or a value out of range (e.g. an unknown policy); nothing changed"},
				"401": map[string]string{"description": "no or an invalid access token"},
				"403": map[string]string{"description": "the token lacks the " + issuer.AdminScope + " scope, or its user is not an administrator"},
				"404": map[string]string{"description": "no such user, link, group or role"},
				"422": map[string]string{"description": "refused, with a reason (e.g. the user's last way to log in)"},
			},
		}
		var params []map[string]any
		for _, name := range pathParams {
			if strings.Contains(op.path, "{"+name+"}") {
				params = append(params, map[string]any{"name": name, "in": "path", "required": true, "schema": str})
			}
		}
		for _, q := range op.query {
			params = append(params, map[string]any{"name": q, "in": "query", "schema": str})
		}
		if params != nil {
			o["parameters"] = params
		}
		if op.body != nil {
			o["requestBody"] = map[string]any{"required": true, "content": map[string]any{
				"application/json": map[string]any{"schema": map[string]any{"type": "object", "properties": op.body}}}}
		}
		if paths[op.path] == nil {
			paths[op.path] = map[string]any{}
		}
		paths[op.path][op.method] = o
	}
	return c.JSON(http.StatusOK, map[string]any{
		"openapi": "3.1.0",
		"info":    map[string]string{"title": "fedhub admin API", "version": "1"},
		"servers": []map[string]string{{"url": s.issuerID + "/api/admin/v1"}},
		"components": map[string]any{"securitySchemes": map[string]any{"bearer": map[string]any{
			"type": "oauth2", "description": "An access token of fedhub's issuer with the " + issuer.AdminScope + " scope: " +
				"an admin user's, or a client's (client credentials) that is configured with that scope.",
			"flows": map[string]any{"clientCredentials": map[string]any{"tokenUrl": s.issuerID + "/token",
				"scopes": map[string]string{issuer.AdminScope: "administer fedhub"}}}}}},
		"paths": paths,
	})
}
