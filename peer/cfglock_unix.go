//go:build unix

package peer

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"

	"golang.org/x/sys/unix"
)

// configLock is the lock an agent holds on its config directory for its
// whole life (see lockConfig).
type configLock struct{ f *os.File }

// lockConfig takes the agent's exclusive lock on dir: one agent per
// config directory, whatever port each listens on. The control socket
// alone cannot tell (two agents starting together both find none), and
// since an agent whose default port is taken listens on another, the
// port no longer does. The kernel drops the lock when the process dies.
// Where the file system has no locks (some network mounts), there is
// none, and the control socket is the only guard, as before.
func lockConfig(dir string) (*configLock, error) {
	f, err := os.OpenFile(filepath.Join(dir, "agent.lock"), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("locking the config directory: %w", err)
	}
	for {
		err = unix.Flock(int(f.Fd()), unix.LOCK_EX|unix.LOCK_NB)
		if err != unix.EINTR {
			break
		}
	}
	switch {
	case err == nil:
		return &configLock{f: f}, nil
	case errors.Is(err, unix.EWOULDBLOCK):
		f.Close()
		return nil, fmt.Errorf("%w (%s)", ErrAgentRunning, dir)
	case errors.Is(err, unix.ENOLCK), errors.Is(err, unix.EOPNOTSUPP), errors.Is(err, unix.ENOSYS):
		f.Close()
		return &configLock{}, nil
	default:
		f.Close()
		return nil, fmt.Errorf("locking the config directory: %w", err)
	}
}

// release drops the lock; safe on nil and twice.
func (l *configLock) release() {
	if l != nil && l.f != nil {
		l.f.Close()
		l.f = nil
	}
}
