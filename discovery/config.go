package discovery

import (
	"fmt"
	"os"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"
)

// DefaultTTL is the TTL of the host records we publish (SRV, A, AAAA), and
// so how long a peer that dies without a goodbye stays in other tables.
const DefaultTTL = 120 * time.Second

// ServiceTTL is the TTL of our PTR and TXT records, which name no host:
// 75 minutes, as RFC 6762 §10 recommends (and avahi sends). A peer is
// listed only while its SRV lives, so this does not keep a dead peer
// listed; it lets caches (avahi's among them) hold our PTR and TXT.
const ServiceTTL = 75 * time.Minute

const (
	maxNameLen    = 200
	maxIDLen      = 128
	maxVersionLen = 32
)

// Config configures a Service.
type Config struct {
	// Name is the display name (required). The DNS-SD instance label is
	// derived from it and ID; see InstanceName.
	Name string
	// ID is the agent's stable id (required), published as TXT "id".
	ID string
	// Version is our protocol version (required), published as TXT "v".
	Version string
	// Port is the TCP port peers connect to (required).
	Port int
	// Host is the host label published as the SRV target "<Host>.local.",
	// with our A/AAAA records; the name is never resolved: those records
	// carry the addresses of the interfaces we serve. Zero means a name of
	// our own: the machine's host name made into a valid label, a hyphen
	// and the id suffix of InstanceName ("bobs-laptop-3fa2"), cut to fit a
	// label. Not the bare machine name: the machine's own mDNS responder
	// (avahi, mDNSResponder) owns "<host>.local." with the addresses it
	// picks, which are not ours (avahi leaves out link-local IPv6
	// addresses when an interface has others), and avahi takes other
	// address records for its name as a conflict and renames the machine
	// "<host>-2.local." We never probe, so our name must be one nobody
	// else claims.
	Host string
	// Ifaces names the interfaces to serve. Empty means every up,
	// multicast-capable, non-loopback interface with an address, or the
	// loopback interface when there is no such interface. Interfaces that
	// appear or go away while running are picked up.
	Ifaces []string
	// TTL is the TTL of our records, whole seconds from 1s to 75m. Zero
	// means DefaultTTL.
	TTL time.Duration
	// Logf receives rare diagnostic lines (rate-limited). Nil discards them.
	Logf func(format string, args ...any)
}

// DefaultConfig returns a Config with TTL filled in; the caller sets Name,
// ID, Version and Port. Host is left zero, so New derives it from the
// machine's host name and ID (see Config.Host).
func DefaultConfig() Config {
	return Config{TTL: DefaultTTL}
}

// defaultHost returns the host label an agent with id publishes when
// Config.Host is zero (see there).
func defaultHost(id string) string {
	h, err := os.Hostname()
	if err != nil {
		h = ""
	}
	return hostFor(h, id)
}

// hostFor is defaultHost on a machine called machine: its name made into a
// valid label ("lanshare" if nothing is left), a hyphen and the id suffix.
func hostFor(machine, id string) string {
	suffix := "-" + idSuffix(id)
	label := hostLabel(machine)
	if len(label) > maxLabel-len(suffix) {
		label = strings.TrimRight(label[:maxLabel-len(suffix)], "-")
	}
	return label + suffix
}

// Validate reports the first problem with c, wrapping ErrInvalidConfig.
func (c Config) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrInvalidConfig, fmt.Sprintf(format, args...))
	}
	switch {
	case c.Name == "":
		return bad("missing Name")
	case len(c.Name) > maxNameLen:
		return bad("Name longer than %d bytes", maxNameLen)
	case !printable(c.Name):
		return bad("Name %q is not printable UTF-8", c.Name)
	case c.ID == "":
		return bad("missing ID")
	case len(c.ID) > maxIDLen:
		return bad("ID longer than %d bytes", maxIDLen)
	case !printable(c.ID) || strings.ContainsAny(c.ID, " \t"):
		return bad("ID %q must be printable without spaces", c.ID)
	case c.Version == "":
		return bad("missing Version")
	case len(c.Version) > maxVersionLen || !printable(c.Version):
		return bad("Version %q must be printable, at most %d bytes", c.Version, maxVersionLen)
	case c.Port < 1 || c.Port > 65535:
		return bad("Port %d out of range 1-65535", c.Port)
	case c.Host != "" && !validHostLabel(c.Host):
		return bad("Host %q is not a DNS label (letters, digits, hyphens; at most 63)", c.Host)
	case c.TTL != 0 && (c.TTL < time.Second || c.TTL > 75*time.Minute || c.TTL%time.Second != 0):
		return bad("TTL %v must be whole seconds between 1s and 75m", c.TTL)
	}
	for _, n := range c.Ifaces {
		if n == "" {
			return bad("empty interface name")
		}
	}
	return nil
}

func printable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		if !unicode.IsPrint(r) {
			return false
		}
	}
	return true
}

// withDefaults fills zero Host, TTL and Logf.
func (c Config) withDefaults() Config {
	if c.Host == "" {
		c.Host = defaultHost(c.ID)
	}
	if c.TTL == 0 {
		c.TTL = DefaultTTL
	}
	if c.Logf == nil {
		c.Logf = func(string, ...any) {}
	}
	return c
}

// txtPairs is the TXT record we publish.
func (c Config) txtPairs() [][2]string {
	return [][2]string{{txtID, c.ID}, {txtVersion, c.Version}, {txtName, c.Name}}
}
