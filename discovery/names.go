package discovery

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"unicode/utf8"
)

const (
	// ServiceType is the DNS-SD service type lanshare agents advertise.
	ServiceType = "_lanshare._tcp"
	// Domain is the mDNS domain.
	Domain = "local."

	serviceFQDN  = ServiceType + "." + Domain
	servicesEnum = "_services._dns-sd._udp." + Domain

	maxLabel = 63 // bytes in one DNS label
)

// InstanceName returns the DNS-SD instance label an agent with display name
// and id advertises: the display name followed by a space and a four
// character suffix in parentheses, e.g. "bob (3fa2)". The suffix is the
// first four characters of id when they are ASCII letters or digits
// (lower-cased), otherwise the first four hex digits of id's SHA-256. Two
// agents with the same display name therefore get distinct instance names
// without probing; the name is cut (at a UTF-8 boundary) so the label fits
// the 63-byte limit.
func InstanceName(name, id string) string {
	suffix := " (" + idSuffix(id) + ")"
	name = truncateUTF8(name, maxLabel-len(suffix))
	return name + suffix
}

func idSuffix(id string) string {
	if len(id) >= 4 && isAlnum(id[:4]) {
		return strings.ToLower(id[:4])
	}
	sum := sha256.Sum256([]byte(id))
	return hex.EncodeToString(sum[:2])
}

func isAlnum(s string) bool {
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return false
		}
	}
	return true
}

// truncateUTF8 cuts s to at most n bytes without splitting a rune.
func truncateUTF8(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// escapeLabel turns one raw DNS label into presentation format (RFC 6763
// §4.3, RFC 1035 §5.1): dots and backslashes, and the other characters
// miekg/dns escapes when it unpacks a name, get a backslash; bytes outside
// printable ASCII become \DDD. The result is exactly what miekg/dns prints for
// the same wire label, so names we build compare equal to names we receive.
// hashicorp/mdns does no escaping, so an instance "a.b" would become two
// labels there.
func escapeLabel(label string) string {
	var b strings.Builder
	for i := 0; i < len(label); i++ {
		c := label[i]
		switch {
		case c == '.' || c == ' ' || c == '\'' || c == '@' || c == ';' ||
			c == '(' || c == ')' || c == '"' || c == '\\':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			fmt.Fprintf(&b, "\\%03d", c)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeLabel reverses escapeLabel for a single presentation-format label
// (it must not contain an unescaped dot).
func unescapeLabel(s string) (string, error) {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch c {
		case '\\':
			if isDigit3(s[i+1:]) {
				v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
				if v > 255 {
					return "", fmt.Errorf("%w: bad escape in label %q", ErrMalformed, s)
				}
				b.WriteByte(byte(v))
				i += 3
				continue
			}
			if i+1 >= len(s) {
				return "", fmt.Errorf("%w: dangling escape in label %q", ErrMalformed, s)
			}
			b.WriteByte(s[i+1])
			i++
		case '.':
			return "", fmt.Errorf("%w: unescaped dot in label %q", ErrMalformed, s)
		default:
			b.WriteByte(c)
		}
	}
	if b.Len() == 0 || b.Len() > maxLabel {
		return "", fmt.Errorf("%w: label length %d", ErrMalformed, b.Len())
	}
	return b.String(), nil
}

func isDigit3(s string) bool {
	return len(s) >= 3 && isDigit(s[0]) && isDigit(s[1]) && isDigit(s[2])
}

func isDigit(c byte) bool { return '0' <= c && c <= '9' }

// firstLabel splits a presentation-format name at its first unescaped dot.
func firstLabel(name string) (label, rest string, ok bool) {
	for i := 0; i < len(name); i++ {
		switch name[i] {
		case '\\':
			i++ // skip the escaped byte (for \DDD the digits are harmless)
		case '.':
			return name[:i], name[i+1:], true
		}
	}
	return "", "", false
}

// splitInstance checks that fqdn is "<instance>._lanshare._tcp.local." and
// returns the unescaped instance label. Names of other service types, or with
// more than one instance label, are rejected (hashicorp/mdns's client accepts
// records of any service type).
func splitInstance(fqdn string) (string, bool) {
	label, rest, ok := firstLabel(fqdn)
	if !ok || !strings.EqualFold(rest, serviceFQDN) {
		return "", false
	}
	raw, err := unescapeLabel(label)
	if err != nil {
		return "", false
	}
	return raw, true
}

// instanceFQDN is the full presentation-format name of an instance label.
func instanceFQDN(instance string) string {
	return escapeLabel(instance) + "." + serviceFQDN
}

// hostLabel turns any host name into one valid DNS host label: the first
// dot-separated part, letters, digits and hyphens kept, anything else
// replaced by '-', at most 63 bytes; "lanshare" if nothing is left.
func hostLabel(h string) string {
	if i := strings.IndexByte(h, '.'); i >= 0 {
		h = h[:i]
	}
	b := []byte(h)
	for i, c := range b {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-') {
			b[i] = '-'
		}
	}
	s := strings.Trim(string(b), "-")
	if len(s) > maxLabel {
		s = strings.TrimRight(s[:maxLabel], "-")
	}
	if s == "" {
		return "lanshare"
	}
	return s
}

// validHostLabel reports whether h is usable as the host part of
// "<host>.local.".
func validHostLabel(h string) bool {
	return h != "" && hostLabel(h) == h
}

// lowerASCII lower-cases ASCII letters only: DNS names compare
// case-insensitively for ASCII, and presentation names escape everything
// else.
func lowerASCII(s string) string {
	for i := 0; i < len(s); i++ {
		if 'A' <= s[i] && s[i] <= 'Z' {
			b := []byte(s)
			for j := i; j < len(b); j++ {
				if 'A' <= b[j] && b[j] <= 'Z' {
					b[j] += 'a' - 'A'
				}
			}
			return string(b)
		}
	}
	return s
}
