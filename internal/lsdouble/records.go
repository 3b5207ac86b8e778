package lsdouble

import (
	"context"
	"maps"
	"net/netip"
	"slices"
	"time"
)

// maxRecords caps each record list; later entries are counted in
// Snapshot.Dropped instead.
const maxRecords = 20000

func appendCapped[T any](list *[]T, v T, dropped *int) {
	if len(*list) >= maxRecords {
		*dropped++
		return
	}
	*list = append(*list, v)
}

// Snapshot is a copy of everything a Device recorded, oldest first.
type Snapshot struct {
	Requests      []Request      // every HTTP request answered
	Registrations []Registration // POST /register received
	Sessions      []Session      // prepare-upload requests that got past PIN, body and busy checks
	Uploads       []Upload       // every upload attempt that passed the token check
	Files         []ReceivedFile // files received whole and verified
	Messages      []Message      // text messages (answered 204)
	Announcements []Announcement // foreign multicast datagrams that parsed
	BadDatagrams  []string       // foreign datagrams that did not parse (why, from)
	Answers       []Answer       // answers sent to announcements
	TLSErrors     []string       // failed TLS handshakes, as net/http logs them
	ServerErrors  []string       // other net/http error lines

	MaxParallelUploads     int // most upload bodies read at once
	ChecksumMismatchesLeft int // forced 422s still to come (Behaviour.ChecksumMismatches)
	Dropped                int // records not kept because a list was full
}

// Request is one HTTP request the receiver answered.
type Request struct {
	At                time.Time
	Method, Path      string
	Query             string // raw query
	From              netip.AddrPort
	ClientFingerprint string   // "" without a client certificate
	Status            int      // 0: closed without an answer (the sender had gone)
	ContentLength     int64    // -1 when unknown (chunked)
	TransferEncoding  []string // e.g. ["chunked"]
	ContentType       string
}

// Registration is a POST /register that parsed.
type Registration struct {
	At                time.Time
	From              netip.AddrPort
	ClientFingerprint string
	Info              PeerInfo
	// Valid is false when TLS was used and Info.Fingerprint differs from
	// the client certificate's: the app answers such a request but ignores
	// it.
	Valid bool
}

// SessionState is where a Session stands.
type SessionState string

const (
	SessionPending   SessionState = "pending"   // waiting for the decision
	SessionDeclined  SessionState = "declined"  // answered 403 Rejected
	SessionCancelled SessionState = "cancelled" // POST /cancel by the sender
	SessionAborted   SessionState = "aborted"   // the sender went away while pending, or the device closed
	SessionEmpty     SessionState = "empty"     // nothing accepted: answered 204 (text messages too)
	SessionActive    SessionState = "active"    // accepted, uploads pending
	SessionFinished  SessionState = "finished"  // every accepted file finished or failed
)

// Session is one prepare-upload that claimed the session slot.
type Session struct {
	ID                string
	At                time.Time
	From              netip.Addr
	ClientFingerprint string
	PIN               string // the ?pin= it came with, if any
	Info              PeerInfo
	Offered           []OfferedFile     // sorted by id
	Tokens            map[string]string // accepted file id → token
	Refused           []string          // ids not accepted because the name is unsafe
	State             SessionState
	Message           string // for a text message
	IsMessage         bool
	Finished, Failed  []string // file ids, in the order they ended
}

// Upload is one upload attempt that passed the token check.
type Upload struct {
	At                time.Time
	SessionID, FileID string
	FileName          string
	Attempt           int
	From              netip.Addr
	ClientFingerprint string
	ContentLength     int64 // -1 when the request had none (chunked)
	Chunked           bool
	Bytes             int64  // body bytes read
	SHA256            string // lower-case hex of the bytes read
	Status            int    // the answer: 200, 422, 500
	Err               string // why it was not 200
}

// ReceivedFile is a file received whole and verified.
type ReceivedFile struct {
	SessionID, FileID string
	Name              string // fileName as offered (dir/sub/x.txt)
	Path              string // where it was written; "" when Config.Dir is empty
	Size              int64
	SHA256            string // lower-case hex
	Attempts          int
	ClientFingerprint string
}

// Message is a text message received (one text/* entry with a preview).
type Message struct {
	At                time.Time
	SessionID         string
	From              netip.Addr
	ClientFingerprint string
	Alias             string
	Text              string
}

// Announcement is a foreign multicast datagram that parsed.
type Announcement struct {
	At           time.Time
	From         netip.AddrPort
	Group        netip.Addr // the group of the socket it arrived on
	Info         PeerInfo
	Announce     *bool // the "announce" member (nil when absent)
	Announcement *bool // the v1 "announcement" member
}

// Answer is this device's answer to an announcement.
type Answer struct {
	At       time.Time
	To       netip.AddrPort // the announcer's source address and announced port
	Protocol string
	Via      string   // "register" or "multicast"
	Answer   PeerInfo // the /register answer
	Err      string
}

// Snapshot returns a copy of the records.
func (d *Device) Snapshot() Snapshot {
	d.mu.Lock()
	defer d.mu.Unlock()
	return d.snapshotLocked()
}

func (d *Device) snapshotLocked() Snapshot {
	s := d.rec
	s.Requests = slices.Clone(s.Requests)
	s.Registrations = slices.Clone(s.Registrations)
	s.Uploads = slices.Clone(s.Uploads)
	s.Files = slices.Clone(s.Files)
	s.Messages = slices.Clone(s.Messages)
	s.Announcements = slices.Clone(s.Announcements)
	s.BadDatagrams = slices.Clone(s.BadDatagrams)
	s.Answers = slices.Clone(s.Answers)
	s.TLSErrors = slices.Clone(s.TLSErrors)
	s.ServerErrors = slices.Clone(s.ServerErrors)
	s.Sessions = make([]Session, len(d.sessions))
	for i, ss := range d.sessions {
		c := ss.Session
		c.Offered = slices.Clone(c.Offered)
		c.Tokens = maps.Clone(c.Tokens)
		c.Refused = slices.Clone(c.Refused)
		c.Finished = slices.Clone(c.Finished)
		c.Failed = slices.Clone(c.Failed)
		s.Sessions[i] = c
	}
	return s
}

// Wait blocks until cond holds for the records, or ctx ends (then it
// returns the last snapshot and ctx's error). cond runs without locks held
// and must not call the Device's methods that wait.
func (d *Device) Wait(ctx context.Context, cond func(Snapshot) bool) (Snapshot, error) {
	for {
		d.mu.Lock()
		s := d.snapshotLocked()
		ch := d.changed
		d.mu.Unlock()
		if cond(s) {
			return s, nil
		}
		select {
		case <-ch:
		case <-ctx.Done():
			return s, ctx.Err()
		}
	}
}
