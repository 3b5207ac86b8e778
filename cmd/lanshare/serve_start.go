package main

import (
	"context"
	"errors"
	"fmt"
	"net"

	"github.com/lanshare/lanshare/peer"
)

// errInUse marks a serve that cannot start because its port or its config
// directory is taken; it exits exitInUse.
var errInUse = errors.New("in use")

// inUseError is errInUse with the message that says who holds what.
type inUseError struct{ msg string }

func (e inUseError) Error() string        { return e.msg }
func (e inUseError) Is(target error) bool { return target == errInUse }

// startError turns the error of an agent that could not start into what
// to do about it: whether the port is held by this config directory's own
// agent (its control socket answers) or by another program, and how to
// share a folder that cannot be written.
func startError(ctx context.Context, cfg peer.Config, err error) error {
	switch {
	case errors.Is(err, peer.ErrNotWritable):
		return fmt.Errorf("%w; make it writable, or share another folder with --dir", err)
	case errors.Is(err, peer.ErrPlainHTTPListen) && peer.AddrInUse(err):
		port := cfg.WebInsecureHTTP
		if _, p, serr := net.SplitHostPort(port); serr == nil {
			port = p
		}
		return inUseError{fmt.Sprintf("port %s is in use by another program; choose another with --web-insecure-http", port)}
	case peer.AddrInUse(err), errors.Is(err, peer.ErrAgentRunning):
		if st, qerr := peer.QueryAgent(ctx, cfg.ConfigDir); qerr == nil {
			return inUseError{fmt.Sprintf("an agent already runs here (pid %d, listening on %s, config %s); lanshare status shows it",
				st.PID, st.Listen, peer.Escape(cfg.ConfigDir))}
		}
		if errors.Is(err, peer.ErrAgentRunning) {
			return inUseError{err.Error()}
		}
		port := cfg.Listen
		if _, p, serr := net.SplitHostPort(cfg.Listen); serr == nil {
			port = p
		}
		return inUseError{fmt.Sprintf("port %s is in use by another program; choose another with --listen (e.g. --listen :0 for any free port)", port)}
	}
	return err
}
