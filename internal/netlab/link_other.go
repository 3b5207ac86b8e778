//go:build !linux

package netlab

import (
	"fmt"
	"sync/atomic"
	"time"
)

// The delay line and Host.Do join network namespaces, which only Linux
// has. Labs are never built elsewhere (Available says why, and New skips),
// so these only say so.

// Do reports that it cannot join the host's network namespace here.
func (h *Host) Do(f func() error) error {
	return fmt.Errorf("%w: joining a network namespace needs Linux", ErrUnavailable)
}

// Delay fails the lab's user: the delay line needs Linux.
func (l *Lab) Delay(h *Host, ifname string, oneWay time.Duration) *DelayLine {
	l.t.Helper()
	l.t.Fatalf("%v: the delay line needs Linux", ErrUnavailable)
	return nil
}

// DelayLine is the delay of a line; see link_linux.go.
type DelayLine struct {
	delay atomic.Int64 // nanoseconds, each way
}

// Set sets the delay each way.
func (d *DelayLine) Set(oneWay time.Duration) { d.delay.Store(int64(max(oneWay, 0))) }

// Get returns the delay each way.
func (d *DelayLine) Get() time.Duration { return time.Duration(d.delay.Load()) }
