package peer

import (
	"bufio"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
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
	// Pending counts the offers that wait for the owner (--accept ask).
	Pending int `json:"pending"`
	// StrangerBudget is what strangers may send a day under --accept
	// everyone ("off" for no limit), StrangersLeft what is left of it
	// today (absent without a budget).
	StrangerBudget string  `json:"stranger_budget,omitempty"`
	StrangersLeft  *uint64 `json:"strangers_left,omitempty"`
	// Static are the static peers (lanshare peers add) and what the
	// agent's last check of each found.
	Static []StaticStatus `json:"static,omitempty"`
	// LocalSendListen is where the agent serves LocalSend's API, and
	// LocalSendFingerprint its certificate's fingerprint; both are absent
	// without LocalSend. LocalSend are the LocalSend devices it knows.
	LocalSendListen      string                      `json:"localsend_listen,omitempty"`
	LocalSendFingerprint string                      `json:"localsend_fingerprint,omitempty"`
	LocalSend            []discovery.LocalSendDevice `json:"localsend,omitempty"`
	// Queued counts the jobs of send --later that wait for their peer
	// (or are being delivered), QueueHeld those held as failed or
	// source-changed (lanshare queue).
	Queued    int `json:"queued"`
	QueueHeld int `json:"queue_held,omitempty"`
	// WebHTTPListen is where the agent serves the drop page and share
	// links over plain HTTP too (Config.WebInsecureHTTP), if it does.
	WebHTTPListen string `json:"web_http_listen,omitempty"`
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

// ControlRequest is one request on the control socket: a JSON object on
// one line. A client that sends nothing within requestWait gets the
// Status (what clients before requests did).
type ControlRequest struct {
	Op     string `json:"op"` // "status", "pending", "accept", "decline", "share", "unshare", "shares", "enqueue", "queue" or "cancel"
	ID     string `json:"id,omitempty"`
	Trust  bool   `json:"trust,omitempty"`
	Reason string `json:"reason,omitempty"`
	// Paths (absolute), Until and PIN ("" for none) are a share's
	// (share.go). RawPaths (absolute, as bytes: a file name need not be
	// UTF-8, which a JSON string cannot carry) and Target are a job's for
	// the queue (queue_agent.go).
	Paths    []string  `json:"paths,omitempty"`
	Until    time.Time `json:"until,omitzero"`
	PIN      string    `json:"pin,omitempty"`
	RawPaths [][]byte  `json:"raw_paths,omitempty"`
	Target   string    `json:"target,omitempty"`
}

// ControlReply answers a ControlRequest other than "status".
type ControlReply struct {
	Pending []PendingOffer `json:"pending,omitempty"`
	Offer   *PendingOffer  `json:"offer,omitempty"` // the offer accepted or declined
	Error   string         `json:"error,omitempty"`
	// NoPending is set when Error says that no offer waits under the id.
	NoPending bool `json:"no_pending,omitempty"`
	// Share is the share made by "share", Shares those "shares" lists.
	Share  *ShareLink  `json:"share,omitempty"`
	Shares []ShareLink `json:"shares,omitempty"`
	// Job is the job queued ("enqueue") or cancelled ("cancel"), Jobs
	// those "queue" lists, Skipped the paths "enqueue" left out;
	// WasDelivering says that a cancelled job was being delivered, and
	// Failure names the kind of Error (queue_agent.go).
	Job           *QueueJob      `json:"job,omitempty"`
	Jobs          []QueueJob     `json:"jobs,omitempty"`
	Skipped       []QueueSkipped `json:"skipped,omitempty"`
	WasDelivering bool           `json:"was_delivering,omitempty"`
	Failure       string         `json:"failure,omitempty"`
}

// Request ops.
const (
	OpStatus  = "status"
	OpPending = "pending"
	OpAccept  = "accept"
	OpDecline = "decline"
	OpShare   = "share"
	OpUnshare = "unshare"
	OpShares  = "shares"
	// The queue of send --later (queue_agent.go).
	OpEnqueue   = "enqueue"
	OpQueue     = "queue"
	OpCancelJob = "cancel"
	OpRetryJob  = "retry"
)

// requestWait is how long the control socket waits for a request before
// it answers with the status; maxRequest bounds a request's line (the
// paths of a queued job: send --later with a shell glob's worth).
const (
	requestWait = 500 * time.Millisecond
	maxRequest  = 1 << 20
)

// handle answers one request.
func (a *Agent) handleControl(req ControlRequest) any {
	switch req.Op {
	case "", OpStatus:
		return a.Status()
	case OpPending:
		return ControlReply{Pending: a.Pending()}
	case OpAccept, OpDecline:
		p, err := a.consents.decide(req.ID, Decision{Accept: req.Op == OpAccept, Trust: req.Trust, Reason: req.Reason})
		if err != nil {
			return ControlReply{Error: err.Error(), NoPending: errors.Is(err, ErrNoPending)}
		}
		return ControlReply{Offer: &p}
	case OpShare:
		l, err := a.Share(req.Paths, req.Until, req.PIN)
		if err != nil {
			return ControlReply{Error: err.Error()}
		}
		return ControlReply{Share: &l}
	case OpUnshare:
		if !a.Unshare(req.ID) {
			return ControlReply{Error: "no share " + Escape(req.ID)}
		}
		return ControlReply{}
	case OpShares:
		return ControlReply{Shares: a.Shares()}
	case OpEnqueue, OpQueue, OpCancelJob, OpRetryJob:
		return a.queueControl(req)
	}
	return ControlReply{Error: fmt.Sprintf("unknown request %q", req.Op)}
}

// serve answers every connection with handle's reply to its request
// until the socket closes. It runs on the caller's goroutine.
func (c *control) serve(handle func(ControlRequest) any) {
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
			if !ownerConn(conn) {
				return // another user: not even the status
			}
			_ = conn.SetDeadline(time.Now().Add(requestWait))
			var req ControlRequest
			var reply any
			line, err := bufio.NewReader(io.LimitReader(conn, maxRequest)).ReadBytes('\n')
			if err == nil || len(line) > 0 && !errors.Is(err, os.ErrDeadlineExceeded) {
				if json.Unmarshal(line, &req) != nil {
					reply = ControlReply{Error: fmt.Sprintf("malformed request: want one JSON object on a line of at most %d bytes", maxRequest)}
				}
			}
			if reply == nil {
				reply = handle(req)
			}
			_ = conn.SetDeadline(time.Now().Add(2 * time.Second))
			_ = json.NewEncoder(conn).Encode(reply)
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
	var st Status
	if err := exchange(ctx, dir, 2*time.Second, ControlRequest{Op: OpStatus}, &st); err != nil {
		return nil, err
	}
	return &st, nil
}

// AskAgent sends req to the agent that runs with config directory dir
// and returns its reply; the error wraps ErrNoAgent when none runs, and
// ErrNoPending when the reply says no offer waits under req.ID.
func AskAgent(ctx context.Context, dir string, req ControlRequest) (*ControlReply, error) {
	var rep ControlReply
	if err := exchange(ctx, dir, 3*time.Second, req, &rep); err != nil {
		return nil, err
	}
	switch {
	case rep.NoPending:
		return &rep, fmt.Errorf("%w: %s", ErrNoPending, strings.TrimPrefix(rep.Error, ErrNoPending.Error()+" "))
	case rep.Error != "":
		return &rep, fmt.Errorf("the agent says: %s", rep.Error)
	}
	return &rep, nil
}

// maxControlReply bounds what a client reads of a reply.
const maxControlReply = 16 << 20

// exchange sends req over the control socket in dir and decodes the one
// reply into v, all within limit; the error wraps ErrNoAgent when no agent
// listens there.
func exchange(ctx context.Context, dir string, limit time.Duration, req ControlRequest, v any) error {
	var d net.Dialer
	ctx, cancel := context.WithTimeout(ctx, limit)
	defer cancel()
	conn, err := d.DialContext(ctx, "unix", filepath.Join(dir, controlSocket))
	if err != nil {
		return fmt.Errorf("%w (config directory %s)", ErrNoAgent, dir)
	}
	defer conn.Close()
	if dl, ok := ctx.Deadline(); ok {
		_ = conn.SetDeadline(dl)
	}
	if err := json.NewEncoder(conn).Encode(req); err != nil {
		return fmt.Errorf("asking the agent: %w", err)
	}
	if err := json.NewDecoder(io.LimitReader(conn, maxControlReply)).Decode(v); err != nil {
		return fmt.Errorf("asking the agent: %w", err)
	}
	return nil
}
