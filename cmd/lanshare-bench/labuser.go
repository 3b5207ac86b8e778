//go:build linux

package main

import (
	"errors"
	"fmt"
	"runtime"
	"slices"
	"sync"
)

// labUser is the netlab.TB the benchmark builds a lab with. Like the
// testing package, it runs the lab's construction on a goroutine of its own
// (do), which Fatalf ends with runtime.Goexit; Cleanup functions run, last
// first, when close is called.
type labUser struct {
	mu       sync.Mutex
	errs     []error
	cleanups []func()
}

func (u *labUser) Helper() {}

func (u *labUser) Cleanup(f func()) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.cleanups = append(u.cleanups, f)
}

func (u *labUser) Errorf(format string, args ...any) {
	u.mu.Lock()
	defer u.mu.Unlock()
	u.errs = append(u.errs, fmt.Errorf(format, args...))
}

func (u *labUser) Fatalf(format string, args ...any) {
	u.Errorf(format, args...)
	runtime.Goexit()
}

// Skipf fails: a benchmark that cannot build its lab has nothing to skip
// to.
func (u *labUser) Skipf(format string, args ...any) {
	u.Fatalf(format, args...)
}

// do runs f on a goroutine of its own and waits for it, so that a Fatalf
// in f ends f alone; it returns the errors reported so far.
func (u *labUser) do(f func()) error {
	done := make(chan struct{})
	go func() {
		defer close(done)
		f()
	}()
	<-done
	return u.err()
}

func (u *labUser) err() error {
	u.mu.Lock()
	defer u.mu.Unlock()
	return errors.Join(u.errs...)
}

// close runs the cleanups, last registered first, each on a goroutine of
// its own (as do runs f), and returns every error reported.
func (u *labUser) close() error {
	u.mu.Lock()
	cleanups := slices.Clone(u.cleanups)
	u.cleanups = nil
	u.mu.Unlock()
	for _, f := range slices.Backward(cleanups) {
		_ = u.do(f)
	}
	return u.err()
}
