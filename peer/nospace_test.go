package peer

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path"
	"path/filepath"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// fullDisk makes the file offered as path be written to /dev/full, whose
// writes fail with ENOSPC, until the test ends, and calls onFull when it
// does.
func fullDisk(t testing.TB, path string, onFull func()) {
	t.Helper()
	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("needs /dev/full")
	}
	tempFileHook = func(e proto.Entry, f *os.File) *os.File {
		if e.Path != path {
			return f
		}
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			return f
		}
		f.Close()
		onFull()
		return full
	}
	t.Cleanup(func() { tempFileHook = nil })
}

// TestOutOfSpaceStopsTransfer: once the receiver is out of space, the
// transfer stops: the files after the one that failed do not cross, the
// sender is told "out of space" and exits with a refusal (its retry is
// refused for the free space); the send after space is back completes,
// skipping what arrived and resuming the file that failed.
func TestOutOfSpaceStopsTransfer(t *testing.T) {
	src := writeTree(t, map[string]string{
		"d/a.txt": "first", "d/b.bin": randomBytes(t, 6<<20),
		"d/c.bin": randomBytes(t, 16<<20), "d/d.bin": randomBytes(t, 16<<20), "d/e.bin": randomBytes(t, 16<<20),
	})
	var free atomic.Uint64
	free.Store(1 << 40)
	in := newInbox(t, InboxConfig{freeSpace: func(string) (uint64, error) { return free.Load(), nil }})
	addr, _ := serveInbox(t, in, senderPolicy)
	fullDisk(t, "d/b.bin", func() { free.Store(0) })

	items := collect(t, filepath.Join(src, "d"))
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", retryBase: 1})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeNoSpace {
		t.Fatalf("send into a full disk: %v, want refused for space", err)
	}
	t.Logf("sender: %v (sent %d bytes, %d retries)", err, rep.Sent, rep.Retries)
	// What a stop cannot save is what socket buffers hold: far less than
	// the 48 MiB after b.bin.
	if rep.Sent > 6<<20+24<<20 {
		t.Fatalf("the sender sent %d bytes: the files after the one that failed crossed", rep.Sent)
	}
	if got := tree(t, in.Dir()); got["d/a.txt"] != "first" || len(got) != 2 {
		t.Fatalf("after the stop the shared folder holds %v, want d/a.txt", keysOf(got))
	}

	tempFileHook = nil
	free.Store(1 << 40)
	rep, err = SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatalf("the send once space is back: %v", err)
	}
	if rep.Results[1].Status != proto.Skipped {
		t.Errorf("d/a.txt: %+v, want already there", rep.Results[1])
	}
	assertTree(t, in.Dir(), tree(t, src))
}

func keysOf(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestRetriesEndWhenNothingIsKept: a receiver that takes the offer each
// time and then fails the same file for space, while its free-space
// figure says there is room (a file system out of inodes, a quota), kept
// the sender in a loop: each attempt put bytes on the wire, which counted
// as progress, so the retries never ran out (seen: two connections a
// second for ten minutes). Now the sender reads the receipt the receiver
// sent before it reset the connection, which says why; and without a
// receipt, bytes sent and thrown away are no progress: the retries run
// out.
func TestRetriesEndWhenNothingIsKept(t *testing.T) {
	src := writeTree(t, map[string]string{"d/a.txt": "first", "d/b.bin": randomBytes(t, 6<<20),
		"d/c.bin": randomBytes(t, 16<<20), "d/d.bin": randomBytes(t, 16<<20), "d/e.bin": randomBytes(t, 16<<20)})
	items := collect(t, filepath.Join(src, "d"))
	for _, receipt := range []bool{true, false} {
		t.Run(fmt.Sprintf("receipt=%v", receipt), func(t *testing.T) {
			receiptAfterReset = receipt
			t.Cleanup(func() { receiptAfterReset = true })
			in := newInbox(t, InboxConfig{freeSpace: func(string) (uint64, error) { return 1 << 40, nil }})
			addr, _ := serveInbox(t, in, senderPolicy)
			var fills atomic.Int32
			fullDisk(t, "d/b.bin", func() { fills.Add(1) })

			ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
			defer cancel()
			rep, err := SendTo(ctx, addr, items, SendOptions{Name: "s", retryBase: time.Millisecond})
			if ctx.Err() != nil {
				t.Fatalf("the send was still retrying after 20s (%d attempts)", fills.Load())
			}
			t.Logf("sender: %v (%d attempts failed the file)", err, fills.Load())
			if got := tree(t, in.Dir()); got["d/a.txt"] != "first" {
				t.Fatalf("the shared folder holds %v, want d/a.txt kept", keysOf(got))
			}
			if receipt {
				var re *RefusedError
				if !errors.As(err, &re) || re.Code != proto.CodeNoSpace || rep.Retries != 0 {
					t.Fatalf("send: %v after %d retries, want the receipt's out of space at once", err, rep.Retries)
				}
				return
			}
			// The first retry finds d/a.txt kept: the count starts
			// again there, and no attempt after keeps anything.
			if !errors.Is(err, ErrIncomplete) || rep.Retries != DefaultRetries+1 {
				t.Fatalf("send: %v after %d retries, want incomplete after %d", err, rep.Retries, DefaultRetries+1)
			}
		})
	}
}

// TestOfferNeedsFreeInodes: a file system can run out of inodes long
// before its space (many small files on ext4 or tmpfs). An offer of more
// new files and folders than the inodes free beyond fileMargin is refused
// before any byte is sent, with both numbers.
func TestOfferNeedsFreeInodes(t *testing.T) {
	files := map[string]string{}
	for i := range 300 {
		files[fmt.Sprintf("d/e%d/f%03d.txt", i%3, i)] = "x"
	}
	src := writeTree(t, files)
	items := collect(t, filepath.Join(src, "d")) // 300 files in 4 folders
	var free atomic.Uint64
	in := newInbox(t, InboxConfig{freeFiles: func(string) (uint64, uint64, error) { return free.Load(), 1 << 20, nil }})
	addr, _ := serveInbox(t, in, senderPolicy)

	free.Store(fileMargin + 303)
	_, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeNoSpace {
		t.Fatalf("304 new entries into 303 free inodes: %v, want refused for space", err)
	}
	if want := "not enough inodes (need 304 for new files and folders, 303 free beyond the 1000 kept free)"; re.Reason != want {
		t.Fatalf("reason %q, want %q", re.Reason, want)
	}
	if got := tree(t, in.Dir()); len(got) != 0 {
		t.Fatalf("a refused offer left %v", keysOf(got))
	}

	free.Store(fileMargin + 304)
	if _, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"}); err != nil {
		t.Fatalf("304 new entries into 304 free inodes: %v", err)
	}
	assertTree(t, in.Dir(), tree(t, src))

	// Folders the offer does not name (LocalSend names none; a deep path
	// makes one a component) take inodes too: 20 files at depth 4 need
	// 100.
	deep := map[string]string{}
	for i := range 20 {
		deep[fmt.Sprintf("a%02d/b/c/d/f.txt", i)] = "y"
	}
	var only []Item
	for _, it := range collect(t, writeTree(t, deep)) {
		if it.Entry.Kind == proto.KindFile {
			it.Entry.Path = strings.TrimPrefix(it.Entry.Path, path.Dir(path.Dir(path.Dir(path.Dir(path.Dir(it.Entry.Path)))))+"/")
			only = append(only, it)
		}
	}
	free.Store(fileMargin + 99)
	if _, err := SendTo(context.Background(), addr, only, SendOptions{Name: "s"}); !errors.As(err, &re) || !strings.Contains(re.Reason, "need 100 for new files and folders") {
		t.Fatalf("20 files at depth 4, no folders offered, into 99 free inodes: %v, want refused needing 100", err)
	}
	free.Store(fileMargin + 100)
	if _, err := SendTo(context.Background(), addr, only, SendOptions{Name: "s"}); err != nil {
		t.Fatalf("20 files at depth 4 into 100 free inodes: %v", err)
	}

	// A small file system keeps a 64th of its inodes free, not 1000.
	in3 := newInbox(t, InboxConfig{freeFiles: func(string) (uint64, uint64, error) { return 404, 6400, nil }})
	addr3, _ := serveInbox(t, in3, senderPolicy)
	if _, err := SendTo(context.Background(), addr3, items, SendOptions{Name: "s"}); err != nil {
		t.Fatalf("304 entries into 404 free of 6400 inodes (100 kept free): %v", err)
	}

	// No count at all (btrfs): no check.
	in2 := newInbox(t, InboxConfig{freeFiles: func(string) (uint64, uint64, error) { return 0, 0, nil }})
	addr2, _ := serveInbox(t, in2, senderPolicy)
	if _, err := SendTo(context.Background(), addr2, items, SendOptions{Name: "s"}); err != nil {
		t.Fatalf("into a file system without an inode count: %v", err)
	}
}

// TestRetriesEndWhenAFileFailsEveryTime: a file corrupted on every try
// (a link that flips the same bit) fails its digest each time, which is
// worth a retry; the files beside it are already there at each retry,
// and counted as progress they made the retries endless. Only files
// saved anew are progress: the send gives up after its retries.
func TestRetriesEndWhenAFileFailsEveryTime(t *testing.T) {
	src := writeTree(t, map[string]string{"d/a.txt": "first", "d/b.bin": randomBytes(t, 6<<20)})
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	items := collect(t, filepath.Join(src, "d"))
	var dials atomic.Int32
	dial := nthDialer(&dials, func(_ int32, c net.Conn) net.Conn { return &flipConn{Conn: c, at: 3 << 20} })
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := SendTo(ctx, addr, items, SendOptions{Name: "s", Dial: dial, retryBase: time.Millisecond})
	if ctx.Err() != nil {
		t.Fatalf("the send was still retrying after 20s (%d connections)", dials.Load())
	}
	t.Logf("sender: %v (%d connections)", err, dials.Load())
	// The first retry finds d/a.txt there: the count starts again there.
	if err == nil || rep.Retries != DefaultRetries+1 {
		t.Fatalf("send: %v after %d retries, want a failure after %d", err, rep.Retries, DefaultRetries+1)
	}
	if got := tree(t, in.Dir()); got["d/a.txt"] != "first" || got["d/b.bin"] != "" {
		t.Fatalf("the shared folder holds %v, want d/a.txt and no d/b.bin", keysOf(got))
	}
}

// nthDialer dials plainly and wraps the nth connection (from 1) with
// wrap; dials counts them.
func nthDialer(dials *atomic.Int32, wrap func(n int32, c net.Conn) net.Conn) func(context.Context, string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		n := dials.Add(1)
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		return wrap(n, c), nil
	}
}

// TestRetriesCountAResumeStartedAgain: a large file cut, resumed and
// then failing its digest is thrown away by the receiver, and taken
// whole on the next try. Its bytes coming back count as progress from
// nothing again, not only once they pass the offset it had reached: a
// link that drops every 2 MiB still brings the file home.
func TestRetriesCountAResumeStartedAgain(t *testing.T) {
	const size = 10 << 20
	src := writeTree(t, map[string]string{"d/b.bin": randomBytes(t, size)})
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	items := collect(t, filepath.Join(src, "d"))
	var dials atomic.Int32
	dial := nthDialer(&dials, func(n int32, c net.Conn) net.Conn {
		switch n {
		case 1: // most of the file, then the link drops
			return &cutConn{Conn: c, left: 8 << 20}
		case 2: // resumed, and corrupted on the way
			return &flipConn{Conn: c, at: 1 << 20}
		}
		return &cutConn{Conn: c, left: 2 << 20}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	rep, err := SendTo(ctx, addr, items, SendOptions{Name: "s", Dial: dial, Retries: 3, retryBase: time.Millisecond})
	if err != nil {
		t.Fatalf("send: %v after %d connections", err, dials.Load())
	}
	t.Logf("%d connections, %d retries", dials.Load(), rep.Retries)
	if got := tree(t, in.Dir()); len(got["d/b.bin"]) != size {
		t.Fatalf("the shared folder holds %v, want d/b.bin whole", keysOf(got))
	}
}

// TestRetriesEndWhenEveryResumeFails: a link that cuts every fresh
// connection and corrupts every resumed one (or a receiver that fails
// every resume's digest) gets the progress mark lowered once, not at
// every failure: the send gives up.
func TestRetriesEndWhenEveryResumeFails(t *testing.T) {
	const size = 10 << 20
	src := writeTree(t, map[string]string{"d/b.bin": randomBytes(t, size)})
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	items := collect(t, filepath.Join(src, "d"))
	var dials atomic.Int32
	dial := nthDialer(&dials, func(n int32, c net.Conn) net.Conn {
		if n%2 == 1 {
			return &cutConn{Conn: c, left: 2 << 20}
		}
		return &flipConn{Conn: c, at: 1 << 20}
	})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	_, err := SendTo(ctx, addr, items, SendOptions{Name: "s", Dial: dial, Retries: 3, retryBase: time.Millisecond})
	if ctx.Err() != nil {
		t.Fatalf("the send was still retrying after 20s (%d connections)", dials.Load())
	}
	if err == nil {
		t.Fatal("a send over a link that corrupts every resume succeeded")
	}
	t.Logf("gave up after %d connections: %v", dials.Load(), err)
	if n := dials.Load(); n > 12 {
		t.Errorf("%d connections, want the retries (3) to end it soon after the mark came down once", n)
	}
}
