package linking

import "time"

// User is a local fedhub account; its ID is the "sub" of every token fedhub mints.
type User struct {
	ID          string `gorm:"primaryKey;size:36;index:idx_users_by_name,priority:2"`
	Username    string `gorm:"size:255;not null"`
	UsernameKey string `gorm:"size:255;not null;uniqueIndex;index:idx_users_by_name,priority:1;index:idx_users_email_key,priority:2"` // usernames.Key: one key per name, however spelled
	// idx_users_by_name and idx_users_email_key give Search the users whose
	// username or email matches in the order it shows them; the first with
	// their IDs, so that a walk by username (with a connector, the longest)
	// reads that index alone and never the table. (An index on an expression
	// gives no such walk, on SQLite nor on PostgreSQL.)
	Email         string `gorm:"size:320;index;index:idx_users_email_key,expression:LOWER(email),priority:1"`
	EmailVerified bool
	Name          string `gorm:"size:255"`
	PasswordHash  string `gorm:"size:255"`
	Disabled      bool
	// DisabledBy is who disabled the user when it was not an administrator:
	// "sync:<connector>" for a directory sync, which re-enables only the users
	// it disabled itself.
	DisabledBy  string `gorm:"size:80;not null;default:''"`
	MFA         string `gorm:"size:16"` // an admin's second-factor policy for this user, replacing the others; "" for none
	LinkVersion int    // grows with every link and unlink: a proof of control is void once it changed
	CreatedAt   time.Time
	UpdatedAt   time.Time

	// Roles and Groups are the effective ones, what tokens carry: the
	// direct ones with the groups' ancestors, the groups' (and their
	// ancestors') roles, and every role a composite includes.
	Roles  []string `gorm:"-"`
	Groups []string `gorm:"-"`
	// DirectRoles and DirectGroups are those granted to the user itself.
	DirectRoles  []string `gorm:"-" json:"-"`
	DirectGroups []string `gorm:"-" json:"-"`
}

// UserRole grants a role (realm_access.roles) to a user.
type UserRole struct {
	UserID string `gorm:"primaryKey;size:36"`
	Role   string `gorm:"primaryKey;size:255"`
	Source string `gorm:"size:64"` // the connector whose mappers granted it; "" when granted locally
}

// UserGroup puts a user in a group (the "groups" claim).
type UserGroup struct {
	UserID string `gorm:"primaryKey;size:36"`
	Group  string `gorm:"primaryKey;size:255;column:group_name"`
	Source string `gorm:"size:64"` // the connector it came from; "" when set locally
}

// Link ties an upstream identity to a user. (Connector, Subject) is unique across
// all users, by index and not only by code: one upstream identity, one user.
type Link struct {
	ID     uint   `gorm:"primaryKey"`
	UserID string `gorm:"size:36;not null;index;index:idx_link_connector_user,priority:2"`
	// idx_link_connector_user answers "is this user linked through C" and
	// "who is linked through C" from the index alone (Search).
	Connector   string `gorm:"size:64;not null;uniqueIndex:idx_link_upstream;index:idx_link_connector_user,priority:1"`
	Subject     string `gorm:"size:512;not null;uniqueIndex:idx_link_upstream;index"`
	Username    string `gorm:"size:255"`
	Email       string `gorm:"size:320"`
	CreatedAt   time.Time
	LastLoginAt *time.Time

	// What fedhub knows of the identity's upstream session, for the re-checks
	// after login (brokers.Rechecker): the connector's data from the last
	// login or re-check (sealed by brokers: it may hold upstream tokens), when
	// the person last authenticated at the upstream, when it last vouched.
	Upstream       []byte `json:"-"`
	UpstreamAuthAt *time.Time
	CheckedAt      *time.Time
}

// LocalConnector is the ID of the connector for local passwords.
const LocalConnector = "local"

// Models are the tables this package owns, for store.Migrate.
func Models() []any {
	return []any{&User{}, &UserRole{}, &UserGroup{}, &Link{},
		&GroupDefinition{}, &GroupRole{}, &RoleDefinition{}, &RoleComposite{}, &DefinitionVersion{}}
}
