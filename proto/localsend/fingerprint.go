package localsend

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"
)

// Fingerprint is a certificate's fingerprint as LocalSend computes it: the
// SHA-256 of its DER bytes in upper-case hex (64 digits).
func Fingerprint(certDER []byte) string {
	sum := sha256.Sum256(certDER)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// SameFingerprint reports whether a and b are the same fingerprint,
// ignoring the case of ASCII letters (apps compare upper-case hex; users
// and ids write lower case). Empty fingerprints match nothing.
func SameFingerprint(a, b string) bool {
	if a == "" || len(a) != len(b) {
		return false
	}
	for i := 0; i < len(a); i++ {
		if lowerASCII(a[i]) != lowerASCII(b[i]) {
			return false
		}
	}
	return true
}

// IsCertFingerprint reports whether s has the shape of a certificate
// fingerprint (64 hex digits, either case), as opposed to the random
// string a plain-HTTP device announces.
func IsCertFingerprint(s string) bool { return isHex64(s) }

func lowerASCII(c byte) byte {
	if 'A' <= c && c <= 'Z' {
		return c + 'a' - 'A'
	}
	return c
}
