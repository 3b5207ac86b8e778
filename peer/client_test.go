package peer

import (
	"context"
	"errors"
	"net"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// TestSendStopsWhenReceiverStops: a receiver that stops during a send
// (its port closes, then its connections) ends the send with
// ErrPeerStopped after one refused reconnection, not after every retry,
// and its other addresses are not tried.
func TestSendStopsWhenReceiverStops(t *testing.T) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.SpaceMargin, cfg.ShutdownGrace = 0, time.Millisecond
	cfg.LocalSend = false // no listener on every interface of this namespace
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, stop := context.WithCancel(context.Background())
	defer stop()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()

	src := writeTree(t, map[string]string{"big.bin": randomBytes(t, 64<<20)})
	other := closedAddr(t, "tcp4", "127.0.0.1")
	to := Target{Name: "bob (" + a.ID()[:4] + ")", DisplayName: "bob", ID: a.ID(), Addrs: []string{a.Addr().String(), other}, ByName: true}
	retries := 0
	rep, err := testSender(t).Send(context.Background(), to, collect(t, filepath.Join(src, "big.bin")), SendOptions{
		Name: "alice",
		Progress: func(p Progress) {
			if p.Bytes >= 8<<20 {
				stop() // the receiver stops while the file streams
			}
		},
		OnRetry: func(Retry) { retries++ },
	})
	if err := <-served; err != nil {
		t.Fatalf("Serve: %v", err)
	}
	var se *StoppedError
	if !errors.Is(err, ErrPeerStopped) || !errors.Is(err, ErrIncomplete) || !errors.As(err, &se) {
		t.Fatalf("send error %v, want ErrPeerStopped and ErrIncomplete", err)
	}
	if se.Peer != "bob" || se.Addr != a.Addr().String() || err.Error() != "bob stopped (nothing listens at "+a.Addr().String()+" any more)" {
		t.Errorf("send error %q (%+v), want it to name bob and the address it reached", err, se)
	}
	if retries > 1 || rep == nil || rep.Retries > 1 {
		t.Errorf("%d retries after the receiver stopped, want at most the one that was refused", retries)
	}
}
