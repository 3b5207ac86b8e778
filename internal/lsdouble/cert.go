package lsdouble

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/hex"
	"fmt"
	"math/big"
	"strings"
	"time"
)

// OfficialCN is the subject common name of the certificates the LocalSend
// apps generate (packages/core/src/crypto/cert.rs).
const OfficialCN = "LocalSend User"

// NewIdentity generates what a LocalSend app generates on first start: an
// RSA-2048 key and a self-signed certificate with subject CN=cn (use
// OfficialCN to look like the app), no SANs, valid from 1975 to 4096 (rcgen's
// defaults, which the app keeps). Leaf is set.
func NewIdentity(cn string) (tls.Certificate, error) {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("lsdouble: generating RSA key: %w", err)
	}
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("lsdouble: serial: %w", err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: cn},
		NotBefore:    time.Date(1975, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(4096, 1, 1, 0, 0, 0, 0, time.UTC),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("lsdouble: creating certificate: %w", err)
	}
	leaf, err := x509.ParseCertificate(der)
	if err != nil {
		return tls.Certificate{}, fmt.Errorf("lsdouble: parsing own certificate: %w", err)
	}
	return tls.Certificate{Certificate: [][]byte{der}, PrivateKey: key, Leaf: leaf}, nil
}

// Fingerprint returns a certificate's LocalSend fingerprint: the SHA-256 of
// its DER bytes in upper-case hex.
func Fingerprint(der []byte) string {
	sum := sha256.Sum256(der)
	return strings.ToUpper(hex.EncodeToString(sum[:]))
}

// CheckCertificate applies the app's test to a peer certificate
// (verify_cert_from_der in packages/core/src/crypto/cert.rs): it must parse,
// be within its validity dates now, and carry a valid self-signature. Issuer,
// names, key usage and chains are not looked at.
func CheckCertificate(der []byte, now time.Time) error {
	c, err := x509.ParseCertificate(der)
	if err != nil {
		return fmt.Errorf("%w: %v", ErrBadCertificate, err)
	}
	if now.Before(c.NotBefore) || now.After(c.NotAfter) {
		return fmt.Errorf("%w: outside its validity (%s to %s)", ErrBadCertificate,
			c.NotBefore.Format(time.RFC3339), c.NotAfter.Format(time.RFC3339))
	}
	if err := c.CheckSignature(c.SignatureAlgorithm, c.RawTBSCertificate, c.Signature); err != nil {
		return fmt.Errorf("%w: self-signature: %v", ErrBadCertificate, err)
	}
	return nil
}

// verifyPeer returns a tls VerifyPeerCertificate function that applies
// CheckCertificate to the first certificate and, when want is not empty,
// demands that its fingerprint equals want (case-insensitively, as the app
// upper-cases the expected value). seen, when not nil, receives the
// fingerprint of the certificate checked.
func verifyPeer(want string, seen func(string)) func([][]byte, [][]*x509.Certificate) error {
	want = strings.ToUpper(want)
	return func(raw [][]byte, _ [][]*x509.Certificate) error {
		if len(raw) == 0 {
			return fmt.Errorf("%w: no certificate", ErrBadCertificate)
		}
		if err := CheckCertificate(raw[0], time.Now()); err != nil {
			return err
		}
		got := Fingerprint(raw[0])
		if seen != nil {
			seen(got)
		}
		if want != "" && got != want {
			return &FingerprintError{Want: want, Got: got}
		}
		return nil
	}
}

// FingerprintError is the handshake error of a sender whose receiver
// presented a certificate other than the expected one. It matches
// ErrFingerprintMismatch with errors.Is.
type FingerprintError struct {
	Want, Got string
}

func (e *FingerprintError) Error() string {
	return fmt.Sprintf("lsdouble: certificate fingerprint mismatch: want %s, got %s", e.Want, e.Got)
}

// Is reports whether target is ErrFingerprintMismatch.
func (e *FingerprintError) Is(target error) bool { return target == ErrFingerprintMismatch }

// uuid returns a random version-4 UUID string, the form the app uses for
// session ids, tokens and file ids.
func uuid() string {
	var b [16]byte
	_, _ = rand.Read(b[:]) // never fails (it crashes the program instead)
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[0:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:32]
}
