package peer

import (
	"crypto/ed25519"
	"crypto/x509"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func TestIdentityCreatedOnceOwnerOnlyAndStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if _, err := ReadID(dir); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("ReadID before any identity: %v, want fs.ErrNotExist", err)
	}
	first, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if len(first.ID) != IDLen || strings.Trim(first.ID, "abcdefghijklmnopqrstuvwxyz234567") != "" {
		t.Errorf("id %q: want %d characters of lower-case base32", first.ID, IDLen)
	}
	for _, f := range []string{keyFile, certFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	again, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID {
		t.Errorf("id changed between loads: %s then %s", first.ID, again.ID)
	}
	if id, err := ReadID(dir); err != nil || id != first.ID {
		t.Errorf("ReadID = %q, %v; want %q", id, err, first.ID)
	}
	// The id is the fingerprint of the certificate's public key.
	cert, err := x509.ParseCertificate(first.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := idOf(cert.PublicKey.(ed25519.PublicKey)); got != first.ID {
		t.Errorf("certificate's key has id %s, identity says %s", got, first.ID)
	}
	other, err := LoadIdentity(filepath.Join(t.TempDir(), "other"))
	if err != nil {
		t.Fatal(err)
	}
	if other.ID == first.ID {
		t.Error("two new identities share an id")
	}
}

func TestIdentityCertificateRecreatedFromKey(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, certFile)); err != nil {
		t.Fatal(err)
	}
	again, err := LoadIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.ID != first.ID {
		t.Errorf("id changed when only the certificate was renewed: %s then %s", first.ID, again.ID)
	}
}

func TestIdentityCorruptKeyIsAnErrorNotReplaced(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, keyFile), []byte("garbage"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := LoadIdentity(dir); err == nil {
		t.Fatal("LoadIdentity accepted a corrupt key")
	}
	if b, _ := os.ReadFile(filepath.Join(dir, keyFile)); string(b) != "garbage" {
		t.Errorf("corrupt key was replaced: %q", b)
	}
}

// TestOneShortAndOneFullIDSpelling pins the two spellings of an id: the
// short one is the full one's first two groups.
func TestOneShortAndOneFullIDSpelling(t *testing.T) {
	for _, tc := range []struct{ id, group, short string }{
		{"abcdefghij", "abcd-efgh-ij", "abcd-efgh"},
		{"abcdef", "abcd-ef", "abcd-ef"},
		{"abcd", "abcd", "abcd"},
		{"", "", ""},
	} {
		if g := GroupID(tc.id); g != tc.group {
			t.Errorf("GroupID(%q) = %q, want %q", tc.id, g, tc.group)
		}
		if s := ShortID(tc.id); s != tc.short {
			t.Errorf("ShortID(%q) = %q, want %q", tc.id, s, tc.short)
		}
	}
}
