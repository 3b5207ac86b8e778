//go:build !unix

package peer

// configLock is a no-op here: the control socket is the only guard
// against a second agent of one config directory (see cfglock_unix.go).
type configLock struct{}

func lockConfig(string) (*configLock, error) { return &configLock{}, nil }

func (l *configLock) release() {}
