package lsdouble

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// StartIn is Start inside a lab host: the device's listener, its discovery
// sockets (joined on the host's interfaces) and every connection it dials
// (Send, Register, answers to announcements; unless cfg.DialContext is set)
// belong to h's network namespace, whichever thread runs the device's
// goroutines.
func StartIn(t testing.TB, h *netlab.Host, cfg Config) *Device {
	t.Helper()
	if cfg.DialContext == nil {
		cfg.DialContext = func(ctx context.Context, network, addr string) (net.Conn, error) {
			var c net.Conn
			err := h.Do(func() error {
				var err error
				c, err = (&net.Dialer{Timeout: 10 * time.Second}).DialContext(ctx, network, addr)
				return err
			})
			return c, err
		}
	}
	var d *Device
	err := h.Do(func() error {
		var err error
		d, err = New(cfg)
		return err
	})
	if err != nil {
		t.Fatalf("lsdouble in %s: %v", h.NS, err)
	}
	t.Cleanup(func() { _ = d.Close() })
	return d
}
