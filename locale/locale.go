package locale

import (
	"embed"
	"encoding/json"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"sync"

	"github.com/nicksnyder/go-i18n/v2/i18n"
	"golang.org/x/text/language"
)

// catalogs/TAG.json are the pages' messages by ID; catalogs/texts/TAG.json
// translate the sentences Go code puts on pages, with the English sentence
// as the ID (see Localizer.Known).
//
//go:embed catalogs
var catalogs embed.FS

// Source is the language the pages are written in: every other catalog
// translates its messages, and a message missing from one falls back to it.
var Source = language.English

// Shipped lists the languages of the built-in catalogs, the source first.
func Shipped() []string {
	names, _ := fs.Glob(catalogs, "catalogs/*.json") // the pattern is valid
	tags := []string{Source.String()}
	for _, n := range names {
		if tag := strings.TrimSuffix(path.Base(n), ".json"); tag != Source.String() {
			tags = append(tags, tag)
		}
	}
	return tags
}

// Catalogs are the messages of every language pages can be shown in.
type Catalogs struct {
	tags    []language.Tag // the default first: what the matcher falls back to
	matcher language.Matcher
	// messages are the parsed catalogs; the built-in ones are parsed on
	// first use, as a server may show no page for a long time.
	messages func() (*messages, error)
}

// messages are the parsed catalogs.
type messages struct {
	bundle *i18n.Bundle
	valued []valued
}

// Load reads the built-in catalogs and then, when themeDir is set, the
// theme's i18n/TAG.json files, whose messages replace the built-in ones of
// that language or add a language. defaultTag must be one of them ("" is the
// source language). A theme's catalogs are parsed now, so that one that
// does not parse fails here; the built-in ones (which this package's tests
// parse) on first use.
func Load(themeDir, defaultTag string) (*Catalogs, error) {
	themed := ""
	if themeDir != "" {
		if dir := filepath.Join(themeDir, "i18n"); dirExists(dir) {
			themed = dir
		}
	}
	var langs []language.Tag
	c := &Catalogs{messages: sync.OnceValues(func() (*messages, error) { return parse(themed) })}
	if themed != "" {
		m, err := c.messages()
		if err != nil {
			return nil, err
		}
		langs = m.bundle.LanguageTags()
	} else {
		langs = builtInTags()
	}
	def := Source
	if defaultTag != "" {
		t, err := language.Parse(defaultTag)
		if err != nil {
			return nil, fmt.Errorf("default locale %q: %w", defaultTag, err)
		}
		def = t
	}
	tags := []language.Tag{def}
	found := false
	for _, t := range langs {
		if t == def {
			found = true
			continue
		}
		tags = append(tags, t)
	}
	if !found {
		return nil, fmt.Errorf("default locale %q has no catalog", defaultTag)
	}
	sort.Slice(tags[1:], func(i, j int) bool { return tags[1+i].String() < tags[1+j].String() })
	c.tags, c.matcher = tags, language.NewMatcher(tags)
	return c, nil
}

func dirExists(dir string) bool {
	_, err := os.Stat(dir)
	return err == nil
}

// catalogDirs are the folders of the built-in catalogs.
var catalogDirs = []string{"catalogs", "catalogs/texts"}

// builtInTags are the languages of the built-in catalogs, named by their
// files as the bundle names them when it parses them (and the source).
func builtInTags() []language.Tag {
	tags := []language.Tag{Source}
	for _, dir := range catalogDirs {
		names, _ := fs.Glob(catalogs, path.Join(dir, "*.json")) // the pattern is valid
		for _, n := range names {
			if t := language.Make(strings.TrimSuffix(path.Base(n), ".json")); !slices.Contains(tags, t) {
				tags = append(tags, t)
			}
		}
	}
	return tags
}

// parse parses the built-in catalogs and then, if set, those in themeI18n
// (a theme's i18n folder).
func parse(themeI18n string) (*messages, error) {
	b := i18n.NewBundle(Source)
	b.RegisterUnmarshalFunc("json", json.Unmarshal)
	var ids []string // every message ID, for the sentences with values
	for _, dir := range catalogDirs {
		found, err := parseDir(b, catalogs, dir)
		if err != nil {
			return nil, err
		}
		ids = append(ids, found...)
	}
	if themeI18n != "" {
		found, err := parseDir(b, os.DirFS(themeI18n), ".")
		if err != nil {
			return nil, fmt.Errorf("theme: %w", err)
		}
		ids = append(ids, found...)
	}
	return &messages{bundle: b, valued: valuedSentences(ids)}, nil
}

// parseDir adds the catalogs in dir to b and returns their message IDs.
func parseDir(b *i18n.Bundle, fsys fs.FS, dir string) ([]string, error) {
	names, err := fs.Glob(fsys, path.Join(dir, "*.json"))
	if err != nil {
		return nil, err
	}
	var ids []string
	for _, n := range names {
		buf, err := fs.ReadFile(fsys, n)
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", n, err)
		}
		mf, err := b.ParseMessageFileBytes(buf, path.Base(n))
		if err != nil {
			return nil, fmt.Errorf("catalog %s: %w", n, err)
		}
		for _, m := range mf.Messages {
			ids = append(ids, m.ID)
		}
	}
	return ids, nil
}

// valued is a sentence Go code writes with values (fmt.Sprintf, in the
// source language), whose message ID names them as the translations do:
// "Too many wrong codes. Try again in {{.Wait}}.". Known recognises the
// written sentence by the ID's words around the values.
type valued struct {
	id    string
	shape *regexp.Regexp // the ID with each value as a group
	names []string       // the values' names, in the ID's order
}

// placeholder is a value in a message ID: {{.Name}}.
var placeholder = regexp.MustCompile(`\{\{\s*\.(\w+)\s*\}\}`)

// valuedSentences are the IDs with values among ids, each once, the longest
// first: the more words around its values, the surer a match.
func valuedSentences(ids []string) []valued {
	var out []valued
	for _, id := range ids {
		places := placeholder.FindAllStringSubmatchIndex(id, -1)
		if places == nil || slices.ContainsFunc(out, func(v valued) bool { return v.id == id }) {
			continue
		}
		v := valued{id: id}
		shape, last := "^", 0
		for _, p := range places {
			shape += regexp.QuoteMeta(id[last:p[0]]) + "(.+?)"
			v.names = append(v.names, id[p[2]:p[3]])
			last = p[1]
		}
		v.shape = regexp.MustCompile(shape + regexp.QuoteMeta(id[last:]) + "$")
		out = append(out, v)
	}
	sort.SliceStable(out, func(i, j int) bool { return len(out[i].id) > len(out[j].id) })
	return out
}

// Tags lists the languages, the default first.
func (c *Catalogs) Tags() []language.Tag { return c.tags }

// Choose picks the language of a page: the first of uiLocales (the OIDC
// parameter: tags separated by spaces, most wanted first) that a catalog
// serves, else the best of acceptLanguage (the header, with q-values) that
// one serves, else the default.
func (c *Catalogs) Choose(uiLocales, acceptLanguage string) language.Tag {
	for _, s := range strings.Fields(uiLocales) {
		if t, err := language.Parse(s); err == nil {
			if m, ok := c.match(t); ok {
				return m
			}
		}
	}
	wanted, q, _ := language.ParseAcceptLanguage(acceptLanguage) // a malformed header says nothing
	for i, t := range wanted {
		if q[i] <= 0 {
			continue
		}
		if m, ok := c.match(t); ok {
			return m
		}
	}
	return c.tags[0]
}

// match finds the catalog that serves t (de-CH is served by de), if any.
func (c *Catalogs) match(t language.Tag) (language.Tag, bool) {
	_, i, conf := c.matcher.Match(t)
	return c.tags[i], conf >= language.High
}

// Localizer translates into one language.
type Localizer struct {
	tag language.Tag
	in  func() (*localized, error)
}

// localized are the catalogs as a Localizer reads them.
type localized struct {
	l      *i18n.Localizer
	valued []valued
}

// For returns the translator into tag.
func (c *Catalogs) For(tag language.Tag) Localizer {
	return Localizer{tag: tag, in: sync.OnceValues(func() (*localized, error) {
		m, err := c.messages()
		if err != nil {
			return nil, err
		}
		return &localized{l: i18n.NewLocalizer(m.bundle, tag.String()), valued: m.valued}, nil
	})}
}

// Lang is the BCP 47 tag, for <html lang>.
func (l Localizer) Lang() string { return l.tag.String() }

// Text translates the message id; args are name, value pairs for its
// placeholders ({{.Name}}), and a "Count" chooses the plural form.
func (l Localizer) Text(id string, args ...any) (string, error) {
	if len(args)%2 != 0 {
		return "", fmt.Errorf("message %s: arguments must be name, value pairs", id)
	}
	data := map[string]any{}
	cfg := &i18n.LocalizeConfig{MessageID: id, TemplateData: data}
	for i := 0; i < len(args); i += 2 {
		name, ok := args[i].(string)
		if !ok {
			return "", fmt.Errorf("message %s: argument %d is not a name", id, i)
		}
		data[name] = args[i+1]
		if name == "Count" {
			cfg.PluralCount = args[i+1]
		}
	}
	in, err := l.in()
	if err != nil {
		return "", fmt.Errorf("message %s: %w", id, err)
	}
	s, err := in.l.Localize(cfg)
	var missing *i18n.MessageNotFoundErr
	if err != nil && !(errors.As(err, &missing) && s != "") { // not translated: the source text
		return "", fmt.Errorf("message %s: %w", id, err)
	}
	return s, nil
}

// HTML translates a message that carries markup (<strong>…</strong>): the
// catalogs are trusted like the theme's pages, the values are escaped.
func (l Localizer) HTML(id string, args ...any) (template.HTML, error) {
	esc := make([]any, len(args))
	for i, a := range args {
		esc[i] = a
		if i%2 == 1 {
			esc[i] = template.HTMLEscapeString(fmt.Sprint(a))
		}
	}
	s, err := l.Text(id, esc...)
	return template.HTML(s), err // #nosec G203 -- trusted catalog text, escaped values
}

// Known translates a sentence that Go code wrote in the source language (an
// error page's title, a form's error) when the catalogs have it, with the
// sentence itself as the message ID, or with its values named ("Try again
// in {{.Wait}}." for "Try again in 5s."); any other text is shown as it is.
func (l Localizer) Known(text string) string {
	if text == "" {
		return ""
	}
	in, err := l.in()
	if err != nil { // catalogs that do not parse: as written
		return text
	}
	if s, err := in.l.Localize(&i18n.LocalizeConfig{MessageID: text}); err == nil && s != "" {
		return s
	}
	for _, v := range in.valued {
		values := v.shape.FindStringSubmatch(text)
		if values == nil {
			continue
		}
		data := map[string]any{}
		for i, name := range v.names {
			data[name] = values[i+1]
		}
		if s, err := in.l.Localize(&i18n.LocalizeConfig{MessageID: v.id, TemplateData: data}); err == nil && s != "" {
			return s
		}
	}
	return text
}
