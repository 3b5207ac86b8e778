package peer

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sync"
	"time"

	"github.com/lanshare/lanshare/discovery"
)

// controlSocket is the agent's local control socket in its config
// directory: a Unix socket that only the owner of that directory (0700)
// can reach, and itself 0600.
const controlSocket = "agent.sock"

// Status is what a running agent says about itself over its control
// socket. Field names are stable (`lanshare status --json`).
type Status struct {
	Name     string    `json:"name"`
	Instance string    `json:"instance"`
	ID       string    `json:"id"`
	Listen   string    `json:"listen"`
	Dir      string    `json:"dir"`
	Accept   string    `json:"accept"`
	Version  string    `json:"version"`
	Since    time.Time `json:"since"`
	// Addrs are the addresses the agent advertises, with its port.
	Addrs []netip.AddrPort `json:"addrs"`
	Peers []discovery.Peer `json:"peers"`
	// Transfers counts the connections being received now.
	Transfers int `json:"transfers"`
	// Partials counts the partial files kept for a resume, and
	// PartialBytes the bytes they hold.
	Partials     int    `json:"partials"`
	PartialBytes uint64 `json:"partial_bytes"`
	// PID is the agent's process id.
	PID int `json:"pid"`
}

// Self is the agent as a discovery record, as peers see it; ok is false
// when it does not advertise itself.
func (st *Status) Self() (p discovery.Peer, ok bool) {
	if st.Instance == "" {
		return p, false
	}
	port := 0
	if len(st.Addrs) > 0 {
		port = int(st.Addrs[0].Port())
	}
	return discovery.Peer{Instance: st.Instance, Name: st.Name, ID: st.ID, Version: st.Version,
		Port: port, Addrs: st.Addrs}, true
}

// control serves Status on the control socket until closed.
type control struct {
	ln   net.Listener
	path string
	once sync.Once

	mu     sync.Mutex // guards closed, and orders wg.Add before close's wg.Wait
	closed bool
	wg     sync.WaitGroup
}

// listenControl opens the control socket in dir. A socket left by an agent
// that died is replaced; one that answers means another agent runs.
func listenControl(dir string) (*control, error) {
	path := filepath.Join(dir, controlSocket)
	if c, err := net.DialTimeout("unix", path, time.Second); err == nil {
		c.Close()
		return nil, fmt.Errorf("%w (%s)", ErrAgentRunning, dir)
	}
	_ = os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("control socket: %w", err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, fmt.Errorf("control socket: %w", err)
	}
	return &control{ln: ln, path: path}, nil
}

// serve answers every connection with status() until the socket closes.
// It runs on the caller's goroutine.
func (c *control) serve(status func() Status) {
	for {
		conn, err := c.ln.Accept()
		if err != nil {
			return
		}
		// An answer starts only while close has not begun to wait: a
		// WaitGroup must not grow from zero while it is waited on.
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		c.wg.Add(1)
		c.mu.Unlock()
		go func() {
			defer c.wg.Done()
			defer conn.Close()
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_ = json.NewEncoder(conn).Encode(status())
		}()
	}
}

// close stops serve, waits for answers in flight and removes the socket.
// Safe to call more than once.
func (c *control) close() {
	c.once.Do(func() {
		c.mu.Lock()
		c.closed = true
		c.mu.Unlock()
		c.ln.Close()
		c.wg.Wait()
		_ = os.Remove(c.path)
	})
}

// QueryAgent asks the agent that runs with config directory dir for its
// Status; the error wraps ErrNoAgent when none runs.
func QueryAgent(ctx context.Context, dir string) (*Status, error) {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, controlSocket))
	if err != nil {
		return nil, fmt.Errorf("%w (config directory %s)", ErrNoAgent, dir)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	var st Status
	if err := json.NewDecoder(conn).Decode(&st); err != nil {
		return nil, fmt.Errorf("asking the agent: %w", err)
	}
	return &st, nil
}
