package discovery

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// Namespace tests re-execute this test binary inside lab hosts; envChild
// selects what the child does and envChildCfg carries its parameters as
// JSON. Children talk to the parent with JSON lines on stdout and stop
// cleanly (with goodbyes) when their stdin is closed.
const (
	envChild    = "DISCOVERY_TEST_CHILD"
	envChildCfg = "DISCOVERY_TEST_CHILD_CFG"
)

func TestMain(m *testing.M) {
	mode := os.Getenv(envChild)
	if mode == "" {
		os.Exit(netlab.Main(m))
	}
	var cfg childCfg
	if err := json.Unmarshal([]byte(os.Getenv(envChildCfg)), &cfg); err != nil {
		fmt.Fprintln(os.Stderr, "child config:", err)
		os.Exit(2)
	}
	out := &childOut{enc: json.NewEncoder(os.Stdout)}
	var err error
	switch mode {
	case "agent":
		err = childAgent(cfg, out)
	case "browse":
		err = childBrowse(cfg, out)
	case "watch":
		err = childWatch(cfg, out)
	default:
		if f := extraChildren[mode]; f != nil {
			err = f(cfg, out)
		} else {
			err = fmt.Errorf("unknown child mode %q", mode)
		}
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(1)
	}
	os.Exit(0)
}

// extraChildren lets other test files add child modes.
var extraChildren = map[string]func(childCfg, *childOut) error{}

type childCfg struct {
	Name, ID, Version, Host string
	Port                    int
	TTLSeconds              int
	Ifaces                  []string
	WaitMillis              int
	// Target is an address a hostile child sends to (unicast).
	Target string
	// AnswerMulticast makes a LocalSend child answer announcements by
	// multicast (AnswerByMulticast), as apps up to 1.17 do.
	AnswerMulticast bool
}

// msg is one line a child prints.
type msg struct {
	Ev       string `json:"ev"`
	Instance string `json:"instance,omitempty"`
	Peer     *Peer  `json:"peer,omitempty"`
	Peers    []Peer `json:"peers,omitempty"`
	Stats    *Stats `json:"stats,omitempty"`
	// LocalSend children.
	LSDevice  *LocalSendDevice  `json:"lsdev,omitempty"`
	LSDevices []LocalSendDevice `json:"lsdevs,omitempty"`
	LSStats   *LocalSendStats   `json:"lsstats,omitempty"`
	Text      string            `json:"text,omitempty"`
	Millis    int64             `json:"ms,omitempty"`
	At        time.Time         `json:"at"`
}

type childOut struct {
	mu  sync.Mutex
	enc *json.Encoder
}

func (o *childOut) put(m msg) {
	m.At = time.Now()
	o.mu.Lock()
	defer o.mu.Unlock()
	_ = o.enc.Encode(m)
}

// childAgent runs a Service until stdin closes. A "stats" line on stdin
// prints the counters; "peers" prints the table.
func childAgent(c childCfg, out *childOut) error {
	cfg := DefaultConfig()
	cfg.Name, cfg.ID, cfg.Version, cfg.Port, cfg.Ifaces = c.Name, c.ID, c.Version, c.Port, c.Ifaces
	if c.Host != "" {
		cfg.Host = c.Host
	}
	if c.TTLSeconds > 0 {
		cfg.TTL = time.Duration(c.TTLSeconds) * time.Second
	}
	cfg.Logf = func(format string, args ...any) {
		out.put(msg{Ev: "log", Text: fmt.Sprintf(format, args...)})
	}
	s, err := New(cfg)
	if err != nil {
		return err
	}
	s.onReady = func() { out.put(msg{Ev: "ready", Instance: s.Instance()}) }
	events, stop := s.Subscribe()
	defer stop()
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ev := range events {
			p := ev.Peer
			out.put(msg{Ev: ev.Kind.String(), Peer: &p})
		}
	}()
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		sc := bufio.NewScanner(os.Stdin)
		for sc.Scan() {
			switch sc.Text() {
			case "stats":
				st := s.Stats()
				out.put(msg{Ev: "stats", Stats: &st})
			case "peers":
				out.put(msg{Ev: "peers", Peers: s.Peers()})
			}
		}
		cancel()
	}()
	err = s.Run(ctx)
	_ = s.Close()
	wg.Wait()
	out.put(msg{Ev: "stopped"})
	return err
}

// childBrowse runs one Browse and prints the result.
func childBrowse(c childCfg, out *childOut) error {
	start := time.Now()
	peers, err := Browse(context.Background(), c.Ifaces, time.Duration(c.WaitMillis)*time.Millisecond)
	if err != nil {
		return err
	}
	out.put(msg{Ev: "result", Peers: peers, Millis: time.Since(start).Milliseconds()})
	return nil
}

// childWatch runs Watch until stdin closes, printing events.
func childWatch(c childCfg, out *childOut) error {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() {
		_, _ = io.Copy(io.Discard, os.Stdin)
		cancel()
	}()
	out.put(msg{Ev: "ready"})
	err := Watch(ctx, c.Ifaces, func(ev Event) {
		p := ev.Peer
		out.put(msg{Ev: ev.Kind.String(), Peer: &p})
	})
	out.put(msg{Ev: "stopped"})
	return err
}

// child is a running child process seen from the parent.
type child struct {
	t     testing.TB
	name  string
	cmd   *exec.Cmd
	stdin io.WriteCloser
	lines chan msg
	exit  chan error
	seen  []msg        // lines read so far
	used  map[int]bool // indexes in seen already returned by waitFor
}

// startChild runs this test binary in mode inside h.
func startChild(t testing.TB, h *netlab.Host, name, mode string, cfg childCfg) *child {
	t.Helper()
	b, err := json.Marshal(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cmd := h.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(os.Environ(), envChild+"="+mode, envChildCfg+"="+string(b))
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	cmd.Stderr = &prefixWriter{t: t, prefix: name}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	c := &child{t: t, name: name, cmd: cmd, stdin: stdin, lines: make(chan msg, 1024), exit: make(chan error, 1)}
	var readers sync.WaitGroup
	readers.Add(1)
	go func() {
		defer readers.Done()
		defer close(c.lines)
		sc := bufio.NewScanner(stdout)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		for sc.Scan() {
			var m msg
			if err := json.Unmarshal(sc.Bytes(), &m); err != nil {
				t.Logf("%s: unparsable line %q", name, sc.Text())
				continue
			}
			if m.Ev == "log" {
				t.Logf("%s log: %s", name, m.Text)
			}
			c.lines <- m
		}
	}()
	go func() {
		readers.Wait()
		c.exit <- cmd.Wait()
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exit
		c.exit <- nil
	})
	return c
}

type prefixWriter struct {
	t      testing.TB
	prefix string
}

func (w *prefixWriter) Write(b []byte) (int, error) {
	for _, l := range strings.Split(strings.TrimRight(string(b), "\n"), "\n") {
		w.t.Logf("%s stderr: %s", w.prefix, l)
	}
	return len(b), nil
}

// waitFor returns the first line, not returned before, that matches pred,
// waiting up to timeout for it; it fails the test otherwise.
func (c *child) waitFor(timeout time.Duration, what string, pred func(msg) bool) msg {
	c.t.Helper()
	if c.used == nil {
		c.used = map[int]bool{}
	}
	for i, m := range c.seen {
		if !c.used[i] && pred(m) {
			c.used[i] = true
			return m
		}
	}
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		select {
		case m, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("%s exited while waiting for %s", c.name, what)
			}
			c.seen = append(c.seen, m)
			if pred(m) {
				c.used[len(c.seen)-1] = true
				return m
			}
		case <-deadline.C:
			for _, m := range c.seen {
				b, _ := json.Marshal(m)
				c.t.Logf("%s said: %s", c.name, b)
			}
			c.t.Fatalf("%s: no %s within %v", c.name, what, timeout)
		}
	}
}

// expectNone reads lines for d and fails the test if one matches pred.
func (c *child) expectNone(d time.Duration, what string, pred func(msg) bool) {
	c.t.Helper()
	for i, m := range c.seen {
		if !c.used[i] && pred(m) {
			c.t.Fatalf("%s: unexpected %s: %+v", c.name, what, m)
		}
	}
	end := time.NewTimer(d)
	defer end.Stop()
	for {
		select {
		case m, ok := <-c.lines:
			if !ok {
				c.t.Fatalf("%s exited while checking for no %s", c.name, what)
			}
			c.seen = append(c.seen, m)
			if pred(m) {
				c.t.Fatalf("%s: unexpected %s: %+v", c.name, what, m)
			}
		case <-end.C:
			return
		}
	}
}

// peerEvent matches an event of kind about the peer with id.
func peerEvent(kind EventKind, id string) func(msg) bool {
	return func(m msg) bool { return m.Ev == kind.String() && m.Peer != nil && m.Peer.ID == id }
}

// completePeer matches an up or update event making the peer with id
// complete.
func completePeer(id string) func(msg) bool {
	return func(m msg) bool {
		return (m.Ev == "up" || m.Ev == "update") && m.Peer != nil && m.Peer.ID == id && m.Peer.Complete()
	}
}

// stop closes the child's stdin (clean stop with goodbyes) and waits for it.
func (c *child) stop() {
	c.t.Helper()
	_ = c.stdin.Close()
	select {
	case err := <-c.exit:
		c.exit <- err
		if err != nil {
			c.t.Errorf("%s exited: %v", c.name, err)
		}
	case <-time.After(10 * time.Second):
		c.t.Fatalf("%s did not stop", c.name)
	}
}

// kill ends the child without goodbyes.
func (c *child) kill() {
	c.t.Helper()
	_ = c.cmd.Process.Kill()
	err := <-c.exit
	c.exit <- err
}

// pollStats asks an agent child for its Stats until ok accepts them.
func (c *child) pollStats(timeout time.Duration, what string, ok func(Stats) bool) Stats {
	c.t.Helper()
	deadline := time.Now().Add(timeout)
	for {
		c.send("stats")
		st := *c.waitFor(timeout, "stats", func(m msg) bool { return m.Ev == "stats" }).Stats
		if ok(st) {
			return st
		}
		if time.Now().After(deadline) {
			c.t.Fatalf("%s: stats %+v: want %s", c.name, st, what)
		}
		// Each round trip through the child paces the polling.
	}
}

func (c *child) send(line string) {
	c.t.Helper()
	if _, err := io.WriteString(c.stdin, line+"\n"); err != nil {
		c.t.Fatalf("%s: %v", c.name, err)
	}
}
