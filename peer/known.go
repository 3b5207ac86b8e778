package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"

	"github.com/lanshare/lanshare/discovery"
)

// knownFile holds the known peers in the config directory.
const knownFile = "known_peers"

// Trust levels of a known peer.
const (
	// Seen peers were pinned on the first send to them: their name is bound
	// to their id, so an impostor taking the name is caught.
	Seen = "seen"
	// Trusted peers were named with `lanshare trust`; they may send to an
	// agent that runs with --accept trusted.
	Trusted = "trusted"
)

// KnownPeer is one line of the known-peers file.
type KnownPeer struct {
	ID    string
	Level string // Seen or Trusted
	Name  string // display name when pinned or trusted; may be empty
}

// Known is the agent's list of known peers, kept in the config directory
// as a text file, one peer per line: "ID LEVEL NAME". Users may edit it; a
// line that does not parse is an error (ErrKnownFile) naming the line, and
// comments are not kept when lanshare rewrites the file. Methods are safe
// for concurrent use within one process; every change re-reads the file,
// applies itself and rewrites the file atomically, so changes made by
// other processes in between are kept.
type Known struct {
	path string

	mu    sync.Mutex
	peers []KnownPeer
}

// LoadKnown reads the known peers kept in dir; a missing file is an empty
// list.
func LoadKnown(dir string) (*Known, error) {
	k := &Known{path: filepath.Join(dir, knownFile)}
	peers, err := readKnown(k.path)
	if err != nil {
		return nil, err
	}
	k.peers = peers
	return k, nil
}

// readKnown parses the known-peers file at path; a missing file is empty.
func readKnown(path string) ([]KnownPeer, error) {
	b, err := os.ReadFile(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading known peers: %w", err)
	}
	var peers []KnownPeer
	sc := bufio.NewScanner(bytes.NewReader(b))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.SplitN(line, " ", 3)
		if len(f) < 2 || !validID(f[0]) || (f[1] != Seen && f[1] != Trusted) {
			return nil, fmt.Errorf("%w: %s line %d: want \"ID seen|trusted NAME\"", ErrKnownFile, path, n)
		}
		p := KnownPeer{ID: f[0], Level: f[1]}
		if len(f) == 3 {
			p.Name = strings.TrimSpace(f[2])
		}
		peers = append(peers, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s: %w", ErrKnownFile, path, err)
	}
	return peers, nil
}

// reloadLocked re-reads the file before a change, so that a change made
// by another process since LoadKnown (an untrust while a long send runs)
// is not written over. k.mu must be held.
func (k *Known) reloadLocked() error {
	peers, err := readKnown(k.path)
	if err != nil {
		return err
	}
	k.peers = peers
	return nil
}

// validID reports whether id is an id as the agent writes it: a lanshare
// agent's or a LocalSend device's (LocalSendID).
func validID(id string) bool {
	return validAgentID(id) || IsLocalSendID(id)
}

func validAgentID(id string) bool {
	return len(id) == IDLen && strings.Trim(id, "abcdefghijklmnopqrstuvwxyz234567") == ""
}

// idHasPrefix reports whether typed (dashes ignored, any case) is a prefix
// of id long enough to name it: four characters, or for a LocalSend id
// "ls" and four hex digits.
func idHasPrefix(id, typed string) bool {
	prefix := strings.ToLower(strings.ReplaceAll(typed, "-", ""))
	need := 4
	if IsLocalSendID(id) {
		id = strings.ReplaceAll(id, "-", "")
		need = len("ls") + 4
	}
	return len(prefix) >= need && strings.HasPrefix(id, prefix)
}

// List returns the known peers, in file order.
func (k *Known) List() []KnownPeer {
	k.mu.Lock()
	defer k.mu.Unlock()
	return slices.Clone(k.peers)
}

// ByID returns the entry for id.
func (k *Known) ByID(id string) (KnownPeer, bool) {
	k.mu.Lock()
	defer k.mu.Unlock()
	i := slices.IndexFunc(k.peers, func(p KnownPeer) bool { return p.ID == id })
	if i < 0 {
		return KnownPeer{}, false
	}
	return k.peers[i], true
}

// ByName returns the entries whose name is name (without regard to case).
func (k *Known) ByName(name string) []KnownPeer {
	name = cleanName(name)
	k.mu.Lock()
	defer k.mu.Unlock()
	var out []KnownPeer
	for _, p := range k.peers {
		if p.Name != "" && strings.EqualFold(p.Name, name) {
			out = append(out, p)
		}
	}
	return out
}

// IsTrusted reports whether id was trusted with Trust.
func (k *Known) IsTrusted(id string) bool {
	p, ok := k.ByID(id)
	return ok && p.Level == Trusted
}

// Pin records id as seen under name, unless id is known already. Another
// id pinned to the same name is left alone: the caller decides what a
// changed key means (see Check).
func (k *Known) Pin(id, name string) error {
	if !validID(id) {
		return fmt.Errorf("%w: %q is not a peer id", ErrCannotTrust, id)
	}
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return err
	}
	if slices.ContainsFunc(k.peers, func(p KnownPeer) bool { return p.ID == id }) {
		return nil
	}
	k.peers = append(k.peers, KnownPeer{ID: id, Level: Seen, Name: cleanName(name)})
	return k.saveLocked()
}

// Trust marks id trusted under name (a known id keeps its place, and
// takes the name). It never forgets another id: other ids pinned or
// trusted under the same name stay, and still pass as that name (two
// devices may share a name). To accept a peer's new key in place of the
// old one, use Replace.
func (k *Known) Trust(id, name string) error {
	return k.trust(id, name, false)
}

// Replace marks id trusted under name and forgets every other id pinned or
// trusted under that name: the user accepts id as the key of the device
// of that name, in place of the old one. With an empty name it is Trust.
func (k *Known) Replace(id, name string) error {
	return k.trust(id, name, true)
}

func (k *Known) trust(id, name string, replace bool) error {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return err
	}
	if !validID(id) {
		return fmt.Errorf("%w: %q is not a peer id", ErrCannotTrust, id)
	}
	name = cleanName(name)
	entry := KnownPeer{ID: id, Level: Trusted, Name: name}
	if i := slices.IndexFunc(k.peers, func(p KnownPeer) bool { return p.ID == id }); i >= 0 {
		k.peers[i] = entry
	} else {
		k.peers = append(k.peers, entry)
	}
	if replace && name != "" {
		k.peers = slices.DeleteFunc(k.peers, func(p KnownPeer) bool {
			return p.ID != id && strings.EqualFold(p.Name, name)
		})
	}
	return k.saveLocked()
}

// PinnedTo returns the ids pinned to exactly what a user typed to name a
// peer, for Resolve to look for first: those whose name it is, whose
// instance name it is ("bob (3fa2)", see discovery.InstanceName), or whose
// id it starts (four characters or more, "ls" and four hex digits for a
// LocalSend id; dashes ignored). A whole id
// returns nil: it names its key without a pin.
func (k *Known) PinnedTo(typed string) []string {
	return k.pinned(typed, false)
}

// pinsFor is PinnedTo, but for an instance name it takes every id pinned
// to its name part, whatever its suffix: what a send by that text must
// reach (see Check).
func (k *Known) pinsFor(typed string) []string {
	return k.pinned(typed, true)
}

func (k *Known) pinned(typed string, namePart bool) []string {
	if k == nil || ParseID(typed) != "" {
		return nil
	}
	name := cleanName(typed)
	part, isInstance := splitInstance(name)
	k.mu.Lock()
	defer k.mu.Unlock()
	var ids []string
	for _, p := range k.peers {
		named := p.Name != "" && (strings.EqualFold(p.Name, name) ||
			strings.EqualFold(discovery.InstanceName(p.Name, p.ID), name) ||
			(namePart && isInstance && strings.EqualFold(p.Name, part)))
		if (named || idHasPrefix(p.ID, typed)) && !slices.Contains(ids, p.ID) {
			ids = append(ids, p.ID)
		}
	}
	return ids
}

// splitInstance returns the name part of an instance name as
// discovery.InstanceName makes it: "NAME (xxxx)", with four ASCII letters
// or digits.
func splitInstance(s string) (string, bool) {
	const n = len(" (xxxx)")
	if len(s) <= n || s[len(s)-n:len(s)-n+2] != " (" || s[len(s)-1] != ')' {
		return "", false
	}
	for _, c := range s[len(s)-n+2 : len(s)-1] {
		if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9') {
			return "", false
		}
	}
	return s[:len(s)-n], true
}

// Check refuses t, a target chosen by anything but its whole id
// (t.ByName), when what the user typed (t.Typed: a pinned name, an
// instance name whose name part is pinned, a prefix of a pinned id) or
// t's display name is pinned to other ids only. Whatever records claim,
// a send by such a name reaches a pinned key or stops here with
// ErrKeyChanged, which says how to accept the new key. A nil Known checks
// nothing.
func (k *Known) Check(t Target) error {
	if k == nil || t.ID == "" || !t.ByName {
		return nil
	}
	for _, c := range []struct {
		what string
		ids  []string
	}{
		{t.Typed, k.pinsFor(t.Typed)},
		{t.DisplayName, k.idsByName(t.DisplayName)},
	} {
		if len(c.ids) == 0 || slices.Contains(c.ids, t.ID) {
			continue
		}
		return fmt.Errorf("%w: %s now has id %s, but %s is pinned to %s; if its owner confirms the new id, accept it with: lanshare trust --replace %s (or send to it by its whole id)",
			ErrKeyChanged, Escape(t.Name), GroupID(t.ID), Escape(c.what), GroupID(c.ids[0]), GroupID(t.ID))
	}
	return nil
}

// idsByName returns the ids of ByName(name); none for an empty name.
func (k *Known) idsByName(name string) []string {
	if name == "" {
		return nil
	}
	var ids []string
	for _, p := range k.ByName(name) {
		ids = append(ids, p.ID)
	}
	return ids
}

// Forget removes the entries that match: an id, an id prefix (as for
// PinnedTo), or a name. It returns what it removed.
func (k *Known) Forget(what string) ([]KnownPeer, error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return nil, err
	}
	var gone []KnownPeer
	k.peers = slices.DeleteFunc(k.peers, func(p KnownPeer) bool {
		if matchesKnown(p, what) {
			gone = append(gone, p)
			return true
		}
		return false
	})
	if len(gone) == 0 {
		return nil, nil
	}
	return gone, k.saveLocked()
}

// Untrust takes the trust away from the trusted entries that match (as
// for Forget) and returns them as they were. Each keeps its name pinned to
// its id, as a send would have pinned it, so an impostor taking the name
// is still caught; an entry trusted without a name pins nothing and goes.
// Entries that match and are only pinned are left alone and returned in
// pinned.
func (k *Known) Untrust(what string) (untrusted, pinned []KnownPeer, err error) {
	k.mu.Lock()
	defer k.mu.Unlock()
	if err := k.reloadLocked(); err != nil {
		return nil, nil, err
	}
	k.peers = slices.DeleteFunc(k.peers, func(p KnownPeer) bool {
		if !matchesKnown(p, what) {
			return false
		}
		if p.Level != Trusted {
			pinned = append(pinned, p)
			return false
		}
		untrusted = append(untrusted, p)
		return p.Name == ""
	})
	if len(untrusted) == 0 {
		return nil, pinned, nil
	}
	for i, p := range k.peers {
		if p.Level == Trusted && matchesKnown(p, what) {
			k.peers[i].Level = Seen
		}
	}
	return untrusted, pinned, k.saveLocked()
}

func matchesKnown(p KnownPeer, what string) bool {
	return (p.Name != "" && strings.EqualFold(p.Name, what)) || idHasPrefix(p.ID, what)
}

// cleanName keeps a name on one line of the file.
func cleanName(name string) string {
	return strings.Join(strings.Fields(Escape(name)), " ")
}

func (k *Known) saveLocked() error {
	var b bytes.Buffer
	b.WriteString("# lanshare known peers, one per line: ID LEVEL NAME\n")
	b.WriteString("# LEVEL is \"trusted\" (may send to an agent run with --accept trusted)\n")
	b.WriteString("# or \"seen\" (name pinned to this id on the first send to it).\n")
	for _, p := range k.peers {
		fmt.Fprintf(&b, "%s %s %s\n", p.ID, p.Level, p.Name)
	}
	dir := filepath.Dir(k.path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, ".known_peers-*")
	if err != nil {
		return fmt.Errorf("saving known peers: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b.Bytes())
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), k.path)
	}
	if err != nil {
		return fmt.Errorf("saving known peers: %w", err)
	}
	return nil
}
