//go:build linux

package main

import (
	"encoding/binary"
	"errors"
	"fmt"
	"net"
	"os"
	"sync"
	"syscall"
	"time"
	"unsafe"

	"golang.org/x/sys/unix"
)

// sniffer watches the loopback interface of the benchmark's namespace for
// the first TCP segments towards one port: the first SYN and the first
// segment carrying data. Times are the kernel's timestamps of the packets.
type sniffer struct {
	f    *os.File
	port uint16
	wg   sync.WaitGroup

	mu        sync.Mutex
	syn, data time.Time // zero until seen
	err       error
	done      chan struct{} // closed when the reader stops
}

// sniff starts watching for packets to port; call close to stop.
func sniff(port int) (*sniffer, error) {
	proto := htons(unix.ETH_P_ALL)
	fd, err := unix.Socket(unix.AF_PACKET, unix.SOCK_DGRAM|unix.SOCK_NONBLOCK|unix.SOCK_CLOEXEC, int(proto))
	if err != nil {
		return nil, fmt.Errorf("opening a packet socket: %w", err)
	}
	lo, err := net.InterfaceByName("lo")
	if err == nil {
		err = unix.Bind(fd, &unix.SockaddrLinklayer{Protocol: proto, Ifindex: lo.Index})
	}
	if err == nil {
		err = unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_TIMESTAMPNS, 1)
	}
	if err != nil {
		unix.Close(fd)
		return nil, fmt.Errorf("binding a packet socket to lo: %w", err)
	}
	s := &sniffer{f: os.NewFile(uintptr(fd), "packet socket"), port: uint16(port), done: make(chan struct{})}
	rc, err := s.f.SyscallConn()
	if err != nil {
		s.f.Close()
		return nil, err
	}
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		defer close(s.done)
		s.read(rc)
	}()
	return s, nil
}

func htons(v uint16) uint16 { return v<<8 | v>>8 }

// read takes packets until both times are known or the socket is closed.
func (s *sniffer) read(rc syscall.RawConn) {
	// Headers are all it looks at: the rest of a packet is cut off.
	buf := make([]byte, 256)
	oob := make([]byte, 128)
	for {
		var n, oobn int
		var rerr error
		err := rc.Read(func(fd uintptr) bool {
			n, oobn, _, _, rerr = unix.Recvmsg(int(fd), buf, oob, 0)
			return !errors.Is(rerr, unix.EAGAIN)
		})
		if err != nil {
			return // closed
		}
		if rerr != nil {
			s.mu.Lock()
			s.err = rerr
			s.mu.Unlock()
			return
		}
		syn, data := tcpTo(buf[:n], s.port)
		if !syn && !data {
			continue
		}
		at := packetTime(oob[:oobn])
		s.mu.Lock()
		if syn && s.syn.IsZero() {
			s.syn = at
		}
		if data && s.data.IsZero() {
			s.data = at
		}
		done := !s.syn.IsZero() && !s.data.IsZero()
		s.mu.Unlock()
		if done {
			return
		}
	}
}

// close stops watching and returns the times of the first SYN and the
// first data towards the port. Packets may still wait in the socket when
// the process that sent them has exited, so it gives the reader up to a
// second to find both.
func (s *sniffer) close() (syn, data time.Time, err error) {
	select {
	case <-s.done:
	case <-time.After(time.Second):
	}
	s.f.Close()
	s.wg.Wait()
	s.mu.Lock()
	defer s.mu.Unlock()
	switch {
	case s.err != nil:
		return syn, data, fmt.Errorf("reading the packet socket: %w", s.err)
	case s.syn.IsZero() || s.data.IsZero():
		return syn, data, fmt.Errorf("saw no connection to port %d on lo", s.port)
	}
	return s.syn, s.data, nil
}

// tcpTo reports whether the IP packet p is a TCP segment to port that
// opens a connection (SYN without ACK), or that carries data.
func tcpTo(p []byte, port uint16) (syn, data bool) {
	if len(p) == 0 {
		return false, false
	}
	var tcp []byte
	var ipPayload int
	switch p[0] >> 4 {
	case 4:
		ihl := int(p[0]&0x0f) * 4
		if len(p) < ihl+20 || ihl < 20 || p[9] != unix.IPPROTO_TCP {
			return false, false
		}
		tcp, ipPayload = p[ihl:], int(binary.BigEndian.Uint16(p[2:4]))-ihl
	case 6:
		if len(p) < 60 || p[6] != unix.IPPROTO_TCP {
			return false, false
		}
		tcp, ipPayload = p[40:], int(binary.BigEndian.Uint16(p[4:6]))
	default:
		return false, false
	}
	if binary.BigEndian.Uint16(tcp[2:4]) != port {
		return false, false
	}
	const flagSYN, flagACK = 0x02, 0x10
	flags := tcp[13]
	return flags&flagSYN != 0 && flags&flagACK == 0, ipPayload > int(tcp[12]>>4)*4
}

// packetTime is the kernel's receive timestamp in oob, or now if there is
// none.
func packetTime(oob []byte) time.Time {
	msgs, err := unix.ParseSocketControlMessage(oob)
	if err != nil {
		return time.Now()
	}
	for _, m := range msgs {
		if m.Header.Level == unix.SOL_SOCKET && m.Header.Type == unix.SCM_TIMESTAMPNS && len(m.Data) >= int(unsafe.Sizeof(unix.Timespec{})) {
			// The kernel's struct timespec, which unix.Timespec mirrors.
			ts := (*unix.Timespec)(unsafe.Pointer(&m.Data[0]))
			return time.Unix(ts.Unix())
		}
	}
	return time.Now()
}
