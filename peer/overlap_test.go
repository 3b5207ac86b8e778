package peer

import (
	"context"
	"errors"
	"io/fs"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// pauseConn stops writing after left bytes until release is closed, then
// goes on: a sender whose network stalled for a while.
type pauseConn struct {
	net.Conn
	left    int
	release chan struct{}
}

func (c *pauseConn) Write(p []byte) (int, error) {
	if c.left < 0 || len(p) <= c.left {
		c.left -= len(p)
		return c.Conn.Write(p)
	}
	n, err := c.Conn.Write(p[:c.left])
	c.left = -1
	if err != nil {
		return n, err
	}
	<-c.release
	m, err := c.Conn.Write(p[n:])
	return n + m, err
}

// wrapDialer dials plainly and wraps the connection.
func wrapDialer(wrap func(net.Conn) net.Conn) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return wrap(c), nil
	}
}

// watchInbox serves in with pol and hands the progress function of each
// transfer that starts receiving files to the returned channel. It also
// returns the count of transfers that ended.
func watchInbox(t testing.TB, in *Inbox, pol Policy) (string, <-chan func() InProgress, *atomic.Int64) {
	t.Helper()
	started := make(chan func() InProgress, 16)
	pol.Watch = func(p func() InProgress) { started <- p }
	addr, ended := serveInbox(t, in, pol)
	return addr, started, ended
}

// TestAbortKeepsFolderAnotherSenderUses: a sender that aborts does not
// remove a folder it created that another sender is merging into; the
// other's file arrives.
func TestAbortKeepsFolderAnotherSenderUses(t *testing.T) {
	a := writeTree(t, map[string]string{"d/a.bin": randomBytes(t, 6<<20)})
	b := writeTree(t, map[string]string{"d/b.bin": randomBytes(t, 3<<20)})
	in := newInbox(t, InboxConfig{})
	addrA, startedA, endedA := watchInbox(t, in, Policy{SenderID: "sender-a"})
	addrB, startedB, _ := watchInbox(t, in, Policy{SenderID: "sender-b"})

	// A creates d and stalls inside a.bin.
	releaseA := make(chan struct{})
	doneA := make(chan error, 1)
	go func() {
		_, err := SendTo(context.Background(), addrA, collect(t, filepath.Join(a, "d")),
			SendOptions{Name: "a", Retries: -1, Dial: wrapDialer(func(c net.Conn) net.Conn {
				return &stallConn{Conn: c, left: 2 << 20, release: releaseA}
			})})
		doneA <- err
	}()
	progA := <-startedA
	waitFor(t, func() bool { return progA().Bytes >= 1<<20 })

	// B merges into d and stalls inside b.bin.
	releaseB := make(chan struct{})
	doneB := make(chan error, 1)
	var repB *Report
	go func() {
		var err error
		repB, err = SendTo(context.Background(), addrB, collect(t, filepath.Join(b, "d")),
			SendOptions{Name: "b", Retries: -1, Dial: wrapDialer(func(c net.Conn) net.Conn {
				return &pauseConn{Conn: c, left: 1 << 20, release: releaseB}
			})})
		doneB <- err
	}()
	progB := <-startedB
	waitFor(t, func() bool { return progB().Bytes >= 512<<10 })

	// A aborts; its receiver cleans up; then B goes on.
	close(releaseA)
	if err := <-doneA; err == nil {
		t.Fatal("the aborted send reported success")
	}
	waitFor(t, func() bool { return endedA.Load() == 1 })
	close(releaseB)
	if err := <-doneB; err != nil {
		t.Fatalf("the other sender's transfer failed: %v", err)
	}
	if r := repB.Results[1]; r.Status != proto.Saved || r.SavedAs != "d/b.bin" {
		t.Fatalf("b.bin: %+v, want saved as d/b.bin", r)
	}
	if got := tree(t, in.Dir())["d/b.bin"]; got != readFile(t, filepath.Join(b, "d", "b.bin")) {
		t.Fatal("d/b.bin is not the file sent")
	}
}

// TestPlaceFallsBackToRenameOnlyWithoutHardLinks: a link that fails
// because the temporary file is gone is reported as such, not retried as
// a rename that fails the same way and hides the cause.
func TestPlaceFallsBackToRenameOnlyWithoutHardLinks(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	if err := in.ensureStaging(); err != nil {
		t.Fatal(err)
	}
	f, tmp, err := in.createStagingTemp()
	if err != nil {
		t.Fatal(err)
	}
	f.Close()
	tr := newTransfer(in, Policy{}, proto.Offer{}, time.Now())
	_, err = tr.place(tmp, nil, "gone", "f.txt", "", "", nil, "")
	var le *os.LinkError
	if !errors.Is(err, fs.ErrNotExist) || !errors.As(err, &le) || !strings.HasPrefix(le.Op, "link") {
		t.Fatalf("placing a file in a missing directory: %v, want the link's own error", err)
	}
	for _, e := range []error{syscall.EPERM, syscall.EMLINK, syscall.ENOTSUP, syscall.EOPNOTSUPP, syscall.ENOSYS} {
		if !noHardLinks(&os.LinkError{Op: "link", Err: e}) {
			t.Errorf("%v: not taken for a file system without hard links", e)
		}
	}
	for _, e := range []error{syscall.ENOENT, syscall.EACCES, syscall.ENOSPC, syscall.EIO} {
		if noHardLinks(&os.LinkError{Op: "link", Err: e}) {
			t.Errorf("%v: taken for a file system without hard links", e)
		}
	}
}
