package peer

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"sync/atomic"
	"testing"
	"time"
)

// lifecycleAgent is an agent made but not serving: LocalSend, the drop
// page and its plain-HTTP server on loopback, no discovery.
func lifecycleAgent(t testing.TB) *Agent {
	t.Helper()
	cfg := webConfig(t)
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return a
}

// assertPortsFree fails t unless every port the agent listened on can be
// listened on again: a listener left open would hold it.
func assertPortsFree(t testing.TB, addrs map[string]net.Addr) {
	t.Helper()
	for what, addr := range addrs {
		ln, err := net.Listen("tcp", addr.String())
		if err != nil {
			t.Errorf("%s port %s still held after Close: %v", what, addr, err)
			continue
		}
		ln.Close()
	}
}

func agentAddrs(a *Agent) map[string]net.Addr {
	return map[string]net.Addr{"lanshare": a.Addr(), "LocalSend": a.LocalSendAddr(), "plain-HTTP": a.WebInsecureHTTPAddr()}
}

// An agent closed without ever serving gives its ports back. The
// LocalSend server's HTTPS listener was closed only by http.Server.Serve
// (when it returns), so an agent that never served, or whose serve
// goroutine found close begun (lsServer.track), kept it open for the
// life of the process.
func TestLocalSendListenerClosedWhenNeverServed(t *testing.T) {
	a := lifecycleAgent(t)
	addrs := agentAddrs(a)
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	assertPortsFree(t, addrs)
}

// The same when Close and Serve start together (an agent stopped at once,
// before or while Serve's goroutines start): whichever wins, every port is
// given back once both have returned.
func TestLocalSendListenerClosedWhenClosedWhileStarting(t *testing.T) {
	for i := 0; i < 50; i++ {
		a := lifecycleAgent(t)
		addrs := agentAddrs(a)
		start, served := make(chan struct{}), make(chan error, 1)
		go func() {
			<-start
			served <- a.Serve(context.Background())
		}()
		close(start)
		a.Close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("Serve still running 10 s after Close")
		}
		assertPortsFree(t, addrs)
		if t.Failed() {
			t.Fatalf("iteration %d", i)
		}
	}
}

// Once Serve stops (its context done), the drop page's plain-HTTP server
// takes no new connection, as the HTTPS server takes none: uploads in
// flight get the shutdown grace, newcomers do not. lsServer.shutdown
// stopped the HTTPS server alone, so a browser could start a new upload
// over plain HTTP all through the grace.
func TestPlainHTTPRefusedWhileServeDrains(t *testing.T) {
	cfg := webConfig(t)
	// The grace outlasts the test: the connection held below keeps the
	// drain waiting until the test lets it go.
	cfg.ShutdownGrace, cfg.HandshakeTimeout = time.Minute, time.Minute
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()

	hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	plain := "http://" + a.WebInsecureHTTPAddr().String() + "/"
	getPlain := func() error {
		resp, err := hc.Get(plain)
		if err != nil {
			return err
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			return fmt.Errorf("GET %s: %s", plain, resp.Status)
		}
		return nil
	}
	waitFor(t, func() bool { return getPlain() == nil })
	// A lanshare connection that says nothing: a transfer in flight as
	// far as the drain knows.
	held, err := net.Dial("tcp", a.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	defer held.Close()
	waitFor(t, func() bool { return a.Status().Transfers == 1 })

	cancel()
	// The HTTPS server has stopped listening: Serve is in its drain.
	waitFor(t, func() bool {
		c, err := net.Dial("tcp", a.LocalSendAddr().String())
		if err == nil {
			c.Close()
		}
		return err != nil
	})
	if err := getPlain(); err == nil {
		t.Error("the plain-HTTP drop page served a new request after Serve began to stop")
	}
	held.Close()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Serve still running 10 s after its last connection ended")
	}
}

// The LocalSend server's close waits for the sessions it ends whoever
// calls it: Agent.Close and Serve's way out both do, at the same time when
// Close stops a serving agent. The second caller returned at once, while
// the first was still ending the sessions, so that Close could close the
// inbox under a session's Batch.Close and return before the session was
// reported.
func TestLocalSendCloseTwiceWaits(t *testing.T) {
	for i := 0; i < 20; i++ {
		var reported atomic.Int32
		cfg := DefaultConfig()
		cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
		cfg.LocalSend, cfg.LocalSendListen = true, "127.0.0.1:0"
		cfg.OnTransfer = func(Incoming) { reported.Add(1) }
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		served := make(chan struct{})
		go func() {
			defer close(served)
			a.ls.serve()
		}()
		c := newLSClient(t, &testAgent{Agent: a}, true)
		if code, _, body := c.prepare([]lsUpload{{name: "a.txt", content: "hello"}}, ""); code != http.StatusOK {
			t.Fatalf("prepare-upload: %d %s", code, body)
		}
		c.hc.CloseIdleConnections()
		// The session is open, waiting for its upload: close ends it.
		start := make(chan struct{})
		seen := make(chan int32, 2)
		for range 2 {
			go func() {
				<-start
				a.ls.close()
				seen <- reported.Load()
			}()
		}
		close(start)
		for range 2 {
			if n := <-seen; n != 1 {
				t.Fatalf("iteration %d: a close returned with %d sessions reported, want 1", i, n)
			}
		}
		<-served
		a.Close()
	}
}
