package peer

import (
	"fmt"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/lanshare/lanshare/proto"
)

// CheckName reports whether p, an offered slash-separated relative path,
// is safe to create under the shared folder on any of the operating
// systems lanshare runs on. It returns an error wrapping ErrNameUnsafe that
// says why, or nil. It looks only at the string; the inbox separately never
// writes through links or outside its root.
func CheckName(p string) error {
	if err := proto.CheckPath(p); err != nil {
		return fmt.Errorf("%w: %w", ErrNameUnsafe, err)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: not valid UTF-8", ErrNameUnsafe)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: absolute path", ErrNameUnsafe)
	}
	if strings.ContainsRune(p, '\\') {
		return fmt.Errorf("%w: backslash", ErrNameUnsafe)
	}
	if len(p) >= 2 && p[1] == ':' && isASCIILetter(p[0]) {
		return fmt.Errorf("%w: drive-letter path", ErrNameUnsafe)
	}
	for c := range strings.SplitSeq(p, "/") {
		if err := checkComponent(c); err != nil {
			return err
		}
	}
	return nil
}

func isASCIILetter(b byte) bool { return b|0x20 >= 'a' && b|0x20 <= 'z' }

// windowsReserved are device names Windows reserves with any extension.
var windowsReserved = map[string]bool{
	"CON": true, "PRN": true, "AUX": true, "NUL": true, "CONIN$": true, "CONOUT$": true,
}

func checkComponent(c string) error {
	switch c {
	case "":
		return fmt.Errorf("%w: empty path component", ErrNameUnsafe)
	case ".", "..":
		return fmt.Errorf("%w: %q component", ErrNameUnsafe, c)
	}
	prev := rune(-1) // the rune before r in c, -1 at its start
	for i, r := range c {
		switch {
		case r == utf8.RuneError:
			return fmt.Errorf("%w: not valid UTF-8", ErrNameUnsafe)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%w: control character %U", ErrNameUnsafe, r)
		case strings.ContainsRune(`<>:"|?*`, r):
			return fmt.Errorf("%w: character %q is not allowed on Windows", ErrNameUnsafe, r)
		case unicode.Is(unicode.Cf, r) || unicode.Is(unicode.Cs, r) || unicode.Is(unicode.Co, r) || r == 0xFFFD || isNoncharacter(r):
			// Format characters include the bidi overrides (U+202E) and
			// zero-width ones (U+200B..U+200D, U+FEFF) that make a name
			// display as something it is not.
			return fmt.Errorf("%w: invisible or formatting character %U", ErrNameUnsafe, r)
		case unicode.In(r, unicode.Zl, unicode.Zp):
			return fmt.Errorf("%w: line or paragraph separator %U", ErrNameUnsafe, r)
		case isWideSpace(r) && !wideSpaceFits(c, i):
			// A run of U+2003 looks like the end of "invoice.pdf" and
			// pushes the real extension out of sight. Alone between
			// two words it is a gap like any other (U+202F in macOS's
			// screenshot names, U+3000 in Japanese ones).
			return fmt.Errorf("%w: space %U at an end of the name, next to a dot or another space", ErrNameUnsafe, r)
		case unicode.Is(unicode.Variation_Selector, r):
			if !variationBase(prev, r) {
				return fmt.Errorf("%w: variation selector %U with no character to select", ErrNameUnsafe, r)
			}
		case isBlank(r):
			return fmt.Errorf("%w: blank or invisible character %U", ErrNameUnsafe, r)
		case unicode.Is(unicode.M, r):
			// A mark combines with the character before it; on a space,
			// a dot or nothing it stands alone, or hides what it sits on.
			if prev < 0 || !unicode.In(prev, unicode.L, unicode.N, unicode.M, unicode.S) {
				return fmt.Errorf("%w: combining mark %U with no letter to combine with", ErrNameUnsafe, r)
			}
		}
		prev = r
	}
	if last := c[len(c)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("%w: trailing dot or space", ErrNameUnsafe)
	}
	if strings.Contains(c, "  .") {
		return fmt.Errorf("%w: spaces before an extension", ErrNameUnsafe)
	}
	if isWindowsReserved(c) {
		return fmt.Errorf("%w: %s is a reserved device name on Windows", ErrNameUnsafe, Escape(c))
	}
	return nil
}

func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
}

// isWideSpace reports whether r is a space other than the plain one:
// U+00A0, U+2000..U+200A, U+202F, U+3000 and the rest of Zs.
func isWideSpace(r rune) bool {
	return r != ' ' && unicode.Is(unicode.Zs, r)
}

// wideSpaceFits reports whether the wide space at s[i] stands alone
// between two characters that show: not at an end of s or of a path
// component, and next to no other space and no dot, where it would hide
// or fake an extension.
func wideSpaceFits(s string, i int) bool {
	_, n := utf8.DecodeRuneInString(s[i:])
	if i == 0 || i+n >= len(s) {
		return false
	}
	prev, _ := utf8.DecodeLastRuneInString(s[:i])
	next, _ := utf8.DecodeRuneInString(s[i+n:])
	edge := func(r rune) bool { return r == '.' || r == '/' || unicode.In(r, unicode.Zs, unicode.Zl, unicode.Zp) }
	return !edge(prev) && !edge(next)
}

// isBlank reports whether r displays as nothing: a default-ignorable code
// point that is not a format character (U+034F, the Hangul fillers U+115F,
// U+1160, U+3164, U+FFA0, unassigned ones), or U+2800 BRAILLE PATTERN
// BLANK, which fonts draw as a space.
func isBlank(r rune) bool {
	return r == 0x2800 || unicode.Is(unicode.Other_Default_Ignorable_Code_Point, r)
}

// variationBase reports whether the variation selector vs may follow prev:
// the emoji selectors (U+FE0E, U+FE0F) a symbol, a digit, '#' or '*' (the
// keycaps); the others a letter or a symbol (CJK ideographs, math). A
// selector at the start, after another selector or mark, or after a space
// or a dot selects nothing and only hides in the name.
func variationBase(prev, vs rune) bool {
	if prev < 0 {
		return false
	}
	if vs == 0xFE0E || vs == 0xFE0F {
		return unicode.In(prev, unicode.S, unicode.N) || prev == '#' || prev == '*'
	}
	return unicode.In(prev, unicode.L, unicode.S)
}

// isWindowsReserved reports whether c names a Windows device whatever its
// extension: CON, nul.txt, COM1, LPT¹ ...
func isWindowsReserved(c string) bool {
	stem, _, _ := strings.Cut(c, ".")
	stem = strings.ToUpper(strings.TrimRight(stem, " "))
	if windowsReserved[stem] {
		return true
	}
	if len(stem) >= 4 && (strings.HasPrefix(stem, "COM") || strings.HasPrefix(stem, "LPT")) {
		switch stem[3:] {
		case "0", "1", "2", "3", "4", "5", "6", "7", "8", "9", "¹", "²", "³":
			return true
		}
	}
	return false
}

// foldKey maps a name to the key under which two names are the same file
// on a case-insensitive or normalising file system (macOS, Windows): case
// folded, NFC.
func foldKey(name string) string {
	return cases.Fold().String(norm.NFC.String(name))
}

// Escape returns s as it may be printed in a log line or error: unchanged
// when it is plain printable text, otherwise quoted so that control, bidi,
// invisible and space-like characters show as escapes and cannot drive the
// terminal or hide part of the name.
func Escape(s string) string {
	for i, r := range s {
		if r == utf8.RuneError || r == '"' || r == '\\' || hidden(s, i) {
			return quote(s)
		}
	}
	return s
}

// hidden reports whether the rune at s[i] does not show as itself when
// printed: it is invisible, or a wide space that can pass for the end of
// a name (see wideSpaceFits).
func hidden(s string, i int) bool {
	r, _ := utf8.DecodeRuneInString(s[i:])
	return !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) || isBlank(r) || (isWideSpace(r) && !wideSpaceFits(s, i))
}

// quote is strconv.QuoteToGraphic, except that it also escapes what hidden
// reports, which QuoteToGraphic prints as is (U+2003, U+3164, U+2800).
func quote(s string) string {
	b := []byte{'"'}
	for i := 0; i < len(s); {
		r, n := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && n == 1:
			b = fmt.Appendf(b, `\x%02x`, s[i])
		case r == '"' || r == '\\':
			b = append(b, '\\', byte(r))
		case hidden(s, i):
			q := strconv.QuoteRuneToASCII(r)
			b = append(b, q[1:len(q)-1]...)
		default:
			b = utf8.AppendRune(b, r)
		}
		i += n
	}
	return string(append(b, '"'))
}
