package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"

	"github.com/lanshare/lanshare/discovery"
)

// staticFile holds the static peers in the config directory.
const staticFile = "static_peers"

// Caps on the static-peers file, which users may edit: it is read whole
// by every send and by the running agent.
const (
	// MaxStaticPeers is how many static peers the list holds at most.
	MaxStaticPeers = 256
	// maxStaticFileSize bounds the file: MaxStaticPeers lines of an
	// address, an id and a name, with room for comments.
	maxStaticFileSize = 256 << 10
	// maxStaticLines bounds the lines of the file, comments included.
	maxStaticLines = 4 * MaxStaticPeers
)

// StaticPeer is a peer named by address, for networks where discovery
// does not reach it (routed segments, VPNs, Wi-Fi that isolates its
// clients): one line of the static-peers file.
type StaticPeer struct {
	// Addr is HOST:PORT as ParseStaticAddr writes it: an IP address or a
	// DNS name (resolved each time it is dialled), and a port.
	Addr string
	// ID is the id the peer held when it was added: a connection to Addr
	// that meets another key is refused. Empty while unverified (added
	// with `lanshare peers add --unverified`): nothing is pinned yet.
	ID string
	// Name is the display name the peer gave when it was added.
	Name string
}

// Instance is how to call p in messages: its instance name ("bob
// (3fa2)"), or its address while it is unverified or nameless.
func (p StaticPeer) Instance() string {
	if p.ID == "" || p.Name == "" {
		return p.Addr
	}
	return discovery.InstanceName(p.Name, p.ID)
}

// matches reports whether what names p: its address as written or as
// ParseStaticAddr writes it, its host alone (for the default port), its
// whole id (plain or grouped), an id prefix of at least four characters,
// its instance name or its name (without regard to case).
func (p StaticPeer) matches(what string) bool {
	if what == "" {
		return false
	}
	if a, err := ParseStaticAddr(what); err == nil && a == p.Addr {
		return true
	}
	if p.ID == "" {
		return false
	}
	if id := ParseID(what); id != "" {
		return id == p.ID
	}
	prefix := strings.ToLower(strings.ReplaceAll(what, "-", ""))
	return (p.Name != "" && (strings.EqualFold(p.Name, what) || strings.EqualFold(discovery.InstanceName(p.Name, p.ID), what))) ||
		(len(prefix) >= 4 && strings.HasPrefix(p.ID, prefix))
}

// ParseStaticAddr checks a static peer's address, HOST or HOST:PORT (an
// IPv6 address with a port in brackets), and returns it as HOST:PORT:
// DefaultPort when none is given, an IP address in its canonical form, a
// DNS name in lower case. It refuses what cannot be a peer: an empty or
// malformed host, a port out of range, an unspecified or multicast
// address.
func ParseStaticAddr(s string) (string, error) {
	host, port := s, strconv.Itoa(DefaultPort)
	if _, err := netip.ParseAddr(s); err != nil {
		if b, ok := strings.CutPrefix(s, "["); ok && strings.HasSuffix(b, "]") {
			host = strings.TrimSuffix(b, "]")
		} else if h, p, err := net.SplitHostPort(s); err == nil {
			host, port = h, p
		} else if strings.Contains(s, "]") || strings.Count(s, ":") > 0 {
			return "", fmt.Errorf("%s is not HOST or HOST:PORT (an IPv6 address with a port goes in brackets: [ADDR]:PORT)", Escape(s))
		}
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return "", fmt.Errorf("%s: port %s is not a number from 1 to 65535", Escape(s), Escape(port))
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if ip.IsUnspecified() || ip.IsMulticast() {
			return "", fmt.Errorf("%s is not a peer's address", Escape(s))
		}
		return net.JoinHostPort(ip.String(), port), nil
	}
	if !validHostName(host) {
		return "", fmt.Errorf("%s: %s is neither an IP address nor a host name", Escape(s), Escape(host))
	}
	return net.JoinHostPort(strings.ToLower(strings.TrimSuffix(host, ".")), port), nil
}

// validHostName reports whether s is a DNS name: dot-separated labels of
// ASCII letters, digits, hyphens and underscores, none longer than 63
// bytes nor starting or ending with a hyphen, 253 bytes in all.
func validHostName(s string) bool {
	s = strings.TrimSuffix(s, ".")
	if s == "" || len(s) > 253 {
		return false
	}
	for _, label := range strings.Split(s, ".") {
		if label == "" || len(label) > 63 || label[0] == '-' || label[len(label)-1] == '-' {
			return false
		}
		for _, c := range label {
			if !('a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_') {
				return false
			}
		}
	}
	return true
}

// StaticPeers is the list of static peers, kept in the config directory
// as a text file, one peer per line: "HOST:PORT ID NAME", with "-" for
// the id of an unverified peer. Users may edit it; a line that does not
// parse is an error (ErrStaticFile) naming the line, as is a file over
// its caps (maxStaticFileSize, maxStaticLines, MaxStaticPeers), and
// comments are not kept when lanshare rewrites the file. Methods are safe
// for concurrent use within one process; every change re-reads the file,
// applies itself and rewrites the file atomically, so changes made by
// other processes in between are kept.
type StaticPeers struct {
	path string

	mu    sync.Mutex
	peers []StaticPeer
}

// LoadStatic reads the static peers kept in dir; a missing file is an
// empty list.
func LoadStatic(dir string) (*StaticPeers, error) {
	s := &StaticPeers{path: filepath.Join(dir, staticFile)}
	peers, err := readStatic(s.path)
	if err != nil {
		return nil, err
	}
	s.peers = peers
	return s, nil
}

// readStatic parses the static-peers file at path; a missing file is
// empty.
func readStatic(path string) ([]StaticPeer, error) {
	f, err := os.Open(path)
	if errors.Is(err, fs.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading static peers: %w", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxStaticFileSize+1))
	if err != nil {
		return nil, fmt.Errorf("reading static peers: %w", err)
	}
	if len(b) > maxStaticFileSize {
		return nil, fmt.Errorf("%w: %s is larger than %d KiB", ErrStaticFile, path, maxStaticFileSize>>10)
	}
	return parseStatic(bytes.NewReader(b), path)
}

// parseStatic parses the lines of a static-peers file; path names it in
// errors.
func parseStatic(r io.Reader, path string) ([]StaticPeer, error) {
	var peers []StaticPeer
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 0, 4096), maxStaticFileSize)
	n := 0
	for sc.Scan() {
		if n++; n > maxStaticLines {
			return nil, fmt.Errorf("%w: %s has more than %d lines", ErrStaticFile, path, maxStaticLines)
		}
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		f := strings.Fields(line)
		if len(f) < 2 {
			return nil, fmt.Errorf("%w: %s line %d: want \"HOST:PORT ID NAME\" (ID - while unverified)", ErrStaticFile, path, n)
		}
		addr, err := ParseStaticAddr(f[0])
		if err != nil {
			return nil, fmt.Errorf("%w: %s line %d: %w", ErrStaticFile, path, n, err)
		}
		p := StaticPeer{Addr: addr}
		if f[1] != "-" {
			if p.ID = ParseID(f[1]); p.ID == "" {
				return nil, fmt.Errorf("%w: %s line %d: %s is not an id (52 characters a-z, 2-7; - while unverified)", ErrStaticFile, path, n, Escape(f[1]))
			}
		}
		// Kept as written (names are escaped where they are shown):
		// cleaning is for what lanshare writes, and is not idempotent.
		p.Name = strings.Join(f[2:], " ")
		if slices.ContainsFunc(peers, func(q StaticPeer) bool { return q.Addr == p.Addr }) {
			return nil, fmt.Errorf("%w: %s line %d: %s is listed twice", ErrStaticFile, path, n, Escape(p.Addr))
		}
		if len(peers) == MaxStaticPeers {
			return nil, fmt.Errorf("%w: %s lists more than %d peers", ErrStaticFile, path, MaxStaticPeers)
		}
		peers = append(peers, p)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("%w: %s line %d: %w", ErrStaticFile, path, n+1, err)
	}
	return peers, nil
}

// List returns the static peers, in file order.
func (s *StaticPeers) List() []StaticPeer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.peers)
}

// ByAddr returns the entry for addr as ParseStaticAddr writes it.
func (s *StaticPeers) ByAddr(addr string) (StaticPeer, bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	i := slices.IndexFunc(s.peers, func(p StaticPeer) bool { return p.Addr == addr })
	if i < 0 {
		return StaticPeer{}, false
	}
	return s.peers[i], true
}

// Put adds p, or replaces the entry of its address in place. A new entry
// beyond MaxStaticPeers is ErrStaticFull.
func (s *StaticPeers) Put(p StaticPeer) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return err
	}
	p.Name = cleanName(p.Name)
	if i := slices.IndexFunc(s.peers, func(q StaticPeer) bool { return q.Addr == p.Addr }); i >= 0 {
		s.peers[i] = p
	} else {
		if len(s.peers) >= MaxStaticPeers {
			return fmt.Errorf("%w: the list holds %d already; remove one first (lanshare peers remove)", ErrStaticFull, MaxStaticPeers)
		}
		s.peers = append(s.peers, p)
	}
	return s.saveLocked()
}

// Remove removes the entries that what names (see StaticPeer.matches:
// an address, a host, a name, an instance name, an id or id prefix) and
// returns them; none is ErrNotStatic.
func (s *StaticPeers) Remove(what string) ([]StaticPeer, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if err := s.reloadLocked(); err != nil {
		return nil, err
	}
	var gone []StaticPeer
	s.peers = slices.DeleteFunc(s.peers, func(p StaticPeer) bool {
		if p.matches(what) {
			gone = append(gone, p)
			return true
		}
		return false
	})
	if len(gone) == 0 {
		return nil, fmt.Errorf("%w %s", ErrNotStatic, Escape(what))
	}
	return gone, s.saveLocked()
}

// reloadLocked re-reads the file before a change, so that a change made
// by another process in between is not written over. s.mu must be held.
func (s *StaticPeers) reloadLocked() error {
	peers, err := readStatic(s.path)
	if err != nil {
		return err
	}
	s.peers = peers
	return nil
}

func (s *StaticPeers) saveLocked() error {
	if err := writeAtomic(s.path, formatStatic(s.peers)); err != nil {
		return fmt.Errorf("saving static peers: %w", err)
	}
	return nil
}

// formatStatic is the static-peers file that lists peers, which parseStatic
// reads back as they are.
func formatStatic(peers []StaticPeer) []byte {
	var b bytes.Buffer
	b.WriteString("# lanshare static peers, one per line: HOST:PORT ID NAME\n")
	b.WriteString("# ID is the key the address must hold (- while unverified: lanshare peers add\n")
	b.WriteString("# HOST:PORT checks and pins it). Kept by lanshare peers add and remove.\n")
	for _, p := range peers {
		id := p.ID
		if id == "" {
			id = "-"
		}
		fmt.Fprintf(&b, "%s %s %s\n", p.Addr, id, p.Name)
	}
	return b.Bytes()
}

// writeAtomic replaces the file at path with data, owner-only: written
// to a temporary file in the same directory, synced, then renamed over
// it, so that a reader sees the old file or the new one, never a part.
func writeAtomic(path string, data []byte) error {
	dir := filepath.Dir(path)
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return err
	}
	tmp, err := os.CreateTemp(dir, "."+filepath.Base(path)+"-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(data)
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
		err = os.Rename(tmp.Name(), path)
	}
	return err
}
