package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"runtime/debug"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// dialFrom opens a TLS connection as s to the agent at addr from the
// loopback address 127.0.0.ip.
func dialFrom(t testing.TB, s *Sender, ip byte, addr, want string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}, Timeout: 5 * time.Second}
	raw, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	tc := tls.Client(raw, s.Identity.ClientTLS(want))
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := tc.HandshakeContext(ctx); err != nil {
		raw.Close()
		t.Fatal(err)
	}
	t.Cleanup(func() { raw.Close() })
	return tc
}

// offerOne writes a hello and an offer of one file of size bytes on c.
func offerOne(t testing.TB, c net.Conn, name string, size uint64) {
	t.Helper()
	if err := proto.WriteHello(c, proto.NewHello("test")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(c, proto.Offer{Entries: []proto.Entry{{Path: name, Kind: proto.KindFile, Size: size, Mode: 0o644}}}); err != nil {
		t.Fatal(err)
	}
}

// readAnswer reads the receiver's hello and answer on c.
func readAnswer(c net.Conn) (proto.Answer, error) {
	if _, err := proto.ReadHello(c); err != nil {
		return proto.Answer{}, err
	}
	return proto.ReadAnswer(c)
}

// serveAgent starts an agent like startAgent, but the test controls its
// stop: it returns the agent, a cancel for Serve's context, and a channel
// that yields Serve's result.
func serveAgent(t testing.TB, edit func(*Config)) (*Agent, context.CancelFunc, <-chan error) {
	t.Helper()
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.SpaceMargin = 0
	cfg.LocalSend = false // no listener on every interface of this namespace
	if edit != nil {
		edit(&cfg)
	}
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- a.Serve(ctx) }()
	t.Cleanup(func() {
		cancel()
		a.Close()
	})
	return a, cancel, done
}

// TestPlanThatBlocksIsDroppedAtHandshakeDeadline: an offer whose planning
// blocks (here on the inbox lock, as behind a slow commit or a claim) is
// dropped at the handshake deadline, not held for as long as it blocks.
func TestPlanThatBlocksIsDroppedAtHandshakeDeadline(t *testing.T) {
	const deadline = 500 * time.Millisecond
	bob := startAgent(t, func(c *Config) { c.HandshakeTimeout = deadline })
	bob.inbox.mu.Lock()
	locked := true
	unlock := func() {
		if locked {
			locked = false
			bob.inbox.mu.Unlock()
		}
	}
	defer unlock()

	start := time.Now()
	c, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offerOne(t, c, "blocked.txt", 10)
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	_, err = readAnswer(c)
	el := time.Since(start)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("the connection was still open 5 s after its %v handshake deadline", deadline)
	}
	if err == nil {
		t.Fatal("answered while the plan was blocked")
	}
	if el > deadline+time.Second {
		t.Errorf("dropped after %v, want about %v", el, deadline)
	}
	unlock()
	if in := bob.next(t); in.Err == nil {
		t.Error("the blocked connection's transfer reported success")
	}
	assertEmpty(t, bob.dir)
}

// TestServeReturnsWithinGraceWhileConnectionsStuck: on stop, Serve and
// then Close return within ShutdownGrace plus a small bound whatever the
// connections are doing, even blocked on a lock rather than on the
// network.
func TestServeReturnsWithinGraceWhileConnectionsStuck(t *testing.T) {
	const grace = 300 * time.Millisecond
	a, cancel, served := serveAgent(t, func(c *Config) {
		c.ShutdownGrace = grace
		c.HandshakeTimeout = time.Minute // the deadline must not be what frees them
	})
	a.inbox.mu.Lock()
	var once sync.Once
	unlock := func() { once.Do(a.inbox.mu.Unlock) }
	t.Cleanup(func() {
		unlock()
		// The stuck goroutines end once unblocked, before the folders go.
		if !a.waitConns(time.Now().Add(5 * time.Second)) {
			t.Error("connections did not end once unblocked")
		}
	})

	const stuck = 3
	for range stuck {
		c, _, err := testSender(t).dial(context.Background(), a.Addr().String(), a.ID())
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		offerOne(t, c, "stuck.txt", 10)
	}
	// Each connection takes its offer's share of the memory budget once
	// the offer is read, just before it plans and blocks.
	var enc strings.Builder
	if err := proto.WriteOffer(&enc, proto.Offer{Entries: []proto.Entry{{Path: "stuck.txt", Kind: proto.KindFile, Size: 10, Mode: 0o644}}}); err != nil {
		t.Fatal(err)
	}
	want := stuck * offerCharge(enc.Len()-proto.HeaderSize, 1)
	waitFor(t, func() bool { return a.inbox.mem.inUse() >= want })

	start := time.Now()
	cancel()
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
		if el, max := time.Since(start), grace+abortWait+time.Second; el > max {
			t.Errorf("Serve returned %v after the stop, want within %v", el, max)
		}
	case <-time.After(grace + abortWait + 5*time.Second):
		unlock()
		t.Fatal("Serve did not return while connections were stuck")
	}
	// Close, as `lanshare serve` calls it next, adds no second wait.
	a.Close()
	if el, max := time.Since(start), grace+abortWait+time.Second; el > max {
		t.Errorf("Serve and Close returned %v after the stop, want within %v", el, max)
	}
}

// TestTrickleAfterAnswerIsDropped: a sender that trickles a byte at a time
// after the answer, each within the idle timeout, is dropped once a rate
// window passes with less than the minimum rate.
func TestTrickleAfterAnswerIsDropped(t *testing.T) {
	const window = 500 * time.Millisecond
	bob := startAgent(t, func(c *Config) {
		c.IdleTimeout = 10 * time.Second
		c.MinRate, c.RateWindow = 4<<10, window
	})
	c, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	offerOne(t, c, "trickle.bin", 1<<20)
	if a, err := readAnswer(c); err != nil || a.Code != proto.CodeOK {
		t.Fatalf("answer %+v, %v", a, err)
	}
	start := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := c.Write([]byte{0}); err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	in := bob.next(t)
	if !errors.Is(in.Err, ErrTooSlow) {
		t.Fatalf("trickling transfer ended with %v, want ErrTooSlow", in.Err)
	}
	if el := time.Since(start); el > window+time.Second {
		t.Errorf("trickle dropped after %v, want about %v", el, window)
	}
	assertNoTemps(t, bob.dir)
}

// TestStrangersHoldingEverySlotAreEvicted: strangers who hold every slot
// with transfers that keep above the minimum rate keep a new sender out
// for no longer than EvictAfter (plus a retry): once one of them is that
// old, the new sender's next connection is let in, and a hog gives way.
//
// It asserts on the agent's own clock (when it accepted each connection),
// not on how fast a loaded machine runs the test: the hogs keep far above
// the default minimum rate (64 KiB per 30 s) however seldom they are
// scheduled, and the bound is "no connection accepted after the hogs
// became evictable was turned away", whatever the retries' pauses.
func TestStrangersHoldingEverySlotAreEvicted(t *testing.T) {
	const evictAfter = time.Second
	bob := startAgent(t, func(c *Config) {
		c.MaxConns, c.MaxConnsPerHost = 2, 2
		c.EvictAfter = evictAfter
	})
	stop := make(chan struct{})
	var wg sync.WaitGroup
	defer func() {
		close(stop)
		wg.Wait()
	}()
	for i := range 2 {
		c := dialFrom(t, testSender(t), 3, bob.Addr().String(), bob.ID())
		offerOne(t, c, fmt.Sprintf("hog%d.bin", i), 1<<30)
		if a, err := readAnswer(c); err != nil || a.Code != proto.CodeOK {
			t.Fatalf("answer %+v, %v", a, err)
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			tick := time.NewTicker(20 * time.Millisecond)
			defer tick.Stop()
			chunk := make([]byte, 512*(i+1))
			for {
				select {
				case <-stop:
					return
				case <-tick.C:
					if _, err := c.Write(chunk); err != nil {
						return
					}
				}
			}
		}()
	}
	// Every slot is held, by the two hogs; from evictable on, the older
	// one may be evicted.
	hogs := map[uint64]bool{}
	var evictable time.Time
	bob.Agent.mu.Lock()
	open := bob.open
	for c := range bob.conns {
		hogs[c.id] = true
		if evictable.IsZero() || c.start.Add(evictAfter).Before(evictable) {
			evictable = c.start.Add(evictAfter)
		}
	}
	bob.Agent.mu.Unlock()
	if open != 2 || len(hogs) != 2 {
		t.Fatalf("%d slots held by %d connections, want both by the two hogs", open, len(hogs))
	}
	// One send, as `lanshare send` makes it: turned away while every slot
	// is held, it retries by itself until a slot is freed for it.
	rep, err := sendFile(t, testSender(t), bob.target(), "new.txt", "got in")
	if err != nil {
		t.Fatalf("a new sender was kept out (%v after the hogs became evictable): %v", time.Since(evictable), err)
	}
	if b, err := os.ReadFile(filepath.Join(bob.dir, "new.txt")); err != nil || string(b) != "got in" {
		t.Errorf("new.txt: %q, %v", b, err)
	}
	// A hog was evicted (neither ended otherwise: the slot was not freed
	// by a drop), and every connection of the new sender that the agent
	// accepted once the hogs were evictable got in.
	var evicted, gotIn bool
	for !evicted || !gotIn {
		in := bob.next(t)
		switch {
		case hogs[in.ID] && errors.Is(in.Err, ErrEvicted):
			evicted = true
		case hogs[in.ID]:
			t.Fatalf("a hog's transfer ended with %v, not evicted", in.Err)
		case in.Err == nil:
			gotIn = true
		case !in.Start.Before(evictable):
			t.Errorf("the new sender's connection accepted %v after the hogs became evictable was turned away: %v",
				in.Start.Sub(evictable), in.Err)
		}
	}
	t.Logf("the send got in after %d retries", rep.Retries)
}

// TestStrangersCannotHoldTheReserve: strangers who fill the slots and the
// trusted reserve do not keep a trusted peer out: a reserve connection
// that has not proved a trusted key gives way to a newcomer.
func TestStrangersCannotHoldTheReserve(t *testing.T) {
	friend := testSender(t)
	bob := startAgent(t, func(c *Config) {
		c.MaxConns, c.MaxConnsPerHost = 2, 2
		c.EvictAfter = time.Hour
	})
	trustIn(t, bob, friend, "alice")
	addr := bob.Addr().String()
	// Two strangers hold the slots, eight more (two per address, the
	// reserve's per-address cap) the reserve, all idle after TCP.
	for _, ip := range []byte{3, 3, 4, 4, 5, 5, 6, 6, 7, 7} {
		d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, ip)}}
		c, err := d.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
	}
	// A third connection from one address is over the reserve's cap.
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.IPv4(127, 0, 0, 4)}}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	_ = c.SetReadDeadline(time.Now().Add(5 * time.Second))
	if _, err := c.Read(make([]byte, 1)); errors.Is(err, os.ErrDeadlineExceeded) {
		t.Error("a third reserve connection from one address was let in")
	}
	start := time.Now()
	retry := time.NewTicker(50 * time.Millisecond)
	defer retry.Stop()
	for {
		_, err := sendFile(t, friend, bob.target(), "vip.txt", "trusted")
		if err == nil {
			break
		}
		if time.Since(start) > reserveHandshake+2*time.Second {
			t.Fatalf("trusted peer kept out %v by strangers in the reserve: %v", time.Since(start), err)
		}
		<-retry.C
	}
	assertTree(t, bob.dir, map[string]string{"vip.txt": "trusted"})
}

// TestTrustedNameWithSlashMakesSafeFolder: with per-peer folders, a peer
// trusted under a name with a slash (or other characters a folder name
// cannot hold) gets a folder with them replaced, and its transfers work.
func TestTrustedNameWithSlashMakesSafeFolder(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.PerPeerFolders = true })
	want := map[string]string{}
	for _, c := range []struct{ name, folder string }{
		{"alice/laptop", "alice_laptop"},
		{"carol: <work>", "carol_ _work_"},
	} {
		friend := testSender(t)
		trustIn(t, bob, friend, c.name)
		if _, err := sendFile(t, friend, bob.target(), "x.txt", c.name); err != nil {
			t.Fatalf("send from a peer trusted as %q: %v", c.name, err)
		}
		folder := c.folder + " (" + ShortID(friend.Identity.ID) + ")"
		want[folder+"/"], want[folder+"/x.txt"] = "", c.name
	}
	assertTree(t, bob.dir, want)
}

// TestMemoryBudgetHeldUnderManyLargeOffers: many connections offering
// large offers at once take no more memory than the budget: offers beyond
// it wait and are refused as busy, and the heap's peak stays within the
// budget plus the connections' buffers.
func TestMemoryBudgetHeldUnderManyLargeOffers(t *testing.T) {
	if testing.Short() {
		t.Skip("offers 32 MiB")
	}
	const (
		budget  = 16 << 20
		conns   = 16
		entries = 5_000
	)
	// One offer of about 2 MiB: 5,000 entries with 400-byte paths.
	var o proto.Offer
	for i := range entries {
		p := fmt.Sprintf("%s/%s-%06d", strings.Repeat("d", 200), strings.Repeat("f", 192), i)
		o.Entries = append(o.Entries, proto.Entry{Path: p, Kind: proto.KindFile, Size: 1, Mode: 0o644})
	}
	var wire strings.Builder
	if err := proto.WriteHello(&wire, proto.NewHello("big")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(&wire, o); err != nil {
		t.Fatal(err)
	}
	o = proto.Offer{}
	payload := []byte(wire.String())
	perOffer := offerCharge(len(payload), entries)
	fit := int(budget / perOffer) // offers the budget holds at once

	// The offers held at once must be read, planned and answered within
	// the handshake deadline, side by side, or the agent drops them at
	// it unanswered. That takes seconds where the machine is loaded and
	// the race detector slows planning tenfold, so the deadline is made
	// from how long one offer takes here and now.
	// It is measured as the heap is: with the garbage collector eager
	// and the heap sampled.
	old := debug.SetGCPercent(10)
	defer debug.SetGCPercent(old)
	stopCal := sampleHeap()
	alone := answerTime(t, payload)
	stopCal()
	timeout := max(10*time.Second, 3*time.Duration(fit)*alone)
	t.Logf("one offer answered in %v alone; handshake deadline %v", alone, timeout)
	bob := startAgent(t, func(c *Config) {
		c.MemoryBudget = budget
		c.MaxConns, c.MaxConnsPerHost = conns, conns
		c.HandshakeTimeout = timeout
		// The held offers stay held: their senders send nothing after
		// the answer, until the others are refused.
		c.RateWindow, c.EvictAfter, c.IdleTimeout = 0, 0, 2*timeout
	})

	runtime.GC()
	base := heapAlloc()
	stopSampling := sampleHeap()

	type result struct {
		a   proto.Answer
		err error
	}
	results := make(chan result, conns)
	var held []net.Conn
	var mu sync.Mutex
	var wg sync.WaitGroup
	for range conns {
		wg.Add(1)
		go func() {
			defer wg.Done()
			c, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
			if err != nil {
				results <- result{err: err}
				return
			}
			mu.Lock()
			held = append(held, c)
			mu.Unlock()
			if _, err := c.Write(payload); err != nil {
				results <- result{err: err}
				return
			}
			_ = c.SetReadDeadline(time.Now().Add(timeout + 10*time.Second))
			a, err := readAnswer(c)
			results <- result{a, err}
		}()
	}
	wg.Wait()
	peak := stopSampling()
	close(results)
	var ok, busy int
	for r := range results {
		switch {
		case r.err != nil:
			t.Errorf("offer: %v", r.err)
		case r.a.Code == proto.CodeOK:
			ok++
		case r.a.Code == proto.CodeBusy:
			busy++
		default:
			t.Errorf("offer answered %v: %s", r.a.Code, r.a.Reason)
		}
	}
	t.Logf("%d offers held, %d refused as busy; each charged %.1f MiB; heap peak %.1f MiB over a base of %.1f MiB, budget %d MiB",
		ok, busy, float64(perOffer)/(1<<20), float64(peak-base)/(1<<20), float64(base)/(1<<20), budget>>20)
	if ok == 0 || ok > fit || busy == 0 {
		t.Errorf("%d offers held and %d refused as busy, want between 1 and %d held and the rest refused", ok, busy, fit)
	}
	// The budget, plus the connections' buffers and the test's own
	// copy of the offer.
	if limit := uint64(budget) + conns*(1<<20) + uint64(len(payload)); peak-base > limit {
		t.Errorf("heap peaked %.1f MiB over its base, over the budget of %d MiB plus buffers", float64(peak-base)/(1<<20), budget>>20)
	}
	mu.Lock()
	for _, c := range held {
		c.Close()
	}
	mu.Unlock()
	for range conns {
		bob.next(t)
	}
	waitFor(t, func() bool { return bob.inbox.mem.inUse() == 0 })
}

// heapAlloc returns the bytes of heap objects, as MemStats.HeapAlloc,
// without stopping the world (runtime.ReadMemStats does, which on a
// loaded machine stalls every goroutine at each sample).
func heapAlloc() uint64 {
	m := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(m)
	return m[0].Value.Uint64()
}

// sampleHeap samples heapAlloc every 2 ms until the returned function is
// called, which returns the peak.
func sampleHeap() (stop func() uint64) {
	var peak uint64
	stopc := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		tick := time.NewTicker(2 * time.Millisecond)
		defer tick.Stop()
		for {
			peak = max(peak, heapAlloc())
			select {
			case <-stopc:
				return
			case <-tick.C:
			}
		}
	}()
	return func() uint64 {
		close(stopc)
		<-done
		return peak
	}
}

// answerTime returns how long an agent takes from a connection to the
// answer of the offer that wire (a hello and an offer) makes, when it
// has nothing else to do.
func answerTime(t testing.TB, wire []byte) time.Duration {
	t.Helper()
	a := startAgent(t, func(c *Config) { c.HandshakeTimeout = 10 * time.Minute })
	start := time.Now()
	c, _, err := testSender(t).dial(context.Background(), a.Addr().String(), a.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	if _, err := c.Write(wire); err != nil {
		t.Fatal(err)
	}
	if ans, err := readAnswer(c); err != nil || ans.Code != proto.CodeOK {
		t.Fatalf("answer %+v, %v", ans, err)
	}
	took := time.Since(start)
	c.Close()
	a.next(t)
	return took
}

// TestTrickledOfferDroppedAtHandshakeDeadline: an offer sent a byte at a
// time, each byte well within the idle timeout, must still be complete
// (and answered) within the handshake deadline, counted from the
// connection's accept.
func TestTrickledOfferDroppedAtHandshakeDeadline(t *testing.T) {
	const deadline = 500 * time.Millisecond
	bob := startAgent(t, func(c *Config) { c.HandshakeTimeout = deadline })
	start := time.Now()
	c, _, err := testSender(t).dial(context.Background(), bob.Addr().String(), bob.ID())
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	var wire strings.Builder
	_ = proto.WriteHello(&wire, proto.NewHello("loris"))
	_ = proto.WriteOffer(&wire, proto.Offer{Entries: []proto.Entry{{Path: strings.Repeat("x", 200), Kind: proto.KindFile, Size: 1, Mode: 0o644}}})
	stop := make(chan struct{})
	trickled := make(chan struct{})
	go func() {
		defer close(trickled)
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		for _, b := range []byte(wire.String()) {
			if _, err := c.Write([]byte{b}); err != nil {
				return
			}
			select {
			case <-tick.C:
			case <-stop:
				return
			}
		}
	}()
	defer func() {
		close(stop)
		<-trickled
	}()
	in := bob.next(t)
	if in.Err == nil {
		t.Fatal("a trickled offer was accepted")
	}
	if el := time.Since(start); el > deadline+time.Second {
		t.Errorf("trickled offer dropped after %v, want about %v", el, deadline)
	}
}

// TestStrangersHoldingTheMemoryBudgetAreEvicted: a stranger whose held
// offer takes the whole memory budget, and who keeps its transfer above
// the minimum rate, keeps a new sender out for no longer than EvictAfter:
// the new offer's wait evicts it.
func TestStrangersHoldingTheMemoryBudgetAreEvicted(t *testing.T) {
	const evictAfter = time.Second
	hogOffer := proto.Offer{Entries: []proto.Entry{{Path: strings.Repeat("h", 200), Kind: proto.KindFile, Size: 1 << 30, Mode: 0o644}}}
	var enc strings.Builder
	if err := proto.WriteOffer(&enc, hogOffer); err != nil {
		t.Fatal(err)
	}
	bob := startAgent(t, func(c *Config) {
		c.MemoryBudget = offerCharge(enc.Len()-proto.HeaderSize, 1) + 100 // no room for a second offer
		c.MinRate, c.RateWindow = 1<<10, 500*time.Millisecond
		c.EvictAfter = evictAfter
		c.HandshakeTimeout = 5 * time.Second
	})
	hog := dialFrom(t, testSender(t), 3, bob.Addr().String(), bob.ID())
	if err := proto.WriteHello(hog, proto.NewHello("hog")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(hog, hogOffer); err != nil {
		t.Fatal(err)
	}
	if a, err := readAnswer(hog); err != nil || a.Code != proto.CodeOK {
		t.Fatalf("answer %+v, %v", a, err)
	}
	held := time.Now()
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond)
		defer tick.Stop()
		chunk := make([]byte, 512)
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := hog.Write(chunk); err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		wg.Wait()
	}()
	if _, err := sendFile(t, testSender(t), bob.target(), "new.txt", "got in"); err != nil {
		t.Fatalf("a new sender was kept out %v by a stranger holding the memory budget: %v", time.Since(held), err)
	}
	if el := time.Since(held); el > evictAfter+time.Second {
		t.Errorf("the new sender got in after %v, want within about %v", el, evictAfter)
	}
	for {
		if in := bob.next(t); errors.Is(in.Err, ErrEvicted) {
			break
		}
	}
}

// TestSinksShareABoundedBufferPool: however many large files are received
// at once, the pipelined sinks hold at most maxSinkChunks buffers between
// them; the sinks beyond go without a pipeline, and every buffer comes
// back when they close.
func TestSinksShareABoundedBufferPool(t *testing.T) {
	before := sinkChunksFree.Load()
	var sinks []*sink
	buf := make([]byte, bufSize)
	for range 2 * maxSinkChunks / sinkBuffers {
		sinks = append(sinks, newSink(io.Discard, proto.NewDigest(), 0, 64<<20, buf))
	}
	taken := 0
	for _, s := range sinks {
		taken += s.taken
	}
	if taken > maxSinkChunks || sinkChunksFree.Load() < 0 {
		t.Errorf("%d sinks hold %d buffers, over the cap of %d", len(sinks), taken, maxSinkChunks)
	}
	if taken < maxSinkChunks-sinkBuffers {
		t.Errorf("%d sinks hold only %d buffers of %d", len(sinks), taken, maxSinkChunks)
	}
	for _, s := range sinks {
		if err := s.fill(strings.NewReader(strings.Repeat("x", 3<<20)), 3<<20); err != nil {
			t.Fatal(err)
		}
		if _, err := s.close(); err != nil {
			t.Fatal(err)
		}
	}
	if got := sinkChunksFree.Load(); got != before {
		t.Errorf("%d buffers free after every sink closed, want %d", got, before)
	}
}
