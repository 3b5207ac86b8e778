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
	for _, r := range c {
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
		case r == 0x200B:
			return fmt.Errorf("%w: zero-width character %U", ErrNameUnsafe, r)
		}
	}
	if last := c[len(c)-1]; last == '.' || last == ' ' {
		return fmt.Errorf("%w: trailing dot or space", ErrNameUnsafe)
	}
	if isWindowsReserved(c) {
		return fmt.Errorf("%w: %s is a reserved device name on Windows", ErrNameUnsafe, Escape(c))
	}
	return nil
}

func isNoncharacter(r rune) bool {
	return (r >= 0xFDD0 && r <= 0xFDEF) || r&0xFFFE == 0xFFFE
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
// when it is plain printable text, otherwise Go-quoted so that control,
// bidi and invisible characters show as escapes and cannot drive the
// terminal.
func Escape(s string) string {
	for _, r := range s {
		if r == utf8.RuneError || r == '"' || r == '\\' || !unicode.IsGraphic(r) || unicode.Is(unicode.Cf, r) {
			return strconv.QuoteToGraphic(s)
		}
	}
	return s
}
