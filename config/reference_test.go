package config

import (
	"os"
	"reflect"
	"regexp"
	"strings"
	"testing"
)

// TestEveryKeyDocumented fails when a configuration key is missing from the
// README's YAML examples: the reference cannot drift from the schema.
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
	var walk func(prefix string, typ reflect.Type)
	walk = func(prefix string, typ reflect.Type) {
		for typ.Kind() == reflect.Slice || typ.Kind() == reflect.Pointer || typ.Kind() == reflect.Map {
			typ = typ.Elem()
		}
		if typ.Kind() != reflect.Struct || typ.PkgPath() != reflect.TypeFor[Config]().PkgPath() {
			return
		}
		for i := range typ.NumField() {
			f := typ.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			if !f.IsExported() || name == "" || name == "-" {
				continue
			}
			key := strings.TrimPrefix(prefix+"."+name, ".")
			if !regexp.MustCompile(`(?m)(^|[\s{,-])` + regexp.QuoteMeta(name) + `:`).MatchString(documented) {
				t.Errorf("%s is not in the README's configuration examples", key)
			}
			walk(key, f.Type)
		}
	}
	walk("", reflect.TypeFor[Config]())
}
