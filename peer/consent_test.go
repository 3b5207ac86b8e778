package peer

import (
	"bufio"
	"context"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// refusal returns err's *RefusedError, failing the test when there is none.
func refusal(t testing.TB, err error) *RefusedError {
	t.Helper()
	var re *RefusedError
	if !errors.As(err, &re) {
		t.Fatalf("got %v, want a refusal", err)
	}
	return re
}

func TestStrangersPastBudgetRefusedTrustedPass(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.StrangerBudget = StrangerBudget{Bytes: 100_000} })
	stranger, other, friend := testSender(t), testSender(t), testSender(t)
	trustIn(t, bob, friend, "friend")
	chunk := strings.Repeat("x", 60_000)

	if _, err := sendFile(t, stranger, bob.target(), "one.bin", chunk); err != nil {
		t.Fatalf("a stranger's first 60 kB within a 100 kB budget: %v", err)
	}
	bob.next(t)
	_, err := sendFile(t, stranger, bob.target(), "two.bin", chunk)
	re := refusal(t, err)
	if re.Code != proto.CodeTooLarge || !strings.Contains(re.Reason, "100.0 kB a day") || !strings.Contains(re.Reason, "35.9 kB left today") {
		t.Errorf("refusal past the budget: code %v, reason %q; want too large, the budget and what is left", re.Code, re.Reason)
	}
	bob.next(t)
	// A new key is a new stranger, not a new budget.
	_, err = sendFile(t, other, bob.target(), "three.bin", chunk)
	if re := refusal(t, err); re.Code != proto.CodeTooLarge {
		t.Errorf("a second stranger past the shared budget: %v", err)
	}
	bob.next(t)
	if _, err := sendFile(t, friend, bob.target(), "big.bin", strings.Repeat("y", 300_000)); err != nil {
		t.Fatalf("a trusted peer past the strangers' budget: %v", err)
	}
	bob.next(t)
	if _, err := os.Stat(filepath.Join(bob.dir, "two.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("a refused file is in the shared folder: %v", err)
	}
	// 60 kB and the file's 4 KiB are spent.
	if left, limit, ok := bob.StrangersLeft(); !ok || limit != 100_000 || left != 40_000-entryCost {
		t.Errorf("StrangersLeft = %d, %d, %v; want 35904 of 100000", left, limit, ok)
	}
	if st := bob.Status(); st.StrangerBudget != "100.0 kB a day" || st.StrangersLeft == nil || *st.StrangersLeft != 40_000-entryCost {
		t.Errorf("status: budget %q, left %v", st.StrangerBudget, st.StrangersLeft)
	}
}

func TestStrangerBudgetPersistsOverRestart(t *testing.T) {
	config := t.TempDir()
	budget := func(c *Config) { c.ConfigDir, c.StrangerBudget = config, StrangerBudget{Bytes: 100_000} }
	stranger := testSender(t)
	t.Run("before the restart", func(t *testing.T) {
		// The subtest's cleanup stops this agent.
		first := startAgent(t, budget)
		if _, err := sendFile(t, stranger, first.target(), "one.bin", strings.Repeat("x", 60_000)); err != nil {
			t.Fatal(err)
		}
		first.next(t)
	})
	again := startAgent(t, budget)
	if left, _, _ := again.StrangersLeft(); left != 40_000-entryCost {
		t.Errorf("after a restart %d bytes left, want 35904", left)
	}
	_, err := sendFile(t, stranger, again.target(), "two.bin", strings.Repeat("x", 60_000))
	if re := refusal(t, err); re.Code != proto.CodeTooLarge {
		t.Errorf("past the budget after a restart: %v", err)
	}
	again.next(t)
}

// TestStrangerBudgetFileBounded: the file keeps one line per hour of the
// last day, whatever it held; a line that does not parse is an error
// that names the file.
func TestStrangerBudgetFileBounded(t *testing.T) {
	dir := t.TempDir()
	now := time.Now()
	var b strings.Builder
	for h := hourOf(now) - 100; h <= hourOf(now); h++ {
		b.WriteString(strings.Join([]string{itoa(h), "10"}, " ") + "\n")
	}
	path := filepath.Join(dir, strangersFile)
	if err := os.WriteFile(path, []byte(b.String()), 0o600); err != nil {
		t.Fatal(err)
	}
	free := func() (uint64, error) { return 1 << 40, nil }
	p, err := openStrangerPool(dir, StrangerBudget{Bytes: 1000}, free)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.take(1, 0); err != nil {
		t.Fatal(err)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(data), "\n") - 2; n > 24 {
		t.Errorf("file holds %d hours, want at most 24:\n%s", n, data)
	}
	if left, _, _ := p.Left(); left != 1000-24*10-1 {
		t.Errorf("left %d, want %d (the last 24 hours count)", left, 1000-24*10-1)
	}
	if err := os.WriteFile(path, []byte("garbage\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if _, err := openStrangerPool(dir, StrangerBudget{Bytes: 1000}, free); err == nil || !strings.Contains(err.Error(), path) {
		t.Errorf("a bad file: %v, want an error naming %s", err, path)
	}
}

func itoa(n int64) string { return strconv.FormatInt(n, 10) }

// TestStrangerBudgetPercentOfFreeSpace: a percentage budget is that share
// of the space strangers found free: what they took counts with what is
// free now.
func TestStrangerBudgetPercentOfFreeSpace(t *testing.T) {
	free := uint64(1_000_000)
	p, err := openStrangerPool(t.TempDir(), StrangerBudget{Percent: 10}, func() (uint64, error) { return free, nil })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := p.take(60_000, 0); err != nil {
		t.Fatal(err)
	}
	free -= 60_000
	if left, limit, _ := p.Left(); limit != 100_000 || left != 40_000 {
		t.Errorf("left %d of %d, want 40000 of 100000", left, limit)
	}
	if _, err := p.take(50_000, 0); refusal(t, err).Code != proto.CodeTooLarge {
		t.Errorf("past 10%%: %v", err)
	}
}

// sendAsync sends one file to to in the background; the waiting channel
// gets the receiver's Wait.
func sendAsync(t testing.TB, s *Sender, to Target, name, content string) (waiting chan Waiting, result chan error) {
	t.Helper()
	src := writeTree(t, map[string]string{name: content})
	items := collect(t, filepath.Join(src, name))
	waiting, result = make(chan Waiting, 1), make(chan error, 1)
	go func() {
		_, err := s.Send(context.Background(), to, items, SendOptions{Name: "alice", Retries: -1, OnWait: func(w Waiting) { waiting <- w }})
		result <- err
	}()
	return waiting, result
}

func waitingFor(t testing.TB, waiting chan Waiting) Waiting {
	t.Helper()
	select {
	case w := <-waiting:
		return w
	case <-time.After(10 * time.Second):
		t.Fatal("the sender was not told to wait within 10s")
		return Waiting{}
	}
}

func sendResult(t testing.TB, result chan error) error {
	t.Helper()
	select {
	case err := <-result:
		return err
	case <-time.After(10 * time.Second):
		t.Fatal("the send did not end within 10s")
		return nil
	}
}

func TestAskOfferWaitsForTheOwner(t *testing.T) {
	asked := make(chan PendingOffer, 4)
	bob := startAgent(t, func(c *Config) {
		c.Accept = AcceptAsk
		c.OnAsk = func(p PendingOffer) { asked <- p }
	})
	alice := testSender(t)
	content := randomBytes(t, 300_000)
	waiting, result := sendAsync(t, alice, bob.target(), "photo.jpg", content)
	w := waitingFor(t, waiting)
	if w.Peer != "bob" || w.Timeout != DefaultAskTimeout || !strings.Contains(w.Reason, "owner") {
		t.Errorf("sender told %+v", w)
	}
	p := <-asked
	list := bob.Pending()
	if len(list) != 1 || list[0].ID != p.ID || list[0].PeerID != alice.Identity.ID || list[0].From != "alice" ||
		list[0].Files != 1 || list[0].Bytes != 300_000 || len(list[0].First) != 1 || list[0].First[0] != "photo.jpg" {
		t.Fatalf("Pending = %+v", list)
	}
	assertTree(t, bob.dir, map[string]string{}) // nothing written while it waits
	if err := bob.Decide(p.ID, Decision{Accept: true}); err != nil {
		t.Fatal(err)
	}
	if err := sendResult(t, result); err != nil {
		t.Fatalf("send after the owner accepted: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"photo.jpg": content})
	if len(bob.Pending()) != 0 {
		t.Errorf("still pending after the answer: %+v", bob.Pending())
	}
	if err := bob.Decide(p.ID, Decision{Accept: true}); !errors.Is(err, ErrNoPending) {
		t.Errorf("second answer: %v, want ErrNoPending", err)
	}
}

func TestAskDeclineTellsTheSenderWhy(t *testing.T) {
	asked := make(chan PendingOffer, 1)
	bob := startAgent(t, func(c *Config) { c.Accept, c.OnAsk = AcceptAsk, func(p PendingOffer) { asked <- p } })
	_, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello")
	p := <-asked
	if err := bob.Decide(p.ID, Decision{Reason: "not today"}); err != nil {
		t.Fatal(err)
	}
	re := refusal(t, sendResult(t, result))
	if re.Code != proto.CodeDenied || re.Reason != "declined by the receiver's owner: not today" {
		t.Errorf("decline: code %v, reason %q", re.Code, re.Reason)
	}
	bob.next(t)
	assertTree(t, bob.dir, map[string]string{})
	assertNoTemps(t, bob.dir)
}

func TestAskExpires(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept, c.AskTimeout = AcceptAsk, 300*time.Millisecond })
	waiting, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello")
	if w := waitingFor(t, waiting); w.Timeout != 300*time.Millisecond {
		t.Errorf("told to wait %v, want 300ms", w.Timeout)
	}
	re := refusal(t, sendResult(t, result))
	if re.Code != proto.CodeDenied || re.Reason != "no answer from the receiver's owner within 300ms" {
		t.Errorf("expiry: code %v, reason %q", re.Code, re.Reason)
	}
	bob.next(t)
	assertTree(t, bob.dir, map[string]string{})
	if len(bob.Pending()) != 0 {
		t.Errorf("an expired offer is still pending: %+v", bob.Pending())
	}
}

// TestAskPendingBounded: at most 4 offers wait per address, MaxPending in
// all; one more is refused as busy at once, and an answer makes room.
func TestAskPendingBounded(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	var results []chan error
	for i := range pendingPerHost {
		waiting, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello "+itoa(int64(i)))
		waitingFor(t, waiting)
		results = append(results, result)
	}
	_, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "one too many")
	if re := refusal(t, sendResult(t, result)); re.Code != proto.CodeBusy || !strings.Contains(re.Reason, "too many offers wait") {
		t.Errorf("offer past the bound: code %v, reason %q", re.Code, re.Reason)
	}
	bob.next(t)
	if n := len(bob.Pending()); n != pendingPerHost {
		t.Errorf("%d pending, want %d", n, pendingPerHost)
	}
	for _, p := range bob.Pending() {
		if err := bob.Decide(p.ID, Decision{}); err != nil {
			t.Fatal(err)
		}
	}
	for _, r := range results {
		refusal(t, sendResult(t, r))
	}

	cs := newConsents(2, 1000)
	for i, host := range []string{"a", "b", "c"} {
		err := cs.add(&pendingOffer{host: host, decided: make(chan Decision, 1)})
		if (i < 2) != (err == nil) {
			t.Errorf("offer %d of at most 2: %v", i+1, err)
		}
	}
	if err := (newConsents(16, 1000)).add(&pendingOffer{host: "a", memory: 1001}); err == nil {
		t.Error("an offer over the pending offers' memory share was let wait")
	}
}

func TestAskTrustedGoesStraightThrough(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	friend := testSender(t)
	trustIn(t, bob, friend, "friend")
	waiting, result := sendAsync(t, friend, bob.target(), "a.txt", "hello")
	if err := sendResult(t, result); err != nil {
		t.Fatalf("a trusted peer under ask: %v", err)
	}
	select {
	case w := <-waiting:
		t.Errorf("a trusted peer was told to wait: %+v", w)
	default:
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello"})
}

func TestAskAcceptTrustPinsTheSender(t *testing.T) {
	asked := make(chan PendingOffer, 1)
	bob := startAgent(t, func(c *Config) { c.Accept, c.OnAsk = AcceptAsk, func(p PendingOffer) { asked <- p } })
	alice := testSender(t)
	_, result := sendAsync(t, alice, bob.target(), "a.txt", "hello")
	if err := bob.Decide((<-asked).ID, Decision{Accept: true, Trust: true}); err != nil {
		t.Fatal(err)
	}
	if err := sendResult(t, result); err != nil {
		t.Fatal(err)
	}
	known, err := LoadKnown(bob.config)
	if err != nil {
		t.Fatal(err)
	}
	if e, ok := known.ByID(alice.Identity.ID); !ok || e.Level != Trusted || e.Name != "alice" {
		t.Errorf("after accept --trust: %+v, %v; want alice trusted", e, ok)
	}
	// Trusted now: the next send goes straight through.
	waiting, result := sendAsync(t, alice, bob.target(), "b.txt", "again")
	if err := sendResult(t, result); err != nil {
		t.Fatal(err)
	}
	if len(waiting) != 0 {
		t.Error("a peer trusted with accept --trust still waits")
	}
}

// TestAskTrustKeepsAKnownNameForItsKey: a stranger whose hello says the
// name of a known peer is trusted without that name.
func TestAskTrustKeepsAKnownNameForItsKey(t *testing.T) {
	asked := make(chan PendingOffer, 1)
	bob := startAgent(t, func(c *Config) { c.Accept, c.OnAsk = AcceptAsk, func(p PendingOffer) { asked <- p } })
	realAlice, impostor := testSender(t), testSender(t)
	trustIn(t, bob, realAlice, "alice")
	_, result := sendAsync(t, impostor, bob.target(), "a.txt", "hello") // says "alice"
	if err := bob.Decide((<-asked).ID, Decision{Accept: true, Trust: true}); err != nil {
		t.Fatal(err)
	}
	if err := sendResult(t, result); err != nil {
		t.Fatal(err)
	}
	known, _ := LoadKnown(bob.config)
	if e, _ := known.ByID(impostor.Identity.ID); e.Level != Trusted || e.Name != "" {
		t.Errorf("impostor trusted as %+v, want trusted without a name", e)
	}
}

func TestControlSocketAnswersPendingOffers(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	waiting, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello")
	waitingFor(t, waiting)
	ctx := context.Background()
	rep, err := AskAgent(ctx, bob.config, ControlRequest{Op: OpPending})
	if err != nil || len(rep.Pending) != 1 || rep.Pending[0].First[0] != "a.txt" {
		t.Fatalf("pending over the control socket: %+v, %v", rep, err)
	}
	if st, err := QueryAgent(ctx, bob.config); err != nil || st.Pending != 1 {
		t.Errorf("status while an offer waits: %+v, %v; want 1 pending", st, err)
	}
	if _, err := AskAgent(ctx, bob.config, ControlRequest{Op: OpAccept, ID: "99"}); !errors.Is(err, ErrNoPending) {
		t.Errorf("accept of no offer: %v, want ErrNoPending", err)
	}
	rep, err = AskAgent(ctx, bob.config, ControlRequest{Op: OpAccept, ID: rep.Pending[0].ID})
	if err != nil || rep.Offer == nil || rep.Offer.Files != 1 {
		t.Fatalf("accept over the control socket: %+v, %v", rep, err)
	}
	if err := sendResult(t, result); err != nil {
		t.Fatal(err)
	}
	// A client that sends no request still gets the status.
	st, err := QueryAgent(ctx, bob.config)
	if err != nil || st.Accept != AcceptAsk {
		t.Fatalf("status: %+v, %v", st, err)
	}
}

// TestControlSocketStatusWithoutRequest: a client of the first control
// protocol, which sends nothing, still reads the status.
func TestControlSocketStatusWithoutRequest(t *testing.T) {
	bob := startAgent(t, nil)
	conn, err := net.Dial("unix", filepath.Join(bob.config, controlSocket))
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
	line, err := bufio.NewReader(conn).ReadString('\n')
	if err != nil || !strings.Contains(line, `"id":"`+bob.ID()+`"`) {
		t.Errorf("status without a request: %q, %v", line, err)
	}
}

// TestWaitOnlyToSendersThatKnowIt: a sender of protocol 1.0 gets no Wait
// frame (it would not parse it): the hello and the answer come after the
// owner's decision.
func TestWaitOnlyToSendersThatKnowIt(t *testing.T) {
	for _, minor := range []uint8{0, proto.MinorWait} {
		in := newInbox(t, InboxConfig{})
		a, b := tcpPair(t)
		waited := make(chan struct{})
		done := make(chan error, 1)
		go func() {
			_, err := in.ReceiveWith(b, Policy{Consent: func(o OfferSummary, wait func(time.Duration) (<-chan struct{}, error)) error {
				if o.CanWait != (minor >= proto.MinorWait) || o.Files != 1 || o.Bytes != 5 {
					t.Errorf("minor %d: summary %+v", minor, o)
				}
				if _, err := wait(time.Minute); err != nil {
					return err
				}
				<-waited
				return nil
			}})
			done <- err
		}()
		bw := bufio.NewWriter(a)
		_ = proto.WriteHello(bw, proto.Hello{Major: proto.Major, Minor: minor, Name: "old"})
		_ = proto.WriteOffer(bw, proto.Offer{Entries: []proto.Entry{{Path: "a.txt", Kind: proto.KindFile, Size: 5, Mode: 0o644}}})
		if err := bw.Flush(); err != nil {
			t.Fatal(err)
		}
		br := bufio.NewReader(a)
		if minor >= proto.MinorWait {
			if _, err := proto.ReadHello(br); err != nil {
				t.Fatal(err)
			}
			if _, err := proto.ReadWait(br); err != nil {
				t.Fatalf("a 1.1 sender got no wait: %v", err)
			}
			close(waited)
		} else {
			close(waited)
			if _, err := proto.ReadHello(br); err != nil {
				t.Fatal(err)
			}
		}
		ans, err := proto.ReadAnswer(br)
		if err != nil || ans.Code != proto.CodeOK {
			t.Fatalf("minor %d: answer %+v, %v", minor, ans, err)
		}
		a.Close()
		<-done
	}
}

// TestAskWaitingOfferIsNoEvictionVictim: a stranger's offer that waits
// for the owner keeps its connection when every slot is taken and a
// newcomer arrives (the bounds on pending offers keep them from holding
// the slots instead).
func TestAskWaitingOfferIsNoEvictionVictim(t *testing.T) {
	asked := make(chan PendingOffer, 1)
	bob := startAgent(t, func(c *Config) {
		c.Accept, c.OnAsk = AcceptAsk, func(p PendingOffer) { asked <- p }
		c.MaxConns, c.EvictAfter = 1, time.Nanosecond // any other connection is evictable at once
	})
	_, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello")
	p := <-asked
	_, newcomer := sendAsync(t, testSender(t), bob.target(), "b.txt", "pushy")
	if err := sendResult(t, newcomer); err == nil {
		t.Error("a newcomer got in while the only slot waits for the owner")
	}
	if err := bob.Decide(p.ID, Decision{Accept: true}); err != nil {
		t.Fatalf("the waiting offer is gone: %v", err)
	}
	if err := sendResult(t, result); err != nil {
		t.Fatalf("the waiting offer, accepted: %v", err)
	}
	assertTree(t, bob.dir, map[string]string{"a.txt": "hello"})
}

// TestAskSenderThatHangsUpLeavesNoPendingOffer: an offer whose sender
// gave up waiting leaves the list at once, not at its expiry.
func TestAskSenderThatHangsUpLeavesNoPendingOffer(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	src := writeTree(t, map[string]string{"a.txt": "hello"})
	items := collect(t, filepath.Join(src, "a.txt"))
	ctx, cancel := context.WithCancel(context.Background())
	alice := testSender(t)
	waiting, result := make(chan Waiting, 1), make(chan error, 1)
	go func() {
		_, err := alice.Send(ctx, bob.target(), items, SendOptions{Name: "alice", Retries: -1, OnWait: func(w Waiting) { waiting <- w }})
		result <- err
	}()
	waitingFor(t, waiting)
	if len(bob.Pending()) != 1 {
		t.Fatalf("pending %+v, want the offer", bob.Pending())
	}
	cancel()
	sendResult(t, result)
	in := bob.next(t)
	if re := refusal(t, in.Err); re.Code != proto.CodeAborted {
		t.Errorf("the agent's outcome: %v", in.Err)
	}
	if len(bob.Pending()) != 0 {
		t.Errorf("pending %+v after the sender hung up", bob.Pending())
	}
}

// TestControlSocketRefusesOtherUsers: another local user who can reach
// the control socket (its mode loosened, as in the moment before its
// chmod, and a config directory others may enter) gets no answer: it
// can neither read the status nor accept a stranger's offer.
func TestControlSocketRefusesOtherUsers(t *testing.T) {
	if os.Getuid() != 0 {
		t.Skip("needs root to run a client as another user")
	}
	setpriv, err := exec.LookPath("setpriv")
	if err != nil {
		t.Skip("needs setpriv to run a client as another user")
	}
	if _, err := os.Stat("/usr/bin/python3"); err != nil {
		t.Skip("needs /usr/bin/python3 for the other user's client")
	}
	bob := startAgent(t, func(c *Config) { c.Accept = AcceptAsk })
	sock := filepath.Join(bob.config, controlSocket)
	for d := bob.config; d != "/" && d != "."; d = filepath.Dir(d) {
		if strings.HasPrefix(d, os.TempDir()+"/") {
			if err := os.Chmod(d, 0o711); err != nil {
				t.Fatal(err)
			}
		}
	}
	if err := os.Chmod(sock, 0o666); err != nil {
		t.Fatal(err)
	}
	waiting, result := sendAsync(t, testSender(t), bob.target(), "a.txt", "hello")
	waitingFor(t, waiting)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	client := `import socket,sys
s=socket.socket(socket.AF_UNIX)
s.connect(sys.argv[1])
s.sendall(b'{"op":"accept","id":"1","trust":true}\n')
sys.stdout.write(s.recv(65536).decode())`
	out, err := exec.CommandContext(ctx, setpriv, "--reuid=65534", "--regid=65534", "--clear-groups",
		"/usr/bin/python3", "-c", client, sock).CombinedOutput()
	if strings.Contains(string(out), "{") {
		t.Errorf("another user's request was answered: %s", out)
	}
	if err != nil {
		t.Logf("the other user's client: %v: %s", err, out)
	}
	if p := bob.Pending(); len(p) != 1 {
		t.Fatalf("pending after another user's accept: %+v, want the offer still waiting", p)
	}
	if err := bob.Decide(bob.Pending()[0].ID, Decision{}); err != nil {
		t.Fatal(err)
	}
	if err := sendResult(t, result); err == nil {
		t.Error("the offer went through; want it declined by the owner")
	}
}

// TestControlSocketMalformedRequestSaysSo: a request that is not JSON,
// or over the size bound, gets an error that says what a request is.
func TestControlSocketMalformedRequestSaysSo(t *testing.T) {
	bob := startAgent(t, nil)
	for _, req := range []string{"{nope\n", `{"op":"` + strings.Repeat("x", maxRequest+1) + "\"}\n"} {
		conn, err := net.Dial("unix", filepath.Join(bob.config, controlSocket))
		if err != nil {
			t.Fatal(err)
		}
		_ = conn.SetDeadline(time.Now().Add(5 * time.Second))
		_, _ = conn.Write([]byte(req))
		line, err := bufio.NewReader(conn).ReadString('\n')
		conn.Close()
		if err != nil || !strings.Contains(line, `"error":"malformed request: want one JSON object on a line of at most 1048576 bytes"`) {
			t.Errorf("request of %d bytes: reply %.200q, %v", len(req), line, err)
		}
	}
}

// TestStrangerBudgetCountsEmptyFilesAndFolders: every file and folder a
// stranger offers counts 4 KiB against the budget (its block and inode),
// so that offers of empty files and folders, which need no bytes, do not
// pass a spent budget again and again.
func TestStrangerBudgetCountsEmptyFilesAndFolders(t *testing.T) {
	bob := startAgent(t, func(c *Config) { c.StrangerBudget = StrangerBudget{Bytes: 10_000} })
	stranger := testSender(t)
	if _, err := sendFile(t, stranger, bob.target(), "one.txt", ""); err != nil {
		t.Fatalf("a stranger's empty file within the budget: %v", err)
	}
	bob.next(t)
	if left, _, _ := bob.StrangersLeft(); left != 10_000-entryCost {
		t.Errorf("left %d after an empty file, want %d", left, 10_000-entryCost)
	}
	if _, err := sendFile(t, stranger, bob.target(), "two.txt", ""); err != nil {
		t.Fatalf("a stranger's second empty file within the budget: %v", err)
	}
	bob.next(t)
	_, err := sendFile(t, stranger, bob.target(), "three.txt", "")
	if re := refusal(t, err); re.Code != proto.CodeTooLarge || !strings.Contains(re.Reason, "4 KiB a file or folder") {
		t.Errorf("an empty file past the budget: code %v, reason %q", re.Code, re.Reason)
	}
	bob.next(t)
	if _, err := os.Stat(filepath.Join(bob.dir, "three.txt")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("an empty file past the budget is in the shared folder: %v", err)
	}
}

// TestStrangerBudgetFileSumsSaturate: huge counts in the strangers file
// (hand-edited, or corrupt) spend the budget; their sum does not wrap
// around to a small number that refills it.
func TestStrangerBudgetFileSumsSaturate(t *testing.T) {
	dir := t.TempDir()
	h := itoa(hourOf(time.Now()))
	data := h + " 9223372036854775808\n" + h + " 9223372036854775808\n" + itoa(hourOf(time.Now())-1) + " 5\n"
	if err := os.WriteFile(filepath.Join(dir, strangersFile), []byte(data), 0o600); err != nil {
		t.Fatal(err)
	}
	p, err := openStrangerPool(dir, StrangerBudget{Bytes: 1000}, func() (uint64, error) { return 1 << 40, nil })
	if err != nil {
		t.Fatal(err)
	}
	if left, _, _ := p.Left(); left != 0 {
		t.Errorf("left %d after counts that sum past 2^64, want 0", left)
	}
	if _, err := p.take(1, 0); refusal(t, err).Code != proto.CodeTooLarge {
		t.Errorf("a send after counts that sum past 2^64: %v", err)
	}
}
