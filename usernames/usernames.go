package usernames

import (
	"errors"
	"slices"
	"strings"
	"sync"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/secure/precis"
)

// MaxBytes bounds a username: its key and its display form are at most this
// long in UTF-8 (the database columns hold 255 characters).
const MaxBytes = 255

// maxInput bounds what is normalised at all: a longer input cannot shrink
// to MaxBytes (width folding and NFC shorten little), and refusing it first
// keeps the work per request small.
const maxInput = 4 * MaxBytes

// ErrInvalid is what every refusal of this package is (errors.Is).
var ErrInvalid = errors.New("invalid username")

// Error says why a username cannot be used, in a sentence meant for the
// person who typed it.
type Error struct{ Reason string }

func (e *Error) Error() string { return e.Reason }

// Is makes every *Error an ErrInvalid.
func (e *Error) Is(target error) bool { return target == ErrInvalid }

// The refusals.
var (
	errEmpty     = &Error{"Choose a username."}
	errTooLong   = &Error{"A username can be at most 255 bytes long (fewer characters outside ASCII)."}
	errInvisible = &Error{"A username cannot contain invisible or control characters (such as a zero-width space)."}
	errClass     = &Error{"A username can contain letters, digits, punctuation and single spaces, but no symbols or emoji."}
	errBidi      = &Error{"A username cannot mix right-to-left and left-to-right letters in one part."}
	errPhonetic  = &Error{"A username cannot contain phonetic letters (such as ɑ or ᴀ), which look like ordinary ones."}
)

// Key returns the form of s under which usernames are stored, looked up and
// counted: surrounding white space removed, inner runs of white space one
// space, and each space-separated part mapped by PRECIS UsernameCaseMapped
// (full-width letters to ASCII, lower case, NFC). It refuses what cannot be a
// username: nothing, more than MaxBytes, control and invisible characters,
// symbols.
func Key(s string) (string, error) {
	return normalise(s, precis.UsernameCaseMapped)
}

// Display returns the form of s that a username is kept and shown in: what
// Key does, but with its case kept.
func Display(s string) (string, error) {
	return normalise(s, precis.UsernameCasePreserved)
}

// New checks s as a username about to be created and returns its display
// form and its key. Beyond what Key refuses, it refuses letters that let the
// name pass for another one: letters of more than one script (other than
// the combinations Japanese, Chinese and Korean names use), a Cyrillic or
// Greek name spelled only with letters that look Latin, and phonetic letters.
func New(s string) (display, key string, err error) {
	if display, err = Display(s); err != nil {
		return "", "", err
	}
	if key, err = Key(s); err != nil {
		return "", "", err
	}
	if err := confusable(display); err != nil {
		return "", "", err
	}
	return display, key, nil
}

func normalise(s string, profile *precis.Profile) (string, error) {
	if len(s) > maxInput {
		return "", errTooLong
	}
	if !utf8.ValidString(s) {
		return "", errInvisible
	}
	parts := strings.FieldsFunc(s, unicode.IsSpace) // white space includes U+3000 and the no-break spaces
	if len(parts) == 0 {
		return "", errEmpty
	}
	for i, p := range parts {
		out, err := profile.String(p)
		if err != nil {
			return "", classify(p)
		}
		parts[i] = out
	}
	out := strings.Join(parts, " ")
	if len(out) > MaxBytes {
		return "", errTooLong
	}
	return out, nil
}

// classify says why PRECIS refused part.
func classify(part string) error {
	if strings.ContainsFunc(part, invisible) {
		return errInvisible
	}
	if strings.ContainsFunc(part, func(r rune) bool { return unicode.IsSymbol(r) || unicode.In(r, unicode.Co, unicode.Cs) }) {
		return errClass
	}
	if strings.ContainsFunc(part, func(r rune) bool {
		return unicode.In(r, unicode.Hebrew, unicode.Arabic, unicode.Syriac, unicode.Thaana, unicode.Nko)
	}) {
		return errBidi
	}
	return errClass
}

// invisible reports a character that shows nothing, or nothing of its own:
// controls, format characters (zero-width space and joiners, direction
// marks, soft hyphen), variation selectors, fillers and other default
// ignorables, and blank characters that are not white space.
func invisible(r rune) bool {
	return unicode.In(r, unicode.Cc, unicode.Cf, unicode.Other_Default_Ignorable_Code_Point, unicode.Variation_Selector) ||
		r == '\u2800' || r == '\u115f' || r == '\u1160' || r == '\u3164' || r == '\uffa0'
}

// scriptTables are the scripts a letter is looked up in, the common ones
// first; made on first use, as most names are ASCII.
var scriptTables = sync.OnceValue(func() []*unicode.RangeTable {
	first := []string{"Latin", "Cyrillic", "Greek", "Han", "Hiragana", "Katakana", "Hangul", "Bopomofo", "Arabic", "Hebrew"}
	var rest []string
	for name := range unicode.Scripts {
		if name != "Common" && name != "Inherited" && !slices.Contains(first, name) {
			rest = append(rest, name)
		}
	}
	slices.Sort(rest)
	var out []*unicode.RangeTable
	for _, name := range append(first, rest...) {
		out = append(out, unicode.Scripts[name])
	}
	return out
})

// scriptOf is the script of r, nil for Common and Inherited characters
// (digits, punctuation, combining marks), which go with any script.
func scriptOf(r rune) *unicode.RangeTable {
	if r < utf8.RuneSelf {
		if 'a' <= r && r <= 'z' || 'A' <= r && r <= 'Z' {
			return unicode.Latin
		}
		return nil
	}
	for _, t := range scriptTables() {
		if unicode.Is(t, r) {
			return t
		}
	}
	return nil
}

// scriptNames names the scripts in refusals; made on first use.
var scriptNames = sync.OnceValue(func() map[*unicode.RangeTable]string {
	m := map[*unicode.RangeTable]string{}
	for name, t := range unicode.Scripts {
		m[t] = name
	}
	return m
})

// cjk are the scripts that may go together (UTS #39, highly restrictive):
// Latin with Han and the Japanese kana, with Han and Bopomofo, or with Han
// and Hangul.
var cjk = [][]*unicode.RangeTable{
	{unicode.Latin, unicode.Han, unicode.Hiragana, unicode.Katakana},
	{unicode.Latin, unicode.Han, unicode.Bopomofo},
	{unicode.Latin, unicode.Han, unicode.Hangul},
}

// confusable refuses a display form whose letters let it pass for another name.
func confusable(display string) error {
	var scripts []*unicode.RangeTable
	for _, r := range display {
		if phonetic(r) {
			return errPhonetic
		}
		if t := scriptOf(r); t != nil && !slices.Contains(scripts, t) {
			scripts = append(scripts, t)
		}
	}
	within := func(allowed []*unicode.RangeTable) bool {
		return !slices.ContainsFunc(scripts, func(t *unicode.RangeTable) bool { return !slices.Contains(allowed, t) })
	}
	if len(scripts) > 1 && !slices.ContainsFunc(cjk, within) {
		var names []string
		for _, t := range scripts {
			names = append(names, scriptNames()[t])
		}
		slices.Sort(names)
		return &Error{"A username cannot mix letters of different scripts (here " + strings.Join(names, " and ") +
			"): look-alike letters would let it pass for another name."}
	}
	if len(scripts) == 1 && (scripts[0] == unicode.Cyrillic || scripts[0] == unicode.Greek) &&
		!strings.ContainsFunc(display, func(r rune) bool { return unicode.IsLetter(r) && !latinLookalikes[r] }) {
		return &Error{"A username cannot be spelled only with " + scriptNames()[scripts[0]] +
			" letters that look like Latin ones: it would pass for a Latin name."}
	}
	return nil
}

// phonetic reports the IPA and phonetic-extension letters (ɑ, ɡ, ɪ, ᴀ, ᴄ…),
// which UTS #39 leaves out of identifiers and which look like ordinary letters.
func phonetic(r rune) bool {
	return 0x0250 <= r && r <= 0x02af || 0x1d00 <= r && r <= 0x1dbf
}

// latinLookalikes are the Cyrillic and Greek letters that look like Latin
// ones (after the Unicode confusables data), in either case.
var latinLookalikes = func() map[rune]bool {
	m := map[rune]bool{}
	for _, r := range "аАВсСеЕһҺНіІјЈКМоОрРѕЅТхХуУүҮԁԛԚԝԜӏӀ" + // Cyrillic
		"αΑΒΕΖγηΗιΙΚΜνΝοΟρΡΤυΥχΧ" { // Greek
		m[r] = true
	}
	return m
}()
