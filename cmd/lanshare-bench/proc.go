//go:build linux

package main

import (
	"bytes"
	"context"
	"fmt"
	"os/exec"
	"slices"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
)

// place is where a process runs: the benchmark's own namespace (host nil),
// or a host of a lab.
type place struct {
	host *netlab.Host
	addr string // the address processes there listen on
}

// command returns cmd for prog inside p; ctx kills it.
func (p place) command(ctx context.Context, prog string, args ...string) *exec.Cmd {
	if p.host == nil {
		return exec.CommandContext(ctx, prog, args...)
	}
	return p.host.CommandContext(ctx, prog, args...)
}

// child is a process the benchmark started: a lanshare command, or this
// program in a helper role. It runs in a process group of its own, so a
// Ctrl-C at the terminal reaches the benchmark alone, which then kills
// each group (a helper's tar with it).
type child struct {
	name  string
	cmd   *exec.Cmd
	out   *output
	start time.Time
	done  chan struct{} // closed once the process is waited for
	err   error         // from Wait, set before done is closed
	end   time.Time
}

// output keeps what a child prints: its first line (sent on first once),
// its last line, and the last few KiB of everything, for error messages.
type output struct {
	mu      sync.Mutex
	partial []byte
	first   chan string
	gotOne  bool
	last    string
	tail    []byte
	watch   func(line string) // if set, called with every line
}

const tailMax = 4 << 10

func newOutput() *output { return &output{first: make(chan string, 1)} }

// Write takes what the child wrote to stdout or stderr.
func (o *output) Write(p []byte) (int, error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.tail = append(o.tail, p...)
	if len(o.tail) > tailMax {
		o.tail = append(o.tail[:0], o.tail[len(o.tail)-tailMax:]...)
	}
	o.partial = append(o.partial, p...)
	for {
		i := bytes.IndexByte(o.partial, '\n')
		if i < 0 {
			break
		}
		line := string(o.partial[:i])
		o.partial = o.partial[i+1:]
		o.last = line
		if o.watch != nil {
			o.watch(line)
		}
		if !o.gotOne {
			o.gotOne = true
			o.first <- line
		}
	}
	if len(o.partial) > tailMax {
		o.partial = o.partial[len(o.partial)-tailMax:]
	}
	return len(p), nil
}

func (o *output) lastLine() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.last
}

func (o *output) String() string {
	o.mu.Lock()
	defer o.mu.Unlock()
	return strings.TrimSpace(string(o.tail))
}

// startChild starts cmd (from place.command) with env added to this
// process's environment. The caller must wait for it (wait, stop or
// terminate), also on failure.
func startChild(name string, cmd *exec.Cmd, env ...string) (*child, error) {
	return startChildWatching(name, cmd, nil, env...)
}

// startChildWatching is startChild that also calls watch (if not nil)
// with every line the child prints, from the goroutine copying its
// output.
func startChildWatching(name string, cmd *exec.Cmd, watch func(line string), env ...string) (*child, error) {
	c := &child{name: name, cmd: cmd, out: newOutput(), done: make(chan struct{})}
	c.out.watch = watch
	// The user's LANSHARE_* settings (say LANSHARE_ACCEPT=trusted) are
	// not the benchmark's.
	inherited := slices.DeleteFunc(cmd.Environ(), func(kv string) bool { return strings.HasPrefix(kv, "LANSHARE_") })
	cmd.Env = append(inherited, env...)
	cmd.Stdout, cmd.Stderr = c.out, c.out
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	cmd.Cancel = func() error { return syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL) }
	cmd.WaitDelay = 5 * time.Second
	c.start = time.Now()
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("starting %s: %w", name, err)
	}
	go func() {
		c.err = cmd.Wait()
		c.end = time.Now()
		close(c.done)
	}()
	return c, nil
}

// firstLine waits for the child's first line of output, for at most
// timeout.
func (c *child) firstLine(ctx context.Context, timeout time.Duration) (string, error) {
	t := time.NewTimer(timeout)
	defer t.Stop()
	select {
	case l := <-c.out.first:
		return l, nil
	case <-c.done:
		// It may have printed its line and exited at once.
		select {
		case l := <-c.out.first:
			return l, nil
		default:
		}
		return "", fmt.Errorf("%s exited (%v) before printing a line: %s", c.name, c.err, c.out)
	case <-ctx.Done():
		return "", ctx.Err()
	case <-t.C:
		return "", fmt.Errorf("%s printed nothing within %v", c.name, timeout)
	}
}

// wait waits for the child to exit and returns an error if it failed.
func (c *child) wait() error {
	<-c.done
	if c.err == nil {
		return nil
	}
	if out := c.out.String(); out != "" {
		return fmt.Errorf("%s: %w: %s", c.name, c.err, out)
	}
	return fmt.Errorf("%s: %w", c.name, c.err)
}

// terminate sends SIGTERM, as a user stopping the agent would, and waits;
// a child that has not exited after ten seconds is killed.
func (c *child) terminate() error {
	_ = c.cmd.Process.Signal(syscall.SIGTERM)
	select {
	case <-c.done:
	case <-time.After(10 * time.Second):
		_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
		<-c.done
		return fmt.Errorf("%s did not stop within 10s of SIGTERM", c.name)
	}
	return c.wait()
}

// stop kills the child's process group if it still runs, and waits for
// it. It is safe after wait or terminate.
func (c *child) stop() {
	select {
	case <-c.done:
		return
	default:
	}
	_ = syscall.Kill(-c.cmd.Process.Pid, syscall.SIGKILL)
	<-c.done
}

// usage is what an exited process used.
type usage struct {
	maxRSS int64   // bytes
	cpu    float64 // seconds, user and system
}

// usage returns the exited child's resource use: it includes that of the
// children it waited for (a helper's tar), and its peak RSS is the largest
// of theirs.
func (c *child) usage() usage {
	ps := c.cmd.ProcessState
	if ps == nil {
		return usage{}
	}
	u := usage{cpu: (ps.UserTime() + ps.SystemTime()).Seconds()}
	if ru, ok := ps.SysUsage().(*syscall.Rusage); ok {
		u.maxRSS = ru.Maxrss << 10 // KiB on Linux
	}
	return u
}

// elapsed is the time from starting the child to its exit.
func (c *child) elapsed() time.Duration { return c.end.Sub(c.start) }
