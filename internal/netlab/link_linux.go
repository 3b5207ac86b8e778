//go:build linux

package netlab

// Link emulation: rate limits with tc, and delay with a delay line of our
// own, since netem is not built into every kernel (the machines this
// project is tested on lack CONFIG_NET_SCH_NETEM).
//
// A delayed interface is rewired in the switch namespace: its veth port
// leaves the segment's bridge for a bridge of its own, which holds one tap
// device; a second tap sits in the segment's bridge; and a thread per
// direction carries each Ethernet frame from one tap to the other once it
// has aged by the delay. The taps carry virtio-net headers and accept
// segmentation offloads, so a TCP stream crosses the line in frames of up
// to 64 KiB, a few thousand a second at gigabit rates, not one per MTU.

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sys/unix"
)

// Delay makes every frame between h's interface ifname and its segment
// take oneWay longer, in each direction, so a round trip through that
// interface gains twice oneWay, and returns the line, whose delay can be
// changed. Frames keep their order and are never dropped by the delay
// line itself. It may be called once per interface; the line runs until
// the lab is removed.
//
// Each crossing is late by the time the kernel takes to wake the line's
// thread and to pass the frame on, and by the timer's own lateness: some
// tens of microseconds on an idle machine, never early. A caller that
// needs a given round trip can measure it and Set the delay to make up
// for that.
func (l *Lab) Delay(h *Host, ifname string, oneWay time.Duration) *DelayLine {
	l.t.Helper()
	var ifc *Iface
	for i := range h.Ifaces {
		if h.Ifaces[i].Name == ifname {
			ifc = &h.Ifaces[i]
		}
	}
	if ifc == nil {
		l.t.Fatalf("netlab: Delay: host %s has no lab interface %s", h.NS, ifname)
		return nil
	}
	if oneWay <= 0 {
		l.t.Fatalf("netlab: Delay: delay %v is not positive", oneWay)
		return nil
	}
	n := l.delays
	l.delays++
	br, near, far := fmt.Sprintf("dl%d", n), fmt.Sprintf("dl%dh", n), fmt.Sprintf("dl%ds", n)
	tapNear, err := openTap(l.sw, near)
	if err != nil {
		l.t.Fatalf("netlab: Delay: %v", err)
		return nil
	}
	tapFar, err := openTap(l.sw, far)
	if err != nil {
		unix.Close(tapNear)
		l.t.Fatalf("netlab: Delay: %v", err)
		return nil
	}
	line, err := startDelayLine(tapNear, tapFar, oneWay)
	if err != nil {
		unix.Close(tapNear)
		unix.Close(tapFar)
		l.t.Fatalf("netlab: Delay: %v", err)
		return nil
	}
	l.t.Cleanup(line.close)
	l.ip(l.sw, "link", "add", br, "type", "bridge", "mcast_snooping", "0")
	l.ip(l.sw, "link", "set", ifc.port, "nomaster")
	l.ip(l.sw, "link", "set", ifc.port, "master", br)
	l.ip(l.sw, "link", "set", near, "master", br, "up")
	l.ip(l.sw, "link", "set", far, "master", fmt.Sprintf("br%d", ifc.Segment), "up")
	l.ip(l.sw, "link", "set", br, "up")
	return line
}

// openTap creates the tap device name in namespace ns and returns its
// file descriptor, non-blocking. The device lives as long as it is open.
func openTap(ns, name string) (fd int, err error) {
	err = inNamespace(ns, func() (err error) {
		fd, err = makeTap(name)
		return err
	})
	return fd, err
}

// Do runs f on a thread that has joined the host's network namespace and
// waits for it: the sockets f makes (net.Listen, net.Dial) belong to the
// host, whichever goroutine uses them afterwards. f must not start
// goroutines that make sockets, which would run elsewhere.
func (h *Host) Do(f func() error) error {
	return inNamespace(h.NS, f)
}

// inNamespace runs f on a goroutine whose thread has joined the network
// namespace ns, and waits for it. The thread stays locked: it ends with
// the goroutine instead of going back to the runtime in ns.
func inNamespace(ns string, f func() error) error {
	errc := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		nsFile, err := os.Open(filepath.Join("/run/netns", ns))
		if err != nil {
			errc <- err
			return
		}
		err = unix.Setns(int(nsFile.Fd()), unix.CLONE_NEWNET)
		nsFile.Close()
		if err != nil {
			errc <- fmt.Errorf("joining namespace %s: %w", ns, err)
			return
		}
		errc <- f()
	}()
	return <-errc
}

// makeTap creates the tap device name in the calling thread's namespace.
func makeTap(name string) (int, error) {
	fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC|unix.O_NONBLOCK, 0)
	if err != nil {
		return -1, fmt.Errorf("opening /dev/net/tun: %w", err)
	}
	ifr, err := unix.NewIfreq(name)
	if err == nil {
		ifr.SetUint16(unix.IFF_TAP | unix.IFF_NO_PI | unix.IFF_VNET_HDR)
		err = unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr)
	}
	if err == nil {
		err = unix.IoctlSetInt(fd, unix.TUNSETOFFLOAD, unix.TUN_F_CSUM|unix.TUN_F_TSO4|unix.TUN_F_TSO6)
	}
	if err != nil {
		unix.Close(fd)
		return -1, fmt.Errorf("creating tap %s: %w", name, err)
	}
	return fd, nil
}

// DelayLine carries frames both ways between two taps, each after a
// delay. Each direction is one thread that waits in ppoll(2) for a frame
// to arrive or the next one to fall due, whichever comes first: frames are
// stamped as soon as the kernel hands them over and sent without a hop
// through the runtime's scheduler, which would add tens of microseconds.
type DelayLine struct {
	delay atomic.Int64 // nanoseconds, each way
	taps  [2]int       // file descriptors, non-blocking
	stop  [2]int       // a pipe: closing stop[1] ends the carriers
	wg    sync.WaitGroup
	once  sync.Once
}

// Set makes frames that arrive from now on take oneWay to cross, each
// way (0: as soon as the line can pass them on). Frames never overtake
// each other: after a shorter delay is set, new frames still wait for
// those before them.
func (d *DelayLine) Set(oneWay time.Duration) {
	d.delay.Store(int64(max(oneWay, 0)))
}

// Get returns the delay each way.
func (d *DelayLine) Get() time.Duration { return time.Duration(d.delay.Load()) }

// frameBuf is the size of a frame buffer: a virtio-net header and the
// largest frame with segmentation offload (64 KiB of IP packet).
const frameBuf = 80 << 10

// lineQueue is how many frames a direction holds while they age; while it
// is full, the carrier stops reading (the tap's own queue then fills and
// drops, as a link's would).
const lineQueue = 1024

func startDelayLine(a, b int, delay time.Duration) (*DelayLine, error) {
	d := &DelayLine{taps: [2]int{a, b}}
	d.delay.Store(int64(delay))
	if err := unix.Pipe2(d.stop[:], unix.O_CLOEXEC|unix.O_NONBLOCK); err != nil {
		return nil, fmt.Errorf("making a pipe: %w", err)
	}
	for _, dir := range [][2]int{{a, b}, {b, a}} {
		d.wg.Add(1)
		go func() {
			defer d.wg.Done()
			d.carry(dir[0], dir[1])
		}()
	}
	return d, nil
}

// frame is one frame in a delay line: its bytes (a virtio-net header and
// the Ethernet frame) and when it is due out.
type frame struct {
	buf []byte
	due time.Time
}

// carry moves frames from the tap from to the tap to, each the delay
// after it arrived, until the line is closed.
func (d *DelayLine) carry(from, to int) {
	runtime.LockOSThread()
	defer runtime.UnlockOSThread()
	// The default timer slack, 50 µs, would be a fifth of a 250 µs delay.
	if err := unix.Prctl(unix.PR_SET_TIMERSLACK, 1, 0, 0, 0); err == nil {
		defer unix.Prctl(unix.PR_SET_TIMERSLACK, 0, 0, 0, 0)
	}
	var free [][]byte
	var queue []frame // oldest first; due times never decrease
	fds := []unix.PollFd{{Fd: int32(d.stop[0]), Events: unix.POLLIN}, {Fd: int32(from), Events: unix.POLLIN}}
	for {
		var timeout *unix.Timespec
		if len(queue) > 0 {
			ts := unix.NsecToTimespec(max(int64(time.Until(queue[0].due)), 0))
			timeout = &ts
		}
		fds[1].Events = unix.POLLIN
		if len(queue) >= lineQueue {
			fds[1].Events = 0
		}
		if _, err := unix.Ppoll(fds, timeout, nil); err != nil && !errors.Is(err, unix.EINTR) {
			return
		}
		if fds[0].Revents != 0 || fds[1].Revents&(unix.POLLERR|unix.POLLHUP|unix.POLLNVAL) != 0 {
			// Closed, or the device is going away.
			return
		}
		if fds[1].Revents&unix.POLLIN != 0 {
			due := time.Now().Add(time.Duration(d.delay.Load()))
			if n := len(queue); n > 0 && due.Before(queue[n-1].due) {
				due = queue[n-1].due
			}
			for len(queue) < lineQueue {
				var buf []byte
				if n := len(free); n > 0 {
					buf, free = free[n-1], free[:n-1]
				} else {
					buf = make([]byte, frameBuf)
				}
				n, err := unix.Read(from, buf[:frameBuf])
				if err != nil || n <= 0 {
					// EAGAIN: all read. EIO: the device is not up yet.
					free = append(free, buf)
					break
				}
				queue = append(queue, frame{buf: buf[:n], due: due})
			}
		}
		now := time.Now()
		sent := 0
		for ; sent < len(queue) && !queue[sent].due.After(now); sent++ {
			// A frame the other side cannot take (its device is down)
			// is lost, as on a wire.
			_, _ = unix.Write(to, queue[sent].buf)
			free = append(free, queue[sent].buf)
		}
		queue = append(queue[:0], queue[sent:]...)
	}
}

// close stops the line and waits for its threads; the taps disappear.
func (d *DelayLine) close() {
	d.once.Do(func() {
		unix.Close(d.stop[1])
		d.wg.Wait()
		unix.Close(d.stop[0])
		for _, fd := range d.taps {
			unix.Close(fd)
		}
	})
}
