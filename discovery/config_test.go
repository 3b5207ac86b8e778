package discovery

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
)

func validConfig() Config {
	c := DefaultConfig()
	c.Name, c.ID, c.Version, c.Port = "bob", "3fa2c0de", "1", 4242
	return c
}

func TestConfigValidate(t *testing.T) {
	if err := validConfig().Validate(); err != nil {
		t.Fatalf("valid config: %v", err)
	}
	for name, mod := range map[string]func(*Config){
		"no name":        func(c *Config) { c.Name = "" },
		"control char":   func(c *Config) { c.Name = "bob\x00" },
		"bad utf8":       func(c *Config) { c.Name = "\xff" },
		"long name":      func(c *Config) { c.Name = strings.Repeat("x", maxNameLen+1) },
		"no id":          func(c *Config) { c.ID = "" },
		"id with space":  func(c *Config) { c.ID = "a b" },
		"no version":     func(c *Config) { c.Version = "" },
		"port 0":         func(c *Config) { c.Port = 0 },
		"port too big":   func(c *Config) { c.Port = 70000 },
		"host with dot":  func(c *Config) { c.Host = "a.b" },
		"ttl fraction":   func(c *Config) { c.TTL = 1500 * time.Millisecond },
		"ttl too long":   func(c *Config) { c.TTL = 2 * time.Hour },
		"empty iface":    func(c *Config) { c.Ifaces = []string{""} },
		"negative ttl":   func(c *Config) { c.TTL = -time.Second },
		"host too long":  func(c *Config) { c.Host = strings.Repeat("h", 64) },
		"version spaces": func(c *Config) { c.Version = strings.Repeat("v", maxVersionLen+1) },
	} {
		c := validConfig()
		mod(&c)
		if err := c.Validate(); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidConfig", name, err)
		}
		if _, err := New(c); !errors.Is(err, ErrInvalidConfig) {
			t.Errorf("%s: New() = %v, want ErrInvalidConfig", name, err)
		}
	}
}

func TestDefaultsFilledByNew(t *testing.T) {
	c := validConfig()
	c.Host, c.TTL = "", 0
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if s.cfg.TTL != DefaultTTL || !validHostLabel(s.cfg.Host) {
		t.Errorf("defaults: TTL %v host %q", s.cfg.TTL, s.cfg.Host)
	}
	if s.Instance() != "bob (3fa2)" {
		t.Errorf("Instance() = %q", s.Instance())
	}
}

// TestDefaultHostIsNotTheMachineName pins a bug avahi showed: by default
// we published A/AAAA records for "<machine host name>.local.", the name
// the machine's own avahi-daemon owns, with a different address set (we
// include link-local IPv6 addresses, avahi does not), and avahi renamed the
// machine "<host>-2.local.". The default is now a name of our own.
func TestDefaultHostIsNotTheMachineName(t *testing.T) {
	if h := DefaultConfig().Host; h != "" {
		t.Errorf("DefaultConfig().Host = %q, want zero (New fills it from the id)", h)
	}
	c := validConfig()
	s, err := New(c)
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	machine, _ := os.Hostname()
	if s.cfg.Host == hostLabel(machine) || s.cfg.Host != hostFor(machine, c.ID) {
		t.Errorf("default host %q (machine %q)", s.cfg.Host, machine)
	}
	long := strings.Repeat("a", 57) + "-bbbbbb"
	for _, tc := range []struct{ machine, id, want string }{
		{"bobs-laptop.example.com", "3fa2c0de", "bobs-laptop-3fa2"},
		{"Bob's Mac", "3FA2c0de", "Bob-s-Mac-3fa2"},
		{"", "3fa2c0de", "lanshare-3fa2"},
		{"vm", "a-b", "vm-" + idSuffix("a-b")},
		{strings.Repeat("h", 70), "3fa2", strings.Repeat("h", 58) + "-3fa2"},
		{long, "3fa2", strings.Repeat("a", 57) + "-3fa2"}, // no "--" where it was cut
	} {
		got := hostFor(tc.machine, tc.id)
		if got != tc.want || !validHostLabel(got) {
			t.Errorf("hostFor(%q, %q) = %q, want %q (a valid label)", tc.machine, tc.id, got, tc.want)
		}
	}
}

func TestHostLabel(t *testing.T) {
	for in, want := range map[string]string{
		"bobs-laptop.example.com": "bobs-laptop",
		"Bob's Mac":               "Bob-s-Mac",
		"---":                     "lanshare",
		"":                        "lanshare",
	} {
		if got := hostLabel(in); got != want {
			t.Errorf("hostLabel(%q) = %q, want %q", in, got, want)
		}
	}
}

// TestCloseBeforeRunAndTwice: Close is safe without Run and twice; Run after
// Close refuses.
func TestCloseBeforeRunAndTwice(t *testing.T) {
	s, err := New(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Run(t.Context()); !errors.Is(err, ErrClosed) {
		t.Errorf("Run after Close = %v, want ErrClosed", err)
	}
	ch, cancel := s.Subscribe()
	if _, ok := <-ch; ok {
		t.Error("Subscribe after Close gave an open channel")
	}
	cancel()
}
