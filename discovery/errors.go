package discovery

import "errors"

// Sentinel errors. Errors returned by this package wrap one of these (check
// with errors.Is) and add context.
var (
	// ErrInvalidConfig reports a Config that Validate rejects.
	ErrInvalidConfig = errors.New("discovery: invalid config")
	// ErrClosed is returned by Run after Close.
	ErrClosed = errors.New("discovery: service closed")
	// ErrRunning is returned by a second concurrent call to Run.
	ErrRunning = errors.New("discovery: service already running")
	// ErrNoSocket is returned when neither an IPv4 nor an IPv6 socket
	// could be opened (mDNS's, or LocalSend's).
	ErrNoSocket = errors.New("discovery: cannot open a multicast socket")
	// ErrMalformed reports an mDNS packet or record that cannot be used.
	ErrMalformed = errors.New("discovery: malformed mDNS packet")
	// ErrMalformedAnnouncement reports a LocalSend announcement (or
	// device) that cannot be used.
	ErrMalformedAnnouncement = errors.New("discovery: malformed LocalSend announcement")
)
