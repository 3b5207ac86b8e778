package peer

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
)

// closedAddr is a loopback address where nothing listens.
func closedAddr(t testing.TB, network, host string) string {
	t.Helper()
	ln, err := net.Listen(network, net.JoinHostPort(host, "0"))
	if err != nil {
		t.Skipf("no %s loopback here: %v", network, err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestUnreachableNamesPeerAndBestAddress: when no address of a peer
// answers, the error names the peer and the address a person knows it by
// (IPv4 before IPv6), not whichever was tried last.
func TestUnreachableNamesPeerAndBestAddress(t *testing.T) {
	id, err := LoadIdentity(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	v4, v6 := closedAddr(t, "tcp4", "127.0.0.1"), closedAddr(t, "tcp6", "::1")
	s := Sender{Identity: id}
	src := writeTree(t, map[string]string{"f": "x"})
	_, err = s.Send(context.Background(), Target{Name: "bob (3fa2)", DisplayName: "bob", Addrs: []string{v4, v6}},
		collect(t, src+"/f"), SendOptions{Name: "me", Retries: -1})
	var ne *net.OpError
	if !errors.As(err, &ne) || ne.Op != "dial" {
		t.Fatalf("send error %v, want a dial error", err)
	}
	if msg := err.Error(); !strings.HasPrefix(msg, "cannot reach bob (3fa2) at any of its 2 addresses: connecting to "+v4+": ") {
		t.Errorf("send error %q, want it to name bob (3fa2) and %s", msg, v4)
	}
	if addrRank("[fe80::1%eth0]:52741") >= addrRank("[2001:db8::1]:52741") ||
		addrRank("[2001:db8::1]:52741") >= addrRank("10.0.0.2:52741") ||
		addrRank("169.254.1.1:52741") >= addrRank("192.168.1.20:52741") {
		t.Error("addrRank does not prefer routable IPv4, then IPv6, then link-local")
	}
}
