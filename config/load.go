package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"reflect"
	"regexp"
	"slices"
	"strings"
	"time"

	"gopkg.in/yaml.v3"
)

// Errors lists every problem found in a file, each naming its key and line.
type Errors []error

func (e Errors) Error() string {
	msgs := make([]string, len(e))
	for i, err := range e {
		msgs[i] = err.Error()
	}
	return strings.Join(msgs, "\n")
}

// KeyError is one problem at one key.
type KeyError struct {
	Key  string
	Line int
	Msg  string
}

// Add records a problem at key; a connector's Validate names keys relative
// to its block.
func (e *Errors) Add(key, format string, args ...any) {
	*e = append(*e, &KeyError{Key: key, Msg: fmt.Sprintf(format, args...)})
}

// Err is e, or nil when it lists no problem.
func (e Errors) Err() error {
	if len(e) == 0 {
		return nil
	}
	return e
}

func (e *KeyError) Error() string {
	if e.Line > 0 {
		return fmt.Sprintf("line %d: %s: %s", e.Line, e.Key, e.Msg)
	}
	return fmt.Sprintf("%s: %s", e.Key, e.Msg)
}

// LoadFile reads, expands, decodes and validates a configuration file; types
// are the connector types it may configure.
func LoadFile(path string, types ConnectorTypes) (*Config, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	cfg, err := Parse(data, os.LookupEnv, types)
	if err != nil {
		return nil, fmt.Errorf("%s:\n%w", path, err)
	}
	return cfg, nil
}

// Parse decodes and validates a configuration. lookup resolves ${ENV}
// references; types are the connector types it may configure, each
// connector's block decoded into its type's and validated by it.
func Parse(data []byte, lookup func(string) (string, bool), types ConnectorTypes) (*Config, error) {
	var root yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(data))
	if err := dec.Decode(&root); err != nil && !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("not valid YAML: %w", err)
	}
	cfg := Defaults()
	cfg.lines, cfg.connectorTypes = map[string]int{}, slices.Sorted(maps.Keys(types))
	if root.Kind == 0 || (root.Content[0].Kind == yaml.ScalarNode && root.Content[0].Tag == "!!null") { // an empty file
		return &cfg, cfg.Validate()
	}
	doc := root.Content[0]
	var errs Errors
	w := walker{lookup: lookup, lines: cfg.lines, types: types}
	w.walk(doc, reflect.TypeOf(cfg), "")
	errs = append(errs, w.errs...)
	if len(errs) > 0 {
		return nil, errs
	}
	if err := doc.Decode(&cfg); err != nil {
		return nil, typeErrors(err)
	}
	if err := decodeBlocks(doc, cfg.Connectors, types); err != nil {
		return nil, typeErrors(err)
	}
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &cfg, nil
}

func typeErrors(err error) error {
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs Errors
		for _, msg := range te.Errors {
			errs = append(errs, errors.New(msg))
		}
		return errs
	}
	return err
}

// decodeBlocks decodes the block of each connector's type into the type's
// own configuration; the blocks of other types are kept by name, for
// Validate to refuse. The walker has checked their keys and values.
func decodeBlocks(doc *yaml.Node, connectors []Connector, types ConnectorTypes) error {
	var list *yaml.Node
	for i := 0; i+1 < len(doc.Content); i += 2 {
		if doc.Content[i].Value == "connectors" {
			list = doc.Content[i+1]
		}
	}
	for i := range connectors {
		c := &connectors[i]
		n := list.Content[i]
		for j := 0; j+1 < len(n.Content); j += 2 {
			name := n.Content[j].Value
			newBlock, ok := types[name]
			switch {
			case !ok:
			case name != c.Type:
				c.misplaced = append(c.misplaced, name)
			default:
				c.Settings = newBlock()
				if err := n.Content[j+1].Decode(c.Settings); err != nil {
					return fmt.Errorf("connectors[%d].%s: %w", i, name, err)
				}
			}
		}
	}
	return nil
}

// connectorType is the struct whose mapping also holds its type's block.
var connectorType = reflect.TypeFor[Connector]()

// scalarForm is implemented by mappings that may also be written as one value.
var scalarForm = reflect.TypeFor[interface{ acceptsScalar() }]()

var envRef = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)(:-([^}]*))?\}`)

// walker checks every key against the schema, records where each key is, and
// expands ${ENV} references in scalar values (so that line numbers survive).
type walker struct {
	lookup func(string) (string, bool)
	lines  map[string]int
	types  ConnectorTypes
	errs   Errors
}

func (w *walker) fail(key string, line int, format string, args ...any) {
	if key == "" { // the document itself
		key = "(top level)"
	}
	w.errs = append(w.errs, &KeyError{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
}

func (w *walker) walk(n *yaml.Node, t reflect.Type, path string) {
	w.lines[path] = n.Line
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode {
		w.fail(path, n.Line, "YAML aliases are not supported")
		return
	}
	switch t.Kind() {
	case reflect.Interface:
		return // free-form (a client's JWK Set): its own reader checks it
	case reflect.Struct:
		if t == reflect.TypeOf(time.Duration(0)) {
			break
		}
		if n.Kind == yaml.ScalarNode && reflect.PointerTo(t).Implements(scalarForm) {
			break // its short form, checked as a single value below
		}
		if n.Kind != yaml.MappingNode {
			w.fail(path, n.Line, "expected a mapping of keys")
			return
		}
		fields := yamlFields(t)
		seen := map[string]bool{}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			if seen[k.Value] {
				w.fail(key, k.Line, "key appears twice")
				continue
			}
			seen[k.Value] = true
			f, ok := fields[k.Value]
			switch newBlock, block := w.types[k.Value]; {
			case ok:
				w.walk(v, f.Type, key)
			case block && t == connectorType:
				w.walk(v, reflect.TypeOf(newBlock()), key)
			default:
				w.fail(key, k.Line, "unknown key")
			}
		}
		return
	case reflect.Map:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.MappingNode {
			w.fail(path, n.Line, "expected a mapping of keys")
			return
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			w.walk(n.Content[i+1], t.Elem(), join(path, n.Content[i].Value))
		}
		return
	case reflect.Slice:
		if n.Kind == yaml.ScalarNode && n.Tag == "!!null" {
			return
		}
		if n.Kind != yaml.SequenceNode {
			w.fail(path, n.Line, "expected a list")
			return
		}
		for i, item := range n.Content {
			w.walk(item, t.Elem(), fmt.Sprintf("%s[%d]", path, i))
		}
		return
	}
	if n.Kind != yaml.ScalarNode {
		w.fail(path, n.Line, "expected a single value")
		return
	}
	failures := len(w.errs)
	w.expand(n, path, t)
	if len(w.errs) == failures && n.Decode(reflect.New(t).Interface()) != nil {
		w.fail(path, n.Line, "cannot read %q as %s", n.Value, typeName(t))
	}
}

func (w *walker) expand(n *yaml.Node, path string, t reflect.Type) {
	if !strings.Contains(n.Value, "${") {
		return
	}
	whole := isEnvRef(n.Value)
	n.Value = envRef.ReplaceAllStringFunc(n.Value, func(ref string) string {
		m := envRef.FindStringSubmatch(ref)
		if v, ok := w.lookup(m[1]); ok && (v != "" || m[2] == "") {
			if whole {
				w.lines[path+"#env"] = n.Line // the value really came from the environment
			}
			return v
		}
		if m[2] != "" { // ${VAR:-default}: unset or empty, as in the shell
			return m[3]
		}
		w.fail(path, n.Line, "environment variable %s is not set", m[1])
		return ""
	})
	// An expanded value is data, not YAML: a string field keeps it as text;
	// other fields let numbers, booleans and durations decode as their type.
	if n.Style != 0 || t.Kind() == reflect.String {
		n.Tag = "!!str"
		return
	}
	n.Tag = ""
}

// typeName says what a field expects, in an error message.
func typeName(t reflect.Type) string {
	switch {
	case t == reflect.TypeOf(time.Duration(0)):
		return "a duration such as 10m or 24h"
	case t.Kind() == reflect.Bool:
		return "true or false"
	case t.Kind() == reflect.Int:
		return "a whole number"
	}
	return "text"
}

func isEnvRef(s string) bool {
	loc := envRef.FindStringIndex(s)
	return loc != nil && loc[0] == 0 && loc[1] == len(s)
}

func yamlFields(t reflect.Type) map[string]reflect.StructField {
	out := map[string]reflect.StructField{}
	for i := range t.NumField() {
		f := t.Field(i)
		name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
		if name != "" && name != "-" {
			out[name] = f
		}
	}
	return out
}

func join(path, key string) string {
	if key == "" { // an empty YAML key is still named
		key = `""`
	}
	if path == "" {
		return key
	}
	return path + "." + key
}
