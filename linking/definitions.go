package linking

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/clause"

	"github.com/fedhub/fedhub/internal/rolegraph"
	"github.com/fedhub/fedhub/internal/versioned"
)

// Groups nest and carry roles; roles may be composites of other roles. A
// user's effective roles are their direct roles, the roles of their groups
// and of those groups' ancestors, all expanded through composites; their
// effective groups are their groups and those groups' ancestors.

// GroupDefinition is a group that nests under Parent ("" at the top).
type GroupDefinition struct {
	Name   string `gorm:"primaryKey;size:255"`
	Parent string `gorm:"size:255;not null;default:''"`
	Source string `gorm:"size:64;not null;default:''"` // SourceConfig, or "" when an administrator made it
}

// GroupRole gives a group's members (and its subgroups' members) a role.
type GroupRole struct {
	Group string `gorm:"primaryKey;size:255;column:group_name"`
	Role  string `gorm:"primaryKey;size:255"`
}

// RoleDefinition is a role; Includes (RoleComposite) make it a composite.
type RoleDefinition struct {
	Name        string `gorm:"primaryKey;size:255"`
	Description string `gorm:"size:1024"`
	Source      string `gorm:"size:64;not null;default:''"`
}

// RoleComposite makes whoever has Role also have Includes.
type RoleComposite struct {
	Role     string `gorm:"primaryKey;size:255"`
	Includes string `gorm:"primaryKey;size:255"`
}

// DefinitionVersion is a single row whose number rises with every write of
// the definitions, so that every node notices a change with one small read.
type DefinitionVersion struct {
	ID      int `gorm:"primaryKey;autoIncrement:false"`
	Version int64
}

// SourceConfig marks definitions written from the configuration.
const SourceConfig = "config"

// Errors of definitions, safe to show.
var (
	ErrCycle        = errors.New("that would make a cycle")
	ErrNoDefinition = errors.New("no such group or role")
	ErrHasSubgroups = errors.New("the group has subgroups")
)

// Group is a group definition with its roles.
type Group struct {
	Name   string   `json:"name"`
	Parent string   `json:"parent,omitempty"`
	Roles  []string `json:"roles"`
	Source string   `json:"source,omitempty"`
}

// Role is a role definition with the roles it includes.
type Role struct {
	Name        string   `json:"name"`
	Description string   `json:"description,omitempty"`
	Includes    []string `json:"includes"`
	Source      string   `json:"source,omitempty"`
}

// Definitions are all groups and roles.
type Definitions struct {
	Groups []Group
	Roles  []Role
}

// graph is the definitions as edges, with what each name reaches worked out
// once per load: a token then costs map lookups.
type graph struct {
	groups, roles map[string]bool
	parents       map[string][]string // group → its parent
	groupRoles    map[string][]string
	includes      map[string][]string // role → the roles it includes
	ancestors     map[string][]string // group → itself and its ancestors
	expanded      map[string][]string // role → itself and every role it includes, directly or not
	groupExpanded map[string][]string // group → the expanded roles of it and its ancestors
}

func newGraph(d Definitions) *graph {
	g := &graph{groups: map[string]bool{}, roles: map[string]bool{}, parents: map[string][]string{},
		groupRoles: map[string][]string{}, includes: map[string][]string{}, ancestors: map[string][]string{},
		expanded: map[string][]string{}, groupExpanded: map[string][]string{}}
	for _, gr := range d.Groups {
		g.groups[gr.Name] = true
		if gr.Parent != "" {
			g.parents[gr.Name] = []string{gr.Parent}
		}
		g.groupRoles[gr.Name] = gr.Roles
	}
	for _, r := range d.Roles {
		g.roles[r.Name] = true
		g.includes[r.Name] = r.Includes
	}
	return g
}

// cycle is a cycle of nesting or of composites, as "a → b → a"; "" for none.
func (g *graph) cycle() string {
	for _, edges := range []map[string][]string{g.parents, g.includes} {
		if c := rolegraph.Cycle(edges); c != nil {
			return strings.Join(c, " → ")
		}
	}
	return ""
}

// expand works out ancestors and expansions; the graph must have no cycle.
func (g *graph) expand() {
	reach := func(edges map[string][]string, n string) []string {
		set := map[string]bool{}
		rolegraph.Reach(edges, n, set)
		return slices.Sorted(maps.Keys(set))
	}
	for r := range g.roles {
		g.expanded[r] = reach(g.includes, r)
	}
	for gr := range g.groups {
		g.ancestors[gr] = reach(g.parents, gr)
		set := map[string]bool{}
		for _, a := range g.ancestors[gr] {
			for _, r := range g.groupRoles[a] {
				rolegraph.Reach(g.includes, r, set)
			}
		}
		g.groupExpanded[gr] = slices.Sorted(maps.Keys(set))
	}
}

// effective turns a user's direct roles and groups into their effective
// ones, sorted.
func (g *graph) effective(roles, groups []string) (outRoles, outGroups []string) {
	rs, gs := map[string]bool{}, map[string]bool{}
	for _, r := range roles {
		rs[r] = true
		for _, x := range g.expanded[r] {
			rs[x] = true
		}
	}
	for _, gr := range groups {
		gs[gr] = true
		for _, a := range g.ancestors[gr] {
			gs[a] = true
		}
		for _, x := range g.groupExpanded[gr] {
			rs[x] = true
		}
	}
	return slices.Sorted(maps.Keys(rs)), slices.Sorted(maps.Keys(gs))
}

// definitionsCheck is how often a node asks whether the definitions
// changed: a change made elsewhere is seen within it.
const definitionsCheck = time.Second

// definitionsCache holds the expanded definitions, as issuer's client cache
// holds clients (versioned.Cache).
type definitionsCache = versioned.Cache[*graph]

func newDefinitionsCache(now func() time.Time) *definitionsCache {
	return versioned.New(definitionsCheck, now, readDefinitionsVersion, loadGraph)
}

func readDefinitionsVersion(ctx context.Context, db *gorm.DB) (int64, error) {
	var versions []int64
	if err := db.WithContext(ctx).Model(&DefinitionVersion{}).Where("id = 1").Pluck("version", &versions).Error; err != nil {
		return 0, fmt.Errorf("check groups and roles: %w", err)
	}
	if len(versions) == 0 { // no definition was ever written
		return 0, nil
	}
	return versions[0], nil
}

// loadGraph reads the definitions and expands them once, for every token.
func loadGraph(ctx context.Context, db *gorm.DB) (*graph, error) {
	d, err := readDefinitions(ctx, db)
	if err != nil {
		return nil, err
	}
	g := newGraph(d)
	g.expand()
	return g, nil
}

// readDefinitions reads every group and role with their edges.
func readDefinitions(ctx context.Context, db *gorm.DB) (Definitions, error) {
	var (
		d          Definitions
		groups     []GroupDefinition
		groupRoles []GroupRole
		roles      []RoleDefinition
		composites []RoleComposite
	)
	db = db.WithContext(ctx)
	for _, q := range []struct {
		dest  any
		order string
	}{{&groups, "name"}, {&groupRoles, "group_name, role"}, {&roles, "name"}, {&composites, "role, includes"}} {
		if err := db.Order(q.order).Find(q.dest).Error; err != nil {
			return d, fmt.Errorf("read groups and roles: %w", err)
		}
	}
	byGroup := map[string][]string{}
	for _, gr := range groupRoles {
		byGroup[gr.Group] = append(byGroup[gr.Group], gr.Role)
	}
	byRole := map[string][]string{}
	for _, c := range composites {
		byRole[c.Role] = append(byRole[c.Role], c.Includes)
	}
	for _, g := range groups {
		d.Groups = append(d.Groups, Group{Name: g.Name, Parent: g.Parent, Roles: nonNil(byGroup[g.Name]), Source: g.Source})
	}
	for _, r := range roles {
		d.Roles = append(d.Roles, Role{Name: r.Name, Description: r.Description, Includes: nonNil(byRole[r.Name]), Source: r.Source})
	}
	return d, nil
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// Definitions returns every group and role, by name.
func (s *Service) Definitions(ctx context.Context) (Definitions, error) {
	return readDefinitions(ctx, s.db)
}

// check refuses definitions that name an unknown parent or role, or nest or
// include in a cycle.
func (d Definitions) check() error {
	g := newGraph(d)
	for _, gr := range d.Groups {
		if gr.Parent != "" && !g.groups[gr.Parent] {
			return fmt.Errorf("group %s: parent %s: %w", gr.Name, gr.Parent, ErrNoDefinition)
		}
		for _, r := range gr.Roles {
			if !g.roles[r] {
				return fmt.Errorf("group %s: role %s: %w", gr.Name, r, ErrNoDefinition)
			}
		}
	}
	for _, r := range d.Roles {
		for _, inc := range r.Includes {
			if !g.roles[inc] {
				return fmt.Errorf("role %s: included role %s: %w", r.Name, inc, ErrNoDefinition)
			}
		}
	}
	if c := g.cycle(); c != "" {
		return fmt.Errorf("%w: %s", ErrCycle, c)
	}
	return nil
}

// changeDefinitions applies change to the definitions in a transaction,
// refuses the result if it names an unknown group or role or has a cycle,
// and lets every node know.
func (s *Service) changeDefinitions(ctx context.Context, what string, change func(tx *gorm.DB, d *Definitions) error) error {
	err := s.db.WithContext(ctx).Transaction(func(tx *gorm.DB) error {
		// Raising the version first serialises concurrent changes: two
		// admins cannot each add half of a cycle.
		err := tx.Clauses(clause.OnConflict{
			Columns:   []clause.Column{{Name: "id"}},
			DoUpdates: clause.Assignments(map[string]any{"version": gorm.Expr("definition_versions.version + 1")}),
		}).Create(&DefinitionVersion{ID: 1, Version: 1}).Error
		if err != nil {
			return err
		}
		d, err := readDefinitions(ctx, tx)
		if err != nil {
			return err
		}
		if err := change(tx, &d); err != nil {
			return err
		}
		return d.check()
	})
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	s.defs.Invalidate()
	return nil
}

// SaveGroup creates or replaces a group (its parent and roles), made by an
// administrator unless source says otherwise.
func (s *Service) SaveGroup(ctx context.Context, g Group) error {
	g.Name, g.Parent, g.Roles = strings.TrimSpace(g.Name), strings.TrimSpace(g.Parent), dedupe(g.Roles)
	if g.Name == "" {
		return errors.New("save group: the name is empty")
	}
	return s.changeDefinitions(ctx, "save group "+g.Name, func(tx *gorm.DB, d *Definitions) error {
		d.Groups = slices.DeleteFunc(d.Groups, func(x Group) bool { return x.Name == g.Name })
		d.Groups = append(d.Groups, g)
		return writeGroup(tx, g)
	})
}

func writeGroup(tx *gorm.DB, g Group) error {
	err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&GroupDefinition{Name: g.Name, Parent: g.Parent, Source: g.Source}).Error
	if err != nil {
		return err
	}
	if err := tx.Where("group_name = ?", g.Name).Delete(&GroupRole{}).Error; err != nil {
		return err
	}
	for _, r := range g.Roles {
		if err := tx.Create(&GroupRole{Group: g.Name, Role: r}).Error; err != nil {
			return err
		}
	}
	return nil
}

// SaveRole creates or replaces a role (its description and included roles).
func (s *Service) SaveRole(ctx context.Context, r Role) error {
	r.Name, r.Includes = strings.TrimSpace(r.Name), dedupe(r.Includes)
	if r.Name == "" {
		return errors.New("save role: the name is empty")
	}
	return s.changeDefinitions(ctx, "save role "+r.Name, func(tx *gorm.DB, d *Definitions) error {
		d.Roles = slices.DeleteFunc(d.Roles, func(x Role) bool { return x.Name == r.Name })
		d.Roles = append(d.Roles, r)
		return writeRole(tx, r)
	})
}

func writeRole(tx *gorm.DB, r Role) error {
	err := tx.Clauses(clause.OnConflict{UpdateAll: true}).Create(&RoleDefinition{Name: r.Name, Description: r.Description, Source: r.Source}).Error
	if err != nil {
		return err
	}
	if err := tx.Where("role = ?", r.Name).Delete(&RoleComposite{}).Error; err != nil {
		return err
	}
	for _, inc := range r.Includes {
		if err := tx.Create(&RoleComposite{Role: r.Name, Includes: inc}).Error; err != nil {
			return err
		}
	}
	return nil
}

// DeleteGroup removes a group, its roles and its members' memberships; a
// group with subgroups stays.
func (s *Service) DeleteGroup(ctx context.Context, name string) error {
	return s.changeDefinitions(ctx, "delete group "+name, func(tx *gorm.DB, d *Definitions) error {
		if !slices.ContainsFunc(d.Groups, func(g Group) bool { return g.Name == name }) {
			return ErrNoDefinition
		}
		if slices.ContainsFunc(d.Groups, func(g Group) bool { return g.Parent == name }) {
			return ErrHasSubgroups
		}
		d.Groups = slices.DeleteFunc(d.Groups, func(g Group) bool { return g.Name == name })
		return deleteAll(tx, deletion{&GroupRole{}, "group_name = ?", name}, deletion{&UserGroup{}, "group_name = ?", name},
			deletion{&GroupDefinition{}, "name = ?", name})
	})
}

// DeleteRole removes a role from everywhere: its definition, the groups and
// composites that include it, and the users who hold it.
func (s *Service) DeleteRole(ctx context.Context, name string) error {
	return s.changeDefinitions(ctx, "delete role "+name, func(tx *gorm.DB, d *Definitions) error {
		if !slices.ContainsFunc(d.Roles, func(r Role) bool { return r.Name == name }) {
			return ErrNoDefinition
		}
		d.Roles = slices.DeleteFunc(d.Roles, func(r Role) bool { return r.Name == name })
		for i := range d.Roles {
			d.Roles[i].Includes = slices.DeleteFunc(d.Roles[i].Includes, func(x string) bool { return x == name })
		}
		for i := range d.Groups {
			d.Groups[i].Roles = slices.DeleteFunc(d.Groups[i].Roles, func(x string) bool { return x == name })
		}
		return deleteAll(tx, deletion{&GroupRole{}, "role = ?", name}, deletion{&UserRole{}, "role = ?", name},
			deletion{&RoleComposite{}, "role = ?", name}, deletion{&RoleComposite{}, "includes = ?", name},
			deletion{&RoleDefinition{}, "name = ?", name})
	})
}

// deletion is the rows of model where a column equals a name.
type deletion struct {
	model any
	where string
	name  string
}

func deleteAll(tx *gorm.DB, ds ...deletion) error {
	for _, d := range ds {
		if err := tx.Where(d.where, d.name).Delete(d.model).Error; err != nil {
			return err
		}
	}
	return nil
}

// ApplyConfigDefinitions writes the configuration's groups and roles: they
// replace those written from an earlier configuration; those an
// administrator made stay (one of the same name becomes the configuration's).
// A definition the configuration no longer has goes, with its edges; the
// memberships and grants of its name stay.
func (s *Service) ApplyConfigDefinitions(ctx context.Context, d Definitions) error {
	return s.changeDefinitions(ctx, "apply the configuration's groups and roles", func(tx *gorm.DB, cur *Definitions) error {
		var ds []deletion
		cur.Groups = slices.DeleteFunc(cur.Groups, func(g Group) bool {
			if g.Source == SourceConfig && !slices.ContainsFunc(d.Groups, func(x Group) bool { return x.Name == g.Name }) {
				ds = append(ds, deletion{&GroupRole{}, "group_name = ?", g.Name}, deletion{&GroupDefinition{}, "name = ?", g.Name})
			}
			return g.Source == SourceConfig || slices.ContainsFunc(d.Groups, func(x Group) bool { return x.Name == g.Name })
		})
		cur.Roles = slices.DeleteFunc(cur.Roles, func(r Role) bool {
			if r.Source == SourceConfig && !slices.ContainsFunc(d.Roles, func(x Role) bool { return x.Name == r.Name }) {
				ds = append(ds, deletion{&RoleComposite{}, "role = ?", r.Name}, deletion{&RoleDefinition{}, "name = ?", r.Name})
			}
			return r.Source == SourceConfig || slices.ContainsFunc(d.Roles, func(x Role) bool { return x.Name == r.Name })
		})
		if err := deleteAll(tx, ds...); err != nil {
			return err
		}
		for _, g := range d.Groups {
			g.Source = SourceConfig
			cur.Groups = append(cur.Groups, g)
			if err := writeGroup(tx, g); err != nil {
				return err
			}
		}
		for _, r := range d.Roles {
			r.Source = SourceConfig
			cur.Roles = append(cur.Roles, r)
			if err := writeRole(tx, r); err != nil {
				return err
			}
		}
		return nil
	})
}
