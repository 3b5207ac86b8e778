package main

import (
	"bytes"
	"net"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/peer"
)

// TestDropPageLine: serve's drop page line names an address a person can
// type (never 0.0.0.0 or ::), the port, and the PIN, or says there is
// none; on a terminal a QR code of the address follows.
func TestDropPageLine(t *testing.T) {
	for _, c := range []struct {
		addr      string
		pin, want string
	}{
		{"192.168.1.20:53317", "482193", "drop page https://192.168.1.20:53317/  PIN 482193"},
		{"[fd77::2]:53317", "482193", "drop page https://[fd77::2]:53317/  PIN 482193"},
		{"127.0.0.1:8443", "", "drop page https://127.0.0.1:8443/  no PIN: anyone on the network can send"},
	} {
		var out, qr bytes.Buffer
		tcp, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		logDropPage(newAgentLog(&out, false), peer.Config{WebPIN: c.pin}, tcp, &qr)
		if !strings.HasSuffix(strings.TrimSpace(out.String()), c.want) {
			t.Errorf("%s: logged %q, want it to end %q", c.addr, out.String(), c.want)
		}
		lines := strings.Split(strings.TrimRight(qr.String(), "\n"), "\n")
		if len(lines) < 10 || len([]rune(lines[0])) != len([]rune(lines[len(lines)-1])) || !strings.Contains(qr.String(), "█") {
			t.Errorf("%s: QR code %q", c.addr, qr.String())
		}
	}
	for _, a := range []string{"0.0.0.0:53317", "[::]:53317"} {
		tcp, _ := net.ResolveTCPAddr("tcp", a)
		if u := dropPageURL(tcp); strings.Contains(u, "0.0.0.0") || strings.Contains(u, "[::]") || !strings.HasSuffix(u, ":53317/") {
			t.Errorf("%s: drop page URL %q", a, u)
		}
	}
}
