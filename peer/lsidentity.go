package peer

import (
	"crypto"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lanshare/lanshare/proto/localsend"
)

// Files in the config directory that hold the agent's LocalSend identity,
// next to key.pem and cert.pem. Both are owner-only (0600).
const (
	lsKeyFile  = "localsend-key.pem"
	lsCertFile = "localsend-cert.pem"
)

// LocalSendIDPrefix starts every LocalSend id (LocalSendID).
const LocalSendIDPrefix = "ls-"

// localSendIDLen is the length of a LocalSend id: the prefix and a
// fingerprint's 64 hex digits.
const localSendIDLen = len(LocalSendIDPrefix) + 64

// LocalSendIdentity is the agent's key pair and self-signed certificate
// for the LocalSend API, as the official apps make theirs: CN "LocalSend
// User", valid from 1975 to 4096; an ECDSA P-256 key, as LocalSend's Rust
// core makes with rcgen's defaults (the Flutter apps make RSA-2048, which
// an identity made before is, and still loads). LocalSend names a device by
// the fingerprint of its certificate (not of its key), so the certificate
// is kept as long as the key, never reissued while it exists.
type LocalSendIdentity struct {
	Cert tls.Certificate
	// Fingerprint is LocalSend's fingerprint of Cert: upper-case hex
	// SHA-256 of its DER bytes (localsend.Fingerprint).
	Fingerprint string
}

// ID is the identity's id in known_peers: LocalSendID(Fingerprint).
func (id *LocalSendIdentity) ID() string { return LocalSendID(id.Fingerprint) }

// LoadLocalSendIdentity reads the LocalSend identity kept in dir, creating
// a new key pair and certificate (owner-only files, written exclusively)
// the first time. It fails, rather than replacing anything, when the files
// exist but cannot be used. A key without its certificate (a first start
// cut short) gets a new certificate, hence a new fingerprint: LocalSend
// devices then see a new device.
//
// ECDSA P-256, not Ed25519, which not every app version accepts; and not
// RSA-2048, whose key took 30 to 200 ms of CPU to make at an agent's first
// start (where a hundred agents starting on one machine spent seconds
// making keys), against a tenth of a millisecond.
func LoadLocalSendIdentity(dir string) (*LocalSendIdentity, error) {
	id, err := readLocalSendIdentity(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating config directory: %w", err)
	}
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		return nil, fmt.Errorf("creating LocalSend key: %w", err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, err
	}
	keyPEM := pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})
	// The key goes first, as in LoadIdentity.
	if err := writeExclusive(filepath.Join(dir, lsKeyFile), keyPEM); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	// If another process wrote the key first, readLocalSendIdentity uses
	// theirs, and issues the certificate if they have not yet.
	return readLocalSendIdentity(dir)
}

func readLocalSendIdentity(dir string) (*LocalSendIdentity, error) {
	keyPath := filepath.Join(dir, lsKeyFile)
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading LocalSend identity: %w", err)
	}
	key, err := parseLocalSendKey(kb)
	if err != nil {
		return nil, err
	}
	cb, err := readOrIssue(filepath.Join(dir, lsCertFile), func() ([]byte, error) { return lsSelfSign(key) })
	if err != nil {
		return nil, fmt.Errorf("LocalSend certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("LocalSend identity in %s is unusable (move %s and %s away to make a new one): %w", dir, lsKeyFile, lsCertFile, err)
	}
	return &LocalSendIdentity{Cert: cert, Fingerprint: localsend.Fingerprint(cert.Certificate[0])}, nil
}

// parseLocalSendKey parses the PEM key of a LocalSend identity: ECDSA
// P-256, or RSA as identities made before were.
func parseLocalSendKey(b []byte) (crypto.Signer, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("LocalSend key: not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("LocalSend key: %w", err)
	}
	switch key := k.(type) {
	case *ecdsa.PrivateKey:
		if key.Curve != elliptic.P256() {
			return nil, errors.New("LocalSend key: an ECDSA key not on P-256")
		}
		return key, nil
	case *rsa.PrivateKey:
		return key, nil
	}
	return nil, fmt.Errorf("LocalSend key: a %T, not an ECDSA P-256 or RSA key", k)
}

// lsSelfSign issues the certificate as the apps do (rcgen's defaults: no
// names but the CN, valid 1975 to 4096); it serves as server and client
// certificate.
func lsSelfSign(key crypto.Signer) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "LocalSend User"},
		NotBefore:    time.Date(1975, 1, 1, 0, 0, 0, 0, time.UTC),
		NotAfter:     time.Date(4096, 1, 1, 0, 0, 0, 0, time.UTC),
		// No key usage extensions, as rcgen's default: whatever a peer
		// checks, an unrestricted certificate passes.
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating LocalSend certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// LocalSendID is the id of a LocalSend device in known_peers, history and
// output: "ls-" and its certificate fingerprint in lower-case hex. It
// returns "" when fingerprint is not 64 hex digits (a plain-HTTP device's
// random string names no key, so it gets no id).
func LocalSendID(fingerprint string) string {
	if !localsend.IsCertFingerprint(fingerprint) {
		return ""
	}
	return LocalSendIDPrefix + strings.ToLower(fingerprint)
}

// IsLocalSendID reports whether id is a LocalSend id (as LocalSendID
// makes them), not a lanshare agent's.
func IsLocalSendID(id string) bool {
	return len(id) == localSendIDLen && strings.HasPrefix(id, LocalSendIDPrefix) && isLowerHex(id[len(LocalSendIDPrefix):])
}

// LocalSendFingerprint is the fingerprint a LocalSend id names, in
// upper-case hex as LocalSend writes it, or "" when id is not one.
func LocalSendFingerprint(id string) string {
	if !IsLocalSendID(id) {
		return ""
	}
	return strings.ToUpper(id[len(LocalSendIDPrefix):])
}

func isLowerHex(s string) bool {
	return strings.Trim(s, "0123456789abcdef") == ""
}
