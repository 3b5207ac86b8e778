package peer

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/base32"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"math/big"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// Files in the config directory that hold the agent's identity. Both are
// owner-only (0600).
const (
	keyFile  = "key.pem"
	certFile = "cert.pem"
)

// idEncoding spells ids: lower-case base32 without padding, so an id is
// letters and digits only and safe in DNS-SD TXT records and file names.
var idEncoding = base32.NewEncoding("abcdefghijklmnopqrstuvwxyz234567").WithPadding(base32.NoPadding)

// IDLen is the length of an agent id: 52 characters, the SHA-256 of the
// agent's public key in idEncoding.
const IDLen = 52

// ShortIDLen is the length of ShortID's result: the first eight
// characters of an id in two groups of four, "ttj3-5jp3".
const ShortIDLen = 9

// Identity is an agent's long-term key pair and self-signed certificate.
// Its ID is derived from the public key alone, so it survives a renewed
// certificate.
type Identity struct {
	ID   string
	Cert tls.Certificate
}

// LoadIdentity reads the identity kept in dir, creating a new key pair and
// certificate (owner-only files) the first time. It fails, rather than
// replacing anything, when the files exist but cannot be used.
func LoadIdentity(dir string) (*Identity, error) {
	id, err := readIdentity(dir)
	if err == nil || !errors.Is(err, fs.ErrNotExist) {
		return id, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("creating config directory: %w", err)
	}
	keyPEM, certPEM, err := newIdentity()
	if err != nil {
		return nil, err
	}
	// The key goes first: a certificate without its key is useless, a key
	// without a certificate is repaired below on the next start.
	if err := writeExclusive(filepath.Join(dir, keyFile), keyPEM); err != nil {
		if !errors.Is(err, fs.ErrExist) {
			return nil, err
		}
		// Another process created it first: use theirs.
		return readIdentity(dir)
	}
	if err := writeExclusive(filepath.Join(dir, certFile), certPEM); err != nil && !errors.Is(err, fs.ErrExist) {
		return nil, err
	}
	return readIdentity(dir)
}

// ReadID returns the id kept in dir without creating anything; the error
// wraps fs.ErrNotExist when there is no identity yet.
func ReadID(dir string) (string, error) {
	b, err := os.ReadFile(filepath.Join(dir, keyFile))
	if err != nil {
		return "", fmt.Errorf("reading identity: %w", err)
	}
	key, err := parseKey(b)
	if err != nil {
		return "", err
	}
	return idOf(key.Public().(ed25519.PublicKey))
}

func readIdentity(dir string) (*Identity, error) {
	keyPath := filepath.Join(dir, keyFile)
	kb, err := os.ReadFile(keyPath)
	if err != nil {
		return nil, fmt.Errorf("reading identity: %w", err)
	}
	key, err := parseKey(kb)
	if err != nil {
		return nil, err
	}
	id, err := idOf(key.Public().(ed25519.PublicKey))
	if err != nil {
		return nil, err
	}
	cb, err := readOrIssue(filepath.Join(dir, certFile), func() ([]byte, error) { return selfSign(key) })
	if err != nil {
		return nil, fmt.Errorf("identity certificate: %w", err)
	}
	cert, err := tls.X509KeyPair(cb, kb)
	if err != nil {
		return nil, fmt.Errorf("identity in %s is unusable (move key.pem and cert.pem away to make a new one): %w", dir, err)
	}
	return &Identity{ID: id, Cert: cert}, nil
}

func parseKey(b []byte) (ed25519.PrivateKey, error) {
	blk, _ := pem.Decode(b)
	if blk == nil || blk.Type != "PRIVATE KEY" {
		return nil, errors.New("identity key: not a PEM private key")
	}
	k, err := x509.ParsePKCS8PrivateKey(blk.Bytes)
	if err != nil {
		return nil, fmt.Errorf("identity key: %w", err)
	}
	key, ok := k.(ed25519.PrivateKey)
	if !ok {
		return nil, errors.New("identity key: not an Ed25519 key")
	}
	return key, nil
}

// idOf is the id of a public key: SHA-256 of its SubjectPublicKeyInfo.
func idOf(pub ed25519.PublicKey) (string, error) {
	spki, err := x509.MarshalPKIXPublicKey(pub)
	if err != nil {
		return "", err
	}
	sum := sha256.Sum256(spki)
	return idEncoding.EncodeToString(sum[:]), nil
}

func newIdentity() (keyPEM, certPEM []byte, err error) {
	_, key, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, nil, err
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		return nil, nil, err
	}
	certPEM, err = selfSign(key)
	if err != nil {
		return nil, nil, err
	}
	return pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), certPEM, nil
}

func selfSign(key ed25519.PrivateKey) ([]byte, error) {
	serial, err := rand.Int(rand.Reader, new(big.Int).Lsh(big.NewInt(1), 127))
	if err != nil {
		return nil, err
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber: serial,
		Subject:      pkix.Name{CommonName: "lanshare"},
		NotBefore:    now.Add(-time.Hour),
		NotAfter:     now.AddDate(30, 0, 0),
		KeyUsage:     x509.KeyUsageDigitalSignature,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth, x509.ExtKeyUsageClientAuth},
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, key.Public(), key)
	if err != nil {
		return nil, fmt.Errorf("creating certificate: %w", err)
	}
	return pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), nil
}

// writeExclusive creates path owner-only with data; it fails with
// fs.ErrExist if path exists. The data is written to a temporary file and
// linked into place, so path never holds a partial file.
func writeExclusive(path string, data []byte) error {
	tmp, err := os.CreateTemp(filepath.Dir(path), ".lanshare-id-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return err
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Sync(); err != nil {
		tmp.Close()
		return err
	}
	if err := tmp.Close(); err != nil {
		return err
	}
	return os.Link(tmp.Name(), path)
}

// An id has two spellings for people, and only these: the short form,
// ShortID, where space is short (peers, history, logs, folder names), and
// the full form, GroupID, where a key is checked or chosen (id, trust,
// trusted). The short form is the full form's first two groups, so the
// one is visibly a prefix of the other, and both start with the four
// characters of the instance label ("bob (ttj3)"). JSON output and the
// files the agent keeps hold the plain 52-character id.

// ShortID is the first eight characters of id in two groups of four
// ("ttj3-5jp3"), enough to tell the agents on one LAN apart; it is also an
// id prefix every command that takes one accepts. A LocalSend id keeps
// its prefix: "ls-3f2a-9c1b".
func ShortID(id string) string {
	n := 8
	if strings.HasPrefix(id, LocalSendIDPrefix) {
		n += len(LocalSendIDPrefix)
	}
	return GroupID(id[:min(len(id), n)])
}

// GroupID spells id in groups of four for reading aloud and comparing:
// "abcd-efgh-...", and "ls-3f2a-9c1b-..." for a LocalSend id.
func GroupID(id string) string {
	var b strings.Builder
	if rest, ok := strings.CutPrefix(id, LocalSendIDPrefix); ok {
		b.WriteString(LocalSendIDPrefix)
		id = rest
	}
	for i := 0; i < len(id); i += 4 {
		if i > 0 {
			b.WriteByte('-')
		}
		b.WriteString(id[i:min(i+4, len(id))])
	}
	return b.String()
}

// ParseID returns the id s spells, in plain or grouped form (any case),
// or "" when s is not a whole id. A LocalSend id is "ls" and 64 hex
// digits, dashes anywhere after "ls" ignored ("LS-3F2A-9C1B-...").
func ParseID(s string) string {
	lower := strings.ToLower(s)
	if rest, ok := strings.CutPrefix(lower, "ls"); ok {
		hex := strings.ReplaceAll(rest, "-", "")
		if len(hex) == localSendIDLen-len(LocalSendIDPrefix) && isLowerHex(hex) {
			return LocalSendIDPrefix + hex
		}
	}
	id := strings.ReplaceAll(lower, "-", "")
	if !validAgentID(id) {
		return ""
	}
	return id
}

// readOrIssue reads the certificate at path; when it is missing (a key
// without its certificate: a first start cut short) it writes the one
// issue makes, exclusively, and when another process wrote one first, it
// reads theirs.
func readOrIssue(path string, issue func() ([]byte, error)) ([]byte, error) {
	cb, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		if cb, err = issue(); err == nil {
			err = writeExclusive(path, cb)
		}
		if errors.Is(err, fs.ErrExist) {
			cb, err = os.ReadFile(path)
		}
	}
	return cb, err
}
