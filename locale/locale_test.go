package locale

import (
	"encoding/json"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"maps"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"

	"golang.org/x/text/language"
)

// TestCatalogsComplete: every shipped catalog has every message of the
// source catalog, with the same plural forms and placeholders, and none of
// its own: no page shows an untranslated or unused text, or "<no value>".
func TestCatalogsComplete(t *testing.T) {
	read := func(tag string) map[string]any {
		buf, err := fs.ReadFile(catalogs, "catalogs/"+tag+".json")
		if err != nil {
			t.Fatal(err)
		}
		var m map[string]any
		if err := json.Unmarshal(buf, &m); err != nil {
			t.Fatalf("%s.json: %v", tag, err)
		}
		return m
	}
	src := read(Source.String())
	if len(Shipped()) < 2 {
		t.Fatalf("shipped = %v, want English and one more", Shipped())
	}
	for _, tag := range Shipped()[1:] {
		cat := read(tag)
		for id, text := range src {
			tr, ok := cat[id]
			switch {
			case !ok:
				t.Errorf("%s.json: no %q", tag, id)
			case shape(tr) != shape(text):
				t.Errorf("%s.json: %q is %s, the source's %s", tag, id, shape(tr), shape(text))
			case tr == "":
				t.Errorf("%s.json: %q is empty", tag, id)
			case placeholders(tr) != placeholders(text):
				t.Errorf("%s.json: %q has the placeholders %s, the source %s", tag, id, placeholders(tr), placeholders(text))
			}
		}
		for id := range cat {
			if _, ok := src[id]; !ok {
				t.Errorf("%s.json: %q is not a message of %s.json", tag, id, Source)
			}
		}
	}
}

// placeholders lists the {{.Name}}s of a message's texts.
func placeholders(m any) string {
	b, _ := json.Marshal(m)
	names := regexp.MustCompile(`\{\{\.(\w+)\}\}`).FindAllStringSubmatch(string(b), -1)
	set := map[string]bool{}
	for _, n := range names {
		set[n[1]] = true
	}
	return strings.Join(slices.Sorted(maps.Keys(set)), ",")
}

// shape says whether a message is one text or plural forms (which).
func shape(m any) string {
	if forms, ok := m.(map[string]any); ok {
		return "plural " + strings.Join(slices.Sorted(maps.Keys(forms)), " ")
	}
	return "text"
}

func TestChoose(t *testing.T) {
	c, err := Load("", "")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		what, ui, accept, want string
	}{
		{"nothing asked: the default", "", "", "en"},
		{"ui_locales wins over Accept-Language", "de", "en", "de"},
		{"ui_locales in order, the first served one", "fr de-AT en", "en", "de"},
		{"ui_locales none served: Accept-Language", "fr sv", "de", "de"},
		{"a region is served by its language", "", "de-CH", "de"},
		{"Accept-Language by q-value, not by order", "", "en;q=0.5, de;q=0.9", "de"},
		{"Accept-Language skips what is not served", "", "fr, de;q=0.3, en;q=0.2", "de"},
		{"q=0 means not wanted", "", "de;q=0, en;q=0.1", "en"},
		{"unknown languages: the default", "xx", "fr, it", "en"},
		{"malformed values say nothing", "!!", "de;q=abc", "en"},
	}
	for _, tc := range cases {
		if got := c.Choose(tc.ui, tc.accept).String(); got != tc.want {
			t.Errorf("%s: Choose(%q, %q) = %s, want %s", tc.what, tc.ui, tc.accept, got, tc.want)
		}
	}

	de, err := Load("", "de")
	if err != nil {
		t.Fatal(err)
	}
	if got := de.Choose("", "fr").String(); got != "de" {
		t.Errorf("with default_locale de, an unknown language gives %s", got)
	}
	if _, err := Load("", "fr"); err == nil {
		t.Error("a default locale without a catalog loaded")
	}
}

// TestCatalogsOnFirstUse: the built-in catalogs, parsed on first use, have
// the languages Load named from their files, and translators asking for
// them at the same time all get them.
func TestCatalogsOnFirstUse(t *testing.T) {
	c, err := Load("", "")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	for range 4 {
		for _, tag := range c.Tags() {
			wg.Go(func() {
				if got, err := c.For(tag).Text("login.submit"); err != nil || got == "" {
					t.Errorf("%s: %q, %v", tag, got, err)
				}
			})
		}
	}
	wg.Wait()
	m, err := c.messages()
	if err != nil {
		t.Fatal(err)
	}
	parsed := m.bundle.LanguageTags()
	if len(parsed) != len(c.Tags()) || slices.ContainsFunc(c.Tags(), func(t language.Tag) bool { return !slices.Contains(parsed, t) }) {
		t.Errorf("languages from the file names %v, parsed %v", c.Tags(), parsed)
	}
}

// TestThemeCatalogs: a theme's catalog rewords a built-in language message by
// message and adds a language, whose missing messages are in English.
func TestThemeCatalogs(t *testing.T) {
	dir := t.TempDir()
	if err := os.MkdirAll(filepath.Join(dir, "i18n"), 0o755); err != nil {
		t.Fatal(err)
	}
	for name, body := range map[string]string{
		"de.json": `{"login.heading": "Willkommen bei Example"}`,
		"fr.json": `{"login.heading": "Connexion"}`,
	} {
		if err := os.WriteFile(filepath.Join(dir, "i18n", name), []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	c, err := Load(dir, "fr")
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		lang, id, want string
	}{
		{"de", "login.heading", "Willkommen bei Example"},
		{"de", "login.submit", "Anmelden"},
		{"fr", "login.heading", "Connexion"},
		{"fr", "login.submit", "Sign in"},
		{"en", "login.heading", "Sign in"},
	}
	for _, tc := range cases {
		got, err := c.For(c.Choose(tc.lang, "")).Text(tc.id)
		if err != nil || got != tc.want {
			t.Errorf("%s %s = %q, %v; want %q", tc.lang, tc.id, got, err, tc.want)
		}
	}
	if got := c.Choose("", "").String(); got != "fr" {
		t.Errorf("default = %s, want the theme's fr", got)
	}
	bad := t.TempDir()
	if err := os.MkdirAll(filepath.Join(bad, "i18n"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(bad, "i18n", "de.json"), []byte(`{"login.heading": `), 0o644); err != nil {
		t.Fatal(err)
	}
	if _, err := Load(bad, ""); err == nil {
		t.Error("a theme catalog that does not parse loaded")
	}
}

func TestText(t *testing.T) {
	c, err := Load("", "")
	if err != nil {
		t.Fatal(err)
	}
	de := c.For(c.Choose("de", ""))
	cases := []struct {
		id   string
		args []any
		want string
	}{
		{"account.codes_left", []any{"Count", 1}, "Noch 1 Wiederherstellungscode übrig."},
		{"account.codes_left", []any{"Count", 7}, "Noch 7 Wiederherstellungscodes übrig."},
		{"link.title", []any{"Connector", "Corporate AD"}, "Corporate AD verknüpfen"},
	}
	for _, tc := range cases {
		if got, err := de.Text(tc.id, tc.args...); err != nil || got != tc.want {
			t.Errorf("%s %v = %q, %v; want %q", tc.id, tc.args, got, err, tc.want)
		}
	}
	if got, err := de.HTML("account.signed_in", "Username", "<b>x</b>"); err != nil || got != "Angemeldet als <strong>&lt;b&gt;x&lt;/b&gt;</strong>" {
		t.Errorf("HTML did not escape the value: %q, %v", got, err)
	}
	if _, err := de.Text("no.such.message"); err == nil {
		t.Error("an unknown message id gave no error")
	}
}

// pageSentences are the packages whose Go code writes sentences onto the
// person-facing pages (error pages, form errors, first-login reasons).
var pageSentences = []string{"../brokers", "../firstlogin", "../issuer", "../login", "../usernames", "../cmd/fedhub/app.go"}

// notOnPages are sentences of those packages that no page shows: the
// password grant's error descriptions (JSON for programs).
var notOnPages = map[string]bool{
	"Sign in through the login page once to set up your account.":                                                         true,
	"This account signs in with a second factor, which the password grant cannot carry. Use the authorization code flow.": true,
}

// TestSentencesTranslated: every whole sentence Go code writes for a page
// (a string literal that starts with a capital and ends with a full stop, or
// an error page's Title) has a translation in every shipped language's
// texts catalog, and each translated sentence is still in the code.
func TestSentencesTranslated(t *testing.T) {
	sentence := regexp.MustCompile(`^[A-Z][^%]* [^%]*\.$`)
	// A sentence with values is written with fmt.Sprintf and translated by
	// an ID naming them; both come down to the same shape.
	valuedSentence, verb := regexp.MustCompile(`^([A-Z]|%[sv]).* .*\.$`), regexp.MustCompile(`%[a-z]`)
	want, literals := map[string]string{}, map[string]bool{}
	wantShapes := map[string]string{} // the Sprintf sentences by shape: where
	fset := token.NewFileSet()
	for _, root := range pageSentences {
		err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
			if err != nil || d.IsDir() || !strings.HasSuffix(p, ".go") || strings.HasSuffix(p, "_test.go") {
				return err
			}
			f, err := parser.ParseFile(fset, p, nil, 0)
			if err != nil {
				return err
			}
			ast.Inspect(f, func(n ast.Node) bool {
				if call, ok := n.(*ast.CallExpr); ok && len(call.Args) > 0 {
					fn, _ := call.Fun.(*ast.SelectorExpr)
					l, _ := call.Args[0].(*ast.BasicLit)
					if fn != nil && fn.Sel.Name == "Sprintf" && l != nil && l.Kind == token.STRING {
						format, _ := strconv.Unquote(l.Value)
						if valuedSentence.MatchString(format) && strings.Contains(format, "%") {
							shape := verb.ReplaceAllString(format, "\x00")
							wantShapes[shape] = fset.Position(l.Pos()).String()
						}
					}
				}
				title := false
				if kv, ok := n.(*ast.KeyValueExpr); ok {
					k, _ := kv.Key.(*ast.Ident)
					title, n = k != nil && k.Name == "Title", kv.Value
				}
				if l, ok := n.(*ast.BasicLit); ok && l.Kind == token.STRING {
					s, _ := strconv.Unquote(l.Value)
					literals[s] = true
					if (title || sentence.MatchString(s)) && !notOnPages[s] {
						want[s] = fset.Position(l.Pos()).String()
					}
				}
				return true
			})
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	if len(want) < 100 {
		t.Fatalf("only %d sentences found: is the scan still right?", len(want))
	}
	for _, tag := range Shipped()[1:] {
		buf, err := fs.ReadFile(catalogs, "catalogs/texts/"+tag+".json")
		if err != nil {
			t.Fatal(err)
		}
		var texts map[string]string
		if err := json.Unmarshal(buf, &texts); err != nil {
			t.Fatal(err)
		}
		for s, at := range want {
			if texts[s] == "" {
				t.Errorf("texts/%s.json has no translation of %q (%s)", tag, s, at)
			}
		}
		shapes := map[string]bool{}
		for s := range texts {
			if shape := placeholder.ReplaceAllString(s, "\x00"); shape != s {
				shapes[shape] = true
				if wantShapes[shape] == "" {
					t.Errorf("texts/%s.json translates %q, which the code no longer writes with fmt.Sprintf", tag, s)
				}
			} else if !literals[s] {
				t.Errorf("texts/%s.json translates %q, which the code no longer says", tag, s)
			}
		}
		for shape, at := range wantShapes {
			if !shapes[shape] {
				t.Errorf("texts/%s.json has no translation of %q (%s), whose values it names as {{.Name}}", tag, strings.ReplaceAll(shape, "\x00", "%s"), at)
			}
		}
	}
}

// TestKnownWithValues: a sentence Go code wrote with values is translated by
// the ID that names them, whatever the values hold; in English, and for
// words the catalogs do not have, it stays as written.
func TestKnownWithValues(t *testing.T) {
	c, err := Load("", "")
	if err != nil {
		t.Fatal(err)
	}
	de, en := c.For(language.German), c.For(language.English)
	for _, tc := range []struct{ written, want string }{
		{"Too many failed sign-in attempts. Try again in 31s.", "Zu viele fehlgeschlagene Anmeldeversuche. Versuchen Sie es in 31s erneut."},
		{"Too many wrong codes. Try again in 5s.", "Zu viele falsche Codes. Versuchen Sie es in 5s erneut."},
		{"Too many wrong codes from your network. Try again in 1m0s.", "Zu viele falsche Codes aus Ihrem Netzwerk. Versuchen Sie es in 1m0s erneut."},
		{"Corp (AD) * could not sign you in (error invalid_request). Please try again or choose another way to sign in.",
			"Corp (AD) * konnte Sie nicht anmelden (Fehler invalid_request). Bitte versuchen Sie es erneut oder wählen Sie einen anderen Anmeldeweg."},
		{"Google did not ask for your credentials again, which this sign-in requires. Please try again; if it keeps happening, sign out of Google first.",
			"Google hat nicht erneut nach Ihren Anmeldedaten gefragt, was diese Anmeldung verlangt. Bitte versuchen Sie es erneut; wenn es wieder passiert, melden Sie sich zuerst bei Google ab."},
		{"Too many wrong codes. Try again later.", "Too many wrong codes. Try again later."}, // not a sentence the catalogs have
	} {
		if got := de.Known(tc.written); got != tc.want {
			t.Errorf("de: Known(%q) = %q, want %q", tc.written, got, tc.want)
		}
		if got := en.Known(tc.written); got != tc.written {
			t.Errorf("en: Known(%q) = %q, want it as written", tc.written, got)
		}
	}
}
