package config_test

import (
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"testing"

	"github.com/fedhub/fedhub/config"
	"github.com/fedhub/fedhub/connectors"
)

// TestEveryKeyDocumented fails when a configuration key is missing from the
// README's YAML examples: the reference cannot drift from the schema. The
// connectors' blocks are those of the registered types, so a new connector
// type's keys must be documented too.
func TestEveryKeyDocumented(t *testing.T) {
	raw, err := os.ReadFile("../README.md")
	if err != nil {
		t.Fatal(err)
	}
	var yaml strings.Builder
	for _, m := range regexp.MustCompile("(?s)```yaml\\n(.*?)```").FindAllStringSubmatch(string(raw), -1) {
		yaml.WriteString(m[1])
	}
	documented := yaml.String()
	check := func(key, name string) {
		if !regexp.MustCompile(`(?m)(^|[\s{,-])` + regexp.QuoteMeta(name) + `:`).MatchString(documented) {
			t.Errorf("%s is not in the README's configuration examples", key)
		}
	}
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() == "time" {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := strings.TrimPrefix(prefix+"."+name, ".")
			check(key, name)
			walk(key, f.Type)
		}
	}
	walk("", reflect.TypeFor[config.Config]())
	types := connectors.Types()
	for _, name := range slices.Sorted(maps.Keys(types)) {
		key := "connectors[]." + name
		check(key, name)
		walk(key, reflect.TypeOf(types[name]()))
	}
}
