package usernames_test

import (
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/fedhub/fedhub/usernames"
)

// The spellings that sidestepped the limiter and made look-alike users
// (issue 15, findings 2 and 3) are one key.
func TestKeyOneSpellingPerName(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"alice", "alice"},
		{" alice", "alice"},
		{"alice\t", "alice"},
		{"Alice", "alice"},
		{"ａｌｉｃｅ", "alice"}, // full width
		{"ＡＬＩＣＥ", "alice"},
		{"\u3000alice\u3000", "alice"}, // ideographic spaces
		{"ｃａｒｏｌ", "carol"},
		{"john smith", "john smith"},
		{"john  smith", "john smith"},        // inner runs of space are one space
		{"John \u00a0 Smith ", "john smith"}, // no-break space too
		{"José", "josé"},
		{"Jose\u0301", "josé"}, // NFC
		{`EXAMPLE\alice`, `example\alice`},
		{"Alice@Example.Test", "alice@example.test"},
		{"o'brien", "o'brien"},
		{"иван", "иван"},
		{"田中", "田中"},
	} {
		got, err := usernames.Key(tc.in)
		if err != nil || got != tc.want {
			t.Errorf("Key(%q) = %q, %v; want %q", tc.in, got, err, tc.want)
		}
	}
}

func TestKeyRefuses(t *testing.T) {
	for _, tc := range []struct{ in, says string }{
		{"", "Choose a username"},
		{"  \t ", "Choose a username"},
		{"a\u200bb", "invisible"}, // zero-width space
		{"a\u200db", "invisible"}, // zero-width joiner
		{"a\u00adb", "invisible"}, // soft hyphen
		{"a\u202eb", "invisible"}, // right-to-left override
		{"\u3164x", "invisible"},  // Hangul filler
		{"x\u2800", "invisible"},  // Braille blank
		{"x\ufe0f", "invisible"},  // variation selector
		{"a\x00b", "invisible"},   // NUL
		{"a\nb\x7f", "invisible"}, // DEL
		{"\xff", "invisible"},     // not UTF-8
		{"bob☃", "symbols"},
		{"bob😀", "symbols"},
		{"ab\u0627", "right-to-left"},
		{strings.Repeat("a", 256), "at most 255"},
		{strings.Repeat("é", 128), "at most 255"},
		{strings.Repeat("a", 10000), "at most 255"},
	} {
		got, err := usernames.Key(tc.in)
		if err == nil || !errors.Is(err, usernames.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("Key(%q) = %q, %v; want an ErrInvalid saying %q", tc.in, got, err, tc.says)
		}
	}
	if _, err := usernames.Key(strings.Repeat("a", 255)); err != nil {
		t.Errorf("Key of 255 bytes: %v", err)
	}
}

func TestNew(t *testing.T) {
	for _, tc := range []struct{ in, display, key string }{
		{" Alice ", "Alice", "alice"},
		{"ＡＬＩＣＥ", "ALICE", "alice"},
		{"John  Smith", "John Smith", "john smith"},
		{"Zoë", "Zoë", "zoë"},
		{"иван", "иван", "иван"},                      // Cyrillic with letters that are not Latin look-alikes
		{"Ελένη", "Ελένη", "ελένη"},                   // Greek
		{"山田太郎", "山田太郎", "山田太郎"},                      // Han
		{"tanaka田中たなか", "tanaka田中たなか", "tanaka田中たなか"}, // Latin, Han and Hiragana go together
		{"김민수", "김민수", "김민수"},
		{"user-1.test_2@example.com", "user-1.test_2@example.com", "user-1.test_2@example.com"},
	} {
		display, key, err := usernames.New(tc.in)
		if err != nil || display != tc.display || key != tc.key {
			t.Errorf("New(%q) = %q, %q, %v; want %q, %q", tc.in, display, key, err, tc.display, tc.key)
		}
	}
	for _, tc := range []struct{ in, says string }{
		{"\u0430lice", "Cyrillic and Latin"}, // Cyrillic а in a Latin name
		{"pаypal", "Cyrillic and Latin"},
		{"аlісе", "Cyrillic and Latin"},
		{"\u03bfscar", "Greek and Latin"}, // Greek omicron
		{"асе", "only with Cyrillic"},     // all Cyrillic, all look Latin
		{"АСЕ", "only with Cyrillic"},
		{"ΤΟΝΥ", "only with Greek"},
		{"\u0251lice", "phonetic"}, // Latin alpha
		{"\u1d00lice", "phonetic"}, // small capital A
		{"иванivan", "Cyrillic and Latin"},
		{"ali\u200bce", "invisible"},
		{"", "Choose a username"},
	} {
		display, key, err := usernames.New(tc.in)
		if err == nil || !errors.Is(err, usernames.ErrInvalid) || !strings.Contains(err.Error(), tc.says) {
			t.Errorf("New(%q) = %q, %q, %v; want an ErrInvalid saying %q", tc.in, display, key, err, tc.says)
		}
	}
}

// TestScriptsOnFirstUse: the script tables, made on first use, name the
// scripts of the first names checked at the same time.
func TestScriptsOnFirstUse(t *testing.T) {
	var wg sync.WaitGroup
	for range 4 {
		wg.Go(func() {
			if _, _, err := usernames.New("pаypal"); err == nil || !strings.Contains(err.Error(), "Cyrillic and Latin") {
				t.Errorf("a Cyrillic а in a Latin name: %v", err)
			}
			if _, _, err := usernames.New("иван"); err != nil {
				t.Errorf("a Cyrillic name: %v", err)
			}
		})
	}
	wg.Wait()
}
