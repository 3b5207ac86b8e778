//go:build unix

package main

import (
	"io"
	"os"
	"syscall"
)

// pollableStdin returns a reader of f, standard input, whose read in
// progress a send can cut short (with a read deadline) when it ends
// early: for a pipe, a FIFO or a socket, a duplicate of f in non-blocking
// mode, which Go's poller watches; other files as they are (a regular
// file's reads return at once). restore puts f back in blocking mode,
// which it shares with the duplicate, and closes the duplicate.
func pollableStdin(f *os.File) (r io.Reader, restore func()) {
	fi, err := f.Stat()
	if err != nil || fi.Mode()&(os.ModeNamedPipe|os.ModeSocket) == 0 {
		return f, func() {}
	}
	fd, err := syscall.Dup(int(f.Fd()))
	if err != nil {
		return f, func() {}
	}
	syscall.CloseOnExec(fd)
	if err := syscall.SetNonblock(fd, true); err != nil {
		syscall.Close(fd)
		return f, func() {}
	}
	d := os.NewFile(uintptr(fd), f.Name())
	return d, func() {
		_ = syscall.SetNonblock(fd, false)
		d.Close()
	}
}
