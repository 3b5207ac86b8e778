package peer

import (
	"errors"
	"fmt"

	"github.com/lanshare/lanshare/proto"
)

// Errors returned by this package. They are wrapped with context; test with
// errors.Is.
var (
	// ErrNameUnsafe means an offered path cannot be created safely under the
	// shared folder.
	ErrNameUnsafe = errors.New("unsafe name")
	// ErrNameRules means an unknown NameRules value.
	ErrNameRules = errors.New("unknown name rules")
	// ErrUnreadable means a local file or folder given to Collect, or met
	// in a folder it walked, cannot be read; it was left out of the send.
	ErrUnreadable = errors.New("cannot be read")
	// ErrNameNotCarried means a local name cannot be offered: it is not
	// valid UTF-8, or its path is over the protocol's caps (see
	// proto.CheckPath); it was left out of the send.
	ErrNameNotCarried = errors.New("name cannot be sent")
	// ErrNotRegular means a symbolic link or special file met in a walked
	// folder; it was left out of the send.
	ErrNotRegular = errors.New("not a regular file or directory")
	// ErrStagingUnsafe means the staging folder (.lanshare in the shared
	// folder) or a file in it is not what the agent made: a folder of
	// another user, a symbolic link, a FIFO, a file with another name.
	ErrStagingUnsafe = errors.New("unsafe staging folder")
	// ErrRefused means the receiver refused the whole batch or some entries;
	// errors.As with *RefusedError gives the code and reason.
	ErrRefused = errors.New("refused")
	// ErrIncomplete means the transfer ended without a receipt that confirms
	// every file: the connection dropped, or files failed on the receiver.
	ErrIncomplete = errors.New("transfer incomplete")
	// ErrNothingToSend means the paths given to Collect held no file or
	// directory that can be sent.
	ErrNothingToSend = errors.New("nothing to send")
	// ErrBadPattern means an exclude pattern that cannot be used (see
	// NewExclude).
	ErrBadPattern = errors.New("bad exclude pattern")
	// ErrDuplicatePath means two different local files (or a file and a
	// directory) given to Collect would arrive under the same relative
	// path.
	ErrDuplicatePath = errors.New("two sources for one path")
	// ErrClosed means the agent was closed.
	ErrClosed = errors.New("agent closed")
	// ErrHandshake means a connection failed before the transfer began:
	// not TLS, a peer without a certificate, a timeout. (A receiver with
	// the wrong key is ErrWrongKey.)
	ErrHandshake = errors.New("handshake failed")
	// ErrTurnedAway means the receiver closed the connection before the
	// TLS handshake could complete, without a TLS alert: an agent does so
	// when every connection slot is taken (or when it is stopping). It
	// comes wrapped in ErrHandshake, and a send retries it.
	ErrTurnedAway = errors.New("the receiver closed the connection at once (all its connection slots may be taken)")
	// ErrUnknownPeer means no peer on the network matched a target name.
	ErrUnknownPeer = errors.New("no peer named")
	// ErrCannotTrust means a sender cannot be trusted: it presented no
	// key (an old LocalSend app, a device over plain HTTP).
	ErrCannotTrust = errors.New("cannot trust this sender")
	// ErrAmbiguousPeer means a target name matched more than one peer.
	ErrAmbiguousPeer = errors.New("ambiguous peer")
	// ErrNotSendable means the peer a target names cannot receive from us:
	// its record lacks our fields, or it speaks another protocol version.
	ErrNotSendable = errors.New("cannot send to peer")
	// ErrWrongKey means the peer at the other end of a connection holds
	// another key than the id we expected: an impostor, or a peer whose key
	// changed.
	ErrWrongKey = errors.New("peer's key does not match its id")
	// ErrKeyChanged means a peer's name is pinned to another id than the one
	// the peer now has: a reinstalled device, or an impostor taking its name.
	ErrKeyChanged = errors.New("peer's key changed")
	// ErrKnownFile means the known-peers file holds a line that cannot be
	// used; the error names the line.
	ErrKnownFile = errors.New("bad known_peers file")
	// ErrStaticFile means the static-peers file cannot be used: a line
	// that does not parse (the error names it), or a file over its caps.
	ErrStaticFile = errors.New("bad static_peers file")
	// ErrStaticFull means the static-peers list holds MaxStaticPeers
	// already.
	ErrStaticFull = errors.New("too many static peers")
	// ErrNotStatic means no static peer matches what was named.
	ErrNotStatic = errors.New("no static peer matches")
	// ErrQueueFile means the queue file of send --later (queue.json in
	// the config directory) cannot be used: it does not parse, or it is
	// over its caps; the error names the file and what is wrong. The
	// agent leaves it as it is and delivers nothing until it is fixed.
	ErrQueueFile = errors.New("bad queue file")
	// ErrQueueFull means the queue holds MaxQueueJobs jobs, or the job
	// would take it over MaxQueueEntries files and folders.
	ErrQueueFull = errors.New("the queue is full")
	// ErrNoJob means no queued job has the id given.
	ErrNoJob = errors.New("no queued job")
	// ErrJobNotHeld means a queued job cannot be retried: it is not held
	// as failed or source-changed, but waits or is being delivered.
	ErrJobNotHeld = errors.New("the job is not failed")
	// ErrNotQueueable means a target cannot be queued for: a LocalSend
	// device, an address that names no key, this agent itself.
	ErrNotQueueable = errors.New("cannot queue for this target")
	// ErrSourceUnreadable means a file offered could not be read in full
	// while it was sent (it became unreadable, shrank or changed): the
	// sender's own failure, not the receiver's refusal; see SourceError.
	ErrSourceUnreadable = errors.New("cannot read a file to send")
	// ErrNotWritable means the shared folder (or its staging folder)
	// cannot be written: a read-only file system, permissions, a quota.
	// New checks it before the agent listens or announces itself.
	ErrNotWritable = errors.New("the shared folder cannot be written")
	// ErrPeerStopped means the receiver stopped during a send: it was
	// reached, then refused a new connection (its agent no longer
	// listens). A send does not retry it; see StoppedError.
	ErrPeerStopped = errors.New("the receiver stopped")
	// ErrNoAgent means no agent runs with that config directory.
	ErrNoAgent = errors.New("no agent running")
	// ErrAgentRunning means another agent already runs with that config
	// directory.
	ErrAgentRunning = errors.New("an agent already runs with this config directory")
	// ErrTextInvalid means a text message cannot be sent: it is empty,
	// over MaxTextLen, or not UTF-8.
	ErrTextInvalid = errors.New("cannot send this text message")
	// ErrPlainHTTPListen means the drop page's plain-HTTP port
	// (Config.WebInsecureHTTP) cannot be listened on. New fails then:
	// unlike LocalSend's port, which a LocalSend app may hold by default,
	// this one was asked for by name.
	ErrPlainHTTPListen = errors.New("cannot listen for the drop page over plain HTTP")
	// ErrTextUnsupported means the receiver cannot take text messages: a
	// lanshare agent older than protocol 1.2 (see TextUnsupportedError).
	ErrTextUnsupported = errors.New("the receiver cannot take text messages")
	// ErrTooManyTexts means a remote address sent text messages over the
	// receiver's limit (TextsPerMinute); the receiving agent refused the
	// message and does not report it one line each.
	ErrTooManyTexts = errors.New("too many text messages")
)

// RefusedError carries the receiver's code and reason for a refusal. Path
// is empty when the whole batch was refused.
type RefusedError struct {
	Peer   string
	Path   string
	Code   proto.Code
	Reason string
	// Text is set when the whole batch refused was a text message: it
	// reads "bob refused the message: …".
	Text bool
	// Failed is set for a file the receiver accepted and then did not
	// save for a reason that the same send again may mend (a write that
	// failed, a digest or size that did not match, a transfer cut): "bob
	// could not save big.bin: …". It is an incomplete send
	// (ErrIncomplete), not a refusal.
	Failed bool
}

func (e *RefusedError) Error() string {
	who := e.Peer
	if who == "" {
		who = "receiver"
	}
	what := ""
	switch {
	case e.Path != "":
		what = " " + Escape(e.Path)
	case e.Text:
		what = " the message"
	}
	reason := e.Reason
	if reason == "" {
		reason = e.Code.String()
	}
	if e.Failed {
		return fmt.Sprintf("%s could not save%s: %s", who, what, Escape(reason))
	}
	return fmt.Sprintf("%s refused%s: %s", who, what, Escape(reason))
}

// Is makes errors.Is(err, ErrRefused) true, or for a file that failed
// (Failed), errors.Is(err, ErrIncomplete).
func (e *RefusedError) Is(target error) bool {
	if e.Failed {
		return target == ErrIncomplete
	}
	return target == ErrRefused
}

// failedCode reports whether a file accepted and then not saved with code
// c failed (see RefusedError.Failed) rather than was refused on the way:
// a limit or a policy (too large, the strangers' budget, a bad name)
// stays a refusal, as does a lack of space, which a retry's answer
// refuses too (the same send exits the same way whichever tells it), and
// whatever stopped a pipe's stream, which cannot be sent again.
func failedCode(c proto.Code, kind proto.Kind) bool {
	if kind == proto.KindStream {
		return false
	}
	switch c {
	case proto.CodeIO, proto.CodeDigest, proto.CodeSize, proto.CodeAborted, proto.CodeInternal, proto.CodeShuttingDown:
		return true
	}
	return false
}

// Errors of the receiving agent's connection limits.
var (
	// ErrTooSlow means a sender delivered less than the minimum rate
	// (Config.MinRate over Config.RateWindow) after the answer, and was
	// dropped.
	ErrTooSlow = errors.New("sender too slow")
	// ErrEvicted means a stranger's connection was closed to make room
	// for a new sender while every connection slot was taken.
	ErrEvicted = errors.New("connection evicted to make room")
)

// senderReason is the reason recorded for an entry its sender gave up
// (a file end or stream end with an error code): the sender's own reason,
// or, when it gave none, what its code means.
func senderReason(code proto.Code, reason string) string {
	if reason == "" {
		reason = code.String()
	}
	return "sender: " + reason
}
