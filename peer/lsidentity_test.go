package peer

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/rsa"
	"crypto/x509"
	"encoding/pem"
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lanshare/lanshare/proto/localsend"
)

func TestLocalSendIdentityCreatedOnceOwnerOnlyAndStable(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	first, err := LoadLocalSendIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range []string{lsKeyFile, lsCertFile} {
		fi, err := os.Stat(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	cert, err := x509.ParseCertificate(first.Cert.Certificate[0])
	if err != nil {
		t.Fatal(err)
	}
	if key, ok := cert.PublicKey.(*ecdsa.PublicKey); !ok || key.Curve != elliptic.P256() {
		t.Errorf("certificate key %T, want ECDSA P-256 as LocalSend's rcgen makes", cert.PublicKey)
	}
	if cert.Subject.CommonName != "LocalSend User" || cert.NotAfter.Year() < 4000 || cert.CheckSignature(cert.SignatureAlgorithm, cert.RawTBSCertificate, cert.Signature) != nil {
		t.Errorf("certificate %v valid until %v: want a self-signed \"LocalSend User\" that never expires", cert.Subject, cert.NotAfter)
	}
	if first.Fingerprint != localsend.Fingerprint(cert.Raw) || !localsend.IsCertFingerprint(first.Fingerprint) ||
		strings.ToUpper(first.Fingerprint) != first.Fingerprint {
		t.Errorf("fingerprint %q: want upper-case hex SHA-256 of the certificate", first.Fingerprint)
	}
	if first.ID() != "ls-"+strings.ToLower(first.Fingerprint) {
		t.Errorf("ID() = %q", first.ID())
	}
	again, err := LoadLocalSendIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if again.Fingerprint != first.Fingerprint {
		t.Errorf("fingerprint changed between loads: %s then %s", first.Fingerprint, again.Fingerprint)
	}
	// The agent's own identity is another, untouched.
	if _, err := os.Stat(filepath.Join(dir, keyFile)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("LoadLocalSendIdentity touched %s: %v", keyFile, err)
	}
}

func TestLocalSendIdentityConcurrentFirstLoadsAgree(t *testing.T) {
	dir := t.TempDir()
	var wg sync.WaitGroup
	got := make([]string, 3)
	errs := make([]error, len(got))
	for i := range got {
		wg.Add(1)
		go func() {
			defer wg.Done()
			id, err := LoadLocalSendIdentity(dir)
			errs[i] = err
			if err == nil {
				got[i] = id.Fingerprint
			}
		}()
	}
	wg.Wait()
	for i := range got {
		if errs[i] != nil || got[i] != got[0] {
			t.Fatalf("concurrent first loads: %v %v", got, errs)
		}
	}
}

func TestLocalSendIdentityUnusableFilesAreErrorsNotReplaced(t *testing.T) {
	ed := t.TempDir()
	if _, err := LoadIdentity(ed); err != nil {
		t.Fatal(err)
	}
	edKey, err := os.ReadFile(filepath.Join(ed, keyFile))
	if err != nil {
		t.Fatal(err)
	}
	for name, content := range map[string][]byte{"garbage": []byte("garbage"), "an Ed25519 key": edKey} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, lsKeyFile), content, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadLocalSendIdentity(dir); err == nil {
			t.Errorf("%s: LoadLocalSendIdentity accepted it", name)
		}
		if b, _ := os.ReadFile(filepath.Join(dir, lsKeyFile)); string(b) != string(content) {
			t.Errorf("%s: the key file was replaced", name)
		}
	}
}

func TestLocalSendIdentityCertificateIssuedForAKeyWithout(t *testing.T) {
	dir := t.TempDir()
	first, err := LoadLocalSendIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.Remove(filepath.Join(dir, lsCertFile)); err != nil {
		t.Fatal(err)
	}
	again, err := LoadLocalSendIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cert.Leaf.PublicKey.(*ecdsa.PublicKey).Equal(first.Cert.Leaf.PublicKey) {
		t.Error("a new key was made where only the certificate was missing")
	}
}

const lsFP = "4BADDE53A7F7CDEEED93189FD898E02BF6B4806CA4C05DE0ACE08319B86552FA"

func TestLocalSendIDSpellings(t *testing.T) {
	id := LocalSendID(lsFP)
	if id != "ls-"+strings.ToLower(lsFP) || !IsLocalSendID(id) || !validID(id) {
		t.Fatalf("LocalSendID = %q", id)
	}
	if LocalSendID(strings.ToLower(lsFP)) != id {
		t.Error("LocalSendID depends on the fingerprint's case")
	}
	for _, bad := range []string{"random string", lsFP[:63], "", lsFP + "0"} {
		if got := LocalSendID(bad); got != "" {
			t.Errorf("LocalSendID(%q) = %q, want none", bad, got)
		}
	}
	if got := LocalSendFingerprint(id); got != lsFP {
		t.Errorf("LocalSendFingerprint = %q", got)
	}
	if got := ShortID(id); got != "ls-4bad-de53" {
		t.Errorf("ShortID = %q, want ls-4bad-de53", got)
	}
	group := GroupID(id)
	if !strings.HasPrefix(group, "ls-4bad-de53-a7f7-") || strings.ReplaceAll(group, "-", "") != "ls"+strings.ToLower(lsFP) {
		t.Errorf("GroupID = %q", group)
	}
	if !strings.HasPrefix(group, ShortID(id)) {
		t.Errorf("the short form %q is not a prefix of the full one %q", ShortID(id), group)
	}
	for _, s := range []string{id, group, strings.ToUpper(group), "ls" + lsFP, "LS-" + lsFP} {
		if got := ParseID(s); got != id {
			t.Errorf("ParseID(%q) = %q, want %q", s, got, id)
		}
	}
	for _, s := range []string{ShortID(id), lsFP, "ls-" + lsFP[:63], "ls-" + lsFP + "0", "ls-" + strings.Repeat("g", 64)} {
		if got := ParseID(s); got != "" {
			t.Errorf("ParseID(%q) = %q, want none", s, got)
		}
	}
	// A lanshare id may start with "ls": it stays a lanshare id.
	agent := "ls" + strings.Repeat("a", IDLen-2)
	if ParseID(agent) != agent || ParseID(GroupID(agent)) != agent || IsLocalSendID(agent) || ShortID(agent) != "lsaa-aaaa" {
		t.Errorf("lanshare id starting with ls: ParseID %q, ShortID %q", ParseID(agent), ShortID(agent))
	}
}

func TestKnownPeersHoldLocalSendDevices(t *testing.T) {
	dir := t.TempDir()
	k, err := LoadKnown(dir)
	if err != nil {
		t.Fatal(err)
	}
	ls := LocalSendID(lsFP)
	other := LocalSendID(strings.Repeat("0", 64))
	agent := fakeID('b')
	if err := k.Pin(ls, "Pixel 9"); err != nil {
		t.Fatal(err)
	}
	if err := k.Pin(agent, "bob"); err != nil {
		t.Fatal(err)
	}
	if err := k.Trust(ls, "Pixel 9"); err != nil {
		t.Fatal(err)
	}
	re, err := LoadKnown(dir) // the file parses with both kinds of id
	if err != nil {
		t.Fatal(err)
	}
	if !re.IsTrusted(ls) || re.IsTrusted(agent) {
		t.Fatalf("after reload: %+v", re.List())
	}
	for typed, want := range map[string][]string{
		"Pixel 9":           {ls},
		"ls-4bad":           {ls},
		"LS-4BAD-DE53":      {ls},
		"ls4bad":            {ls},
		"ls-4ba":            nil, // three hex digits: too short
		"4bad":              nil, // a fingerprint prefix alone is not an id prefix
		"bbbb":              {agent},
		ls:                  nil, // a whole id needs no pin
		ShortID(ls) + "-a7": {ls},
	} {
		if got := re.PinnedTo(typed); strings.Join(got, ",") != strings.Join(want, ",") {
			t.Errorf("PinnedTo(%q) = %v, want %v", typed, got, want)
		}
	}
	// Another certificate under the pinned alias is a changed key.
	err = re.Check(Target{Name: "Pixel 9", DisplayName: "Pixel 9", ID: other, ByName: true, Typed: "Pixel 9"})
	if !errors.Is(err, ErrKeyChanged) || !strings.Contains(err.Error(), "ls-0000-0000-") || !strings.Contains(err.Error(), "lanshare trust --replace ls-0000") {
		t.Errorf("Check of another key under a pinned LocalSend alias: %v", err)
	}
	if err := re.Check(Target{Name: "Pixel 9", DisplayName: "Pixel 9", ID: ls, ByName: true, Typed: "Pixel 9"}); err != nil {
		t.Errorf("Check of the pinned key: %v", err)
	}
	untrusted, _, err := re.Untrust(ShortID(ls))
	if err != nil || len(untrusted) != 1 || untrusted[0].ID != ls || re.IsTrusted(ls) {
		t.Fatalf("Untrust(%s) = %+v, %v", ShortID(ls), untrusted, err)
	}
	if p, ok := re.ByID(ls); !ok || p.Level != Seen || p.Name != "Pixel 9" {
		t.Errorf("after untrust: %+v %v, want the pin kept", p, ok)
	}
	gone, err := re.Forget("LS-4BAD-DE53")
	if err != nil || len(gone) != 1 || gone[0].ID != ls {
		t.Errorf("Forget = %+v, %v", gone, err)
	}
	if got := re.List(); len(got) != 1 || got[0].ID != agent {
		t.Errorf("left: %+v", got)
	}
}

func TestKnownPeersRejectMalformedLocalSendLine(t *testing.T) {
	for _, line := range []string{
		"ls-" + strings.ToUpper(strings.Repeat("a", 64)) + " trusted x", // ids are written in lower case
		"ls-" + strings.Repeat("a", 63) + " trusted x",
		"ls-" + strings.Repeat("g", 64) + " seen x",
	} {
		dir := t.TempDir()
		if err := os.WriteFile(filepath.Join(dir, knownFile), []byte(line+"\n"), 0o600); err != nil {
			t.Fatal(err)
		}
		if _, err := LoadKnown(dir); !errors.Is(err, ErrKnownFile) {
			t.Errorf("%q: %v, want ErrKnownFile", line, err)
		}
	}
}

// TestLocalSendIdentityRSAStillLoads: an identity made before keys were
// ECDSA (RSA-2048, as the Flutter apps make) loads as it is, with its
// fingerprint: the LocalSend devices that know the agent still do.
func TestLocalSendIdentityRSAStillLoads(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "config")
	if err := os.MkdirAll(dir, 0o700); err != nil {
		t.Fatal(err)
	}
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certPEM, err := lsSelfSign(key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, lsKeyFile), pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der}), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, lsCertFile), certPEM, 0o600); err != nil {
		t.Fatal(err)
	}
	blk, _ := pem.Decode(certPEM)
	id, err := LoadLocalSendIdentity(dir)
	if err != nil {
		t.Fatal(err)
	}
	if id.Fingerprint != localsend.Fingerprint(blk.Bytes) {
		t.Fatalf("fingerprint %s, want the RSA certificate's %s", id.Fingerprint, localsend.Fingerprint(blk.Bytes))
	}
	if _, ok := id.Cert.PrivateKey.(*rsa.PrivateKey); !ok {
		t.Fatalf("key %T, want the RSA key kept", id.Cert.PrivateKey)
	}
}
