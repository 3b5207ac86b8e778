package discovery

import (
	"errors"
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
