package store

import (
	"testing"
	"time"

	"gorm.io/gorm"
	"gorm.io/gorm/schema"
)

type counts struct{ Added, Removed int }

type modelA struct {
	ID     uint
	Name   string `gorm:"size:64"`
	Counts counts `gorm:"embedded"`
	When   time.Time
}

// modelB is modelA with a changed tag.
type modelB struct {
	ID     uint
	Name   string `gorm:"size:128"`
	Counts counts `gorm:"embedded"`
	When   time.Time
}

type counts2 struct{ Added, Removed, Kept int }

// modelC is modelA with an embedded struct of another field.
type modelC struct {
	ID     uint
	Name   string  `gorm:"size:64"`
	Counts counts2 `gorm:"embedded"`
	When   time.Time
}

// modelD is modelA with another Go type.
type modelD struct {
	ID     uint
	Name   []byte `gorm:"size:64"`
	Counts counts `gorm:"embedded"`
	When   time.Time
}

type base struct{ CreatedAt time.Time }

type modelE struct {
	base
	ID uint
}

type base2 struct{ CreatedAt, UpdatedAt time.Time }

// modelF is modelE with an anonymous struct of another field.
type modelF struct {
	base2
	ID uint
}

// tabled is modelA under its own table name.
type tabled modelA

func (tabled) TableName() string { return "model_as" }

type tabled2 modelA

func (tabled2) TableName() string { return "other" }

// TestFingerprint: a schema's fingerprint changes with every table name,
// column, Go type and tag AutoMigrate reads, embedded structs' included, and
// with the steps; the same schema has the same one.
func TestFingerprint(t *testing.T) {
	db := &gorm.DB{Config: &gorm.Config{NamingStrategy: schema.NamingStrategy{}}}
	fp := func(steps []Step, models ...any) string { return fingerprint(db, models, steps) }
	a := fp(nil, &modelA{})
	if again := fp(nil, &modelA{}); again != a {
		t.Fatal("the same schema has two fingerprints")
	}
	if fp(nil, &tabled{}) != fp(nil, &tabled{}) || fp(nil, &modelE{}) != fp(nil, &modelE{}) {
		t.Fatal("the same schema has two fingerprints")
	}
	for what, pair := range map[string][2]string{
		"a tag":               {a, fp(nil, &modelB{})},
		"an embedded field":   {a, fp(nil, &modelC{})},
		"a Go type":           {a, fp(nil, &modelD{})},
		"an anonymous struct": {fp(nil, &modelE{}), fp(nil, &modelF{})},
		"a TableName":         {fp(nil, &tabled{}), fp(nil, &tabled2{})},
		"another model":       {a, fp(nil, &modelA{}, &modelE{})},
		"a step":              {a, fp([]Step{{Name: "x"}}, &modelA{})},
		"another step":        {fp([]Step{{Name: "x"}}, &modelA{}), fp([]Step{{Name: "y"}}, &modelA{})},
	} {
		if pair[0] == pair[1] {
			t.Errorf("%s changed, the fingerprint did not", what)
		}
	}
}
