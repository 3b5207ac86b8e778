package peer

import (
	"fmt"
	"runtime"
	"strconv"
	"strings"
	"unicode"
	"unicode/utf8"

	"golang.org/x/text/cases"
	"golang.org/x/text/unicode/norm"

	"github.com/lanshare/lanshare/proto"
)

// NameRules says which names the shared folder's file system can hold.
// An offered name that passes checkOffered but that the rules forbid is
// saved under a mapped name (see NameRules.mapComponent), never dropped.
type NameRules string

// The name rules an inbox can follow.
const (
	// NamesNative follows the rules of the system the agent runs on:
	// NamesWindows on Windows, NamesPOSIX elsewhere. It is the default.
	NamesNative NameRules = "native"
	// NamesPOSIX holds every name but "/" and NUL (Linux, macOS, BSD).
	NamesPOSIX NameRules = "posix"
	// NamesWindows maps what Windows forbids: the characters <>:"\|?*,
	// trailing dots and spaces, and device names (CON, NUL.txt, COM1...).
	// FAT, exFAT, NTFS and SMB shares need it on any system.
	NamesWindows NameRules = "windows"
	// NamesPortable is NamesWindows: names every system lanshare runs on
	// can hold.
	NamesPortable NameRules = "portable"
)

// resolve returns the concrete rules r stands for on this system, or an
// error wrapping ErrNameRules for an unknown value. "" is NamesNative.
func (r NameRules) resolve() (NameRules, error) {
	switch r {
	case "", NamesNative:
		if runtime.GOOS == "windows" {
			return NamesWindows, nil
		}
		return NamesPOSIX, nil
	case NamesPOSIX, NamesWindows:
		return r, nil
	case NamesPortable:
		return NamesWindows, nil
	}
	return "", fmt.Errorf("%w %q: want %s, %s, %s or %s", ErrNameRules, string(r), NamesNative, NamesPOSIX, NamesWindows, NamesPortable)
}

// windowsForbidden are the printable characters Windows refuses in a name,
// and windowsLookalikes the full-width forms they are saved as (the
// look-alikes rclone's name encoder uses): readable, and as distinct as the
// originals.
const (
	windowsForbidden  = `<>:"\|?*`
	windowsLookalikes = "＜＞：＂＼｜？＊"
)

// mapComponent returns the name under which the offered path component c,
// which checkOffered accepted, is saved under rules r (as resolved): c
// itself when the rules allow it. Under NamesWindows, a forbidden
// character becomes its full-width look-alike, a trailing dot U+FF0E (．)
// and a trailing space U+2420 (␠), and a device name gets "_" after its
// stem (CON.txt → CON_.txt). The result may be longer than c; fitName
// shortens it.
func (r NameRules) mapComponent(c string) string {
	if r != NamesWindows || windowsProblem(c) == nil {
		return c
	}
	var b strings.Builder
	for _, ch := range c {
		if i := strings.IndexRune(windowsForbidden, ch); i >= 0 {
			ch = []rune(windowsLookalikes)[i]
		}
		b.WriteRune(ch)
	}
	s := b.String()
	// Windows drops trailing dots and spaces: the name would lose them,
	// or not open at all.
	end := len(strings.TrimRight(s, ". "))
	if end < len(s) {
		tail := strings.NewReplacer(".", "\uff0e", " ", "\u2420").Replace(s[end:])
		s = s[:end] + tail
	}
	if isWindowsReserved(s) {
		stem, _, _ := strings.Cut(s, ".")
		n := len(strings.TrimRight(stem, " "))
		s = s[:n] + "_" + s[n:]
	}
	return s
}

// CheckName reports whether p, an offered slash-separated relative path,
// is safe to create under the shared folder under its own name on any of
// the operating systems lanshare runs on. It returns an error wrapping
// ErrNameUnsafe that says why, or nil. It looks only at the string; the
// inbox separately never writes through links or outside its root. (The
// inbox itself refuses only what checkOffered refuses, and maps the rest.)
func CheckName(p string) error {
	if err := checkOffered(p); err != nil {
		return err
	}
	for c := range strings.SplitSeq(p, "/") {
		if err := windowsProblem(c); err != nil {
			return err
		}
	}
	return nil
}

// checkOffered reports whether the offered path p may be saved at all,
// under its own name or a mapped one. It refuses, with an error wrapping
// ErrNameUnsafe, what would escape the shared folder or deceive a reader:
// a path that is not relative (/x, and C:\x, C:/x, \\server\x from
// Windows), empty, "." and ".." components, controls, invisible, bidi and
// formatting characters, odd spaces, and names over the protocol's caps.
// What only some file systems cannot hold (a:b.txt, CON, name.) passes.
func checkOffered(p string) error {
	if err := proto.CheckPath(p); err != nil {
		return fmt.Errorf("%w: %w", ErrNameUnsafe, err)
	}
	if !utf8.ValidString(p) {
		return fmt.Errorf("%w: not valid UTF-8", ErrNameUnsafe)
	}
	if strings.HasPrefix(p, "/") {
		return fmt.Errorf("%w: absolute path", ErrNameUnsafe)
	}
	if strings.HasPrefix(p, `\`) {
		return fmt.Errorf("%w: absolute path (Windows)", ErrNameUnsafe)
	}
	if len(p) >= 3 && p[1] == ':' && isASCIILetter(p[0]) && (p[2] == '\\' || p[2] == '/') {
		return fmt.Errorf("%w: drive-letter path", ErrNameUnsafe)
	}
	for c := range strings.SplitSeq(p, "/") {
		if err := safeComponent(c); err != nil {
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

// checkComponent reports whether the path component c may be created
// under its own name on every system: safeComponent and windowsProblem.
func checkComponent(c string) error {
	if err := safeComponent(c); err != nil {
		return err
	}
	return windowsProblem(c)
}

// windowsProblem says why Windows cannot hold the component c under its
// own name, or returns nil.
func windowsProblem(c string) error {
	if i := strings.IndexAny(c, windowsForbidden); i >= 0 {
		if c[i] == '\\' {
			return fmt.Errorf("%w: backslash", ErrNameUnsafe)
		}
		return fmt.Errorf("%w: character %q is not allowed on Windows", ErrNameUnsafe, c[i])
	}
	if last := c[len(c)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("%w: trailing dot or space", ErrNameUnsafe)
	}
	if isWindowsReserved(c) {
		return fmt.Errorf("%w: %s is a reserved device name on Windows", ErrNameUnsafe, Escape(c))
	}
	return nil
}

// safeComponent refuses the path components that no rules may save:
// see checkOffered.
func safeComponent(c string) error { return safeComponentWith(c, true) }

// safeComponentWith is safeComponent; ascii lets a component of ASCII
// alone skip the look-ups in Unicode's tables, which find nothing to
// refuse in ASCII but controls (a test compares both ways).
func safeComponentWith(c string, ascii bool) error {
	switch c {
	case "":
		return fmt.Errorf("%w: empty path component", ErrNameUnsafe)
	case ".", "..":
		return fmt.Errorf("%w: %q component", ErrNameUnsafe, c)
	}
	if strings.Trim(c, " ") == "" {
		return fmt.Errorf("%w: name of spaces only", ErrNameUnsafe)
	}
	if ascii && isASCII(c) {
		for i := range len(c) {
			if c[i] < 0x20 || c[i] == 0x7f {
				return fmt.Errorf("%w: control character %U", ErrNameUnsafe, rune(c[i]))
			}
		}
	} else if err := checkRunes(c); err != nil {
		return err
	}
	if strings.Contains(c, "  .") {
		return fmt.Errorf("%w: spaces before an extension", ErrNameUnsafe)
	}
	return nil
}

func isASCII(s string) bool {
	for i := range len(s) {
		if s[i] >= utf8.RuneSelf {
			return false
		}
	}
	return true
}

// checkRunes is safeComponent's look at each rune of c.
func checkRunes(c string) error {
	prev := rune(-1) // the rune before r in c, -1 at its start
	for i, r := range c {
		switch {
		case r == utf8.RuneError:
			return fmt.Errorf("%w: not valid UTF-8", ErrNameUnsafe)
		case r < 0x20 || r == 0x7f || (r >= 0x80 && r < 0xa0):
			return fmt.Errorf("%w: control character %U", ErrNameUnsafe, r)
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
	for i := 0; i < len(name); i++ {
		if name[i] >= utf8.RuneSelf {
			return cases.Fold().String(norm.NFC.String(name))
		}
	}
	// ASCII is in NFC, and folds to lower case: most names are, and
	// need no allocation (ToLower returns a lower-case name itself).
	return strings.ToLower(name)
}

// Escape returns s as it may be printed in a log line or error: unchanged
// when it is plain printable text, otherwise quoted so that control, bidi,
// invisible and space-like characters show as escapes and cannot drive the
// terminal or hide part of the name. A name that starts or ends with a
// space is quoted too, so that the space shows.
func Escape(s string) string {
	if strings.HasPrefix(s, " ") || strings.HasSuffix(s, " ") {
		return quote(s)
	}
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
