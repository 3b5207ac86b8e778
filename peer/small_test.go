package peer

import (
	"bytes"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// TestSmallFilesEveryWay: small files (received into memory and written
// by the syncer) arrive whole with their times, in several groups, next
// to files just above and at the size that is buffered, an empty one,
// and one whose name is taken; both where the staging folder's file
// system makes unnamed files (Linux) and with named temporary files,
// and neither leaves anything in the staging folder.
func TestSmallFilesEveryWay(t *testing.T) {
	files := map[string]string{
		"d/empty":     "",
		"d/at-max":    randomBytes(t, smallMax),
		"d/above-max": randomBytes(t, smallMax+1),
		"d/taken.txt": "the sender's",
	}
	for i := range 3*groupFiles + 7 {
		files[fmt.Sprintf("d/%d/f%d", i%3, i)] = randomBytes(t, 1+i*37%9000)
	}
	// "unnamed by /proc" names the unnamed files by their /proc/self/fd
	// link, as an agent without the capability for linkat's
	// AT_EMPTY_PATH does on kernels that ask for one.
	for _, way := range []string{"unnamed", "unnamed by /proc", "named"} {
		t.Run(way, func(t *testing.T) {
			if way == "unnamed by /proc" {
				setEmptyPathDenied(t)
			}
			src := writeTree(t, files)
			mtime := time.Date(2001, 2, 3, 4, 5, 6, 0, time.UTC)
			for p := range files {
				if err := os.Chtimes(filepath.Join(src, filepath.FromSlash(p)), mtime, mtime); err != nil {
					t.Fatal(err)
				}
			}
			in := newInbox(t, InboxConfig{})
			if way == "named" {
				in.anon.Store(anonNo)
			}
			if err := os.MkdirAll(filepath.Join(in.Dir(), "d"), 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(in.Dir(), "d", "taken.txt"), []byte("the receiver's"), 0o644); err != nil {
				t.Fatal(err)
			}
			o := transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "d")), nil)
			if o.sendErr != nil || o.recvErr != nil {
				t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
			}
			want := map[string]string{}
			for p, c := range files {
				want[p] = c
			}
			want["d/taken.txt"] = "the receiver's"
			want["d/taken (1).txt"] = "the sender's"
			for _, d := range []string{"d/", "d/0/", "d/1/", "d/2/"} {
				want[d] = ""
			}
			assertTree(t, in.Dir(), want)
			for p := range files {
				saved := p
				if p == "d/taken.txt" {
					saved = "d/taken (1).txt"
				}
				fi, err := os.Stat(filepath.Join(in.Dir(), filepath.FromSlash(saved)))
				if err != nil {
					t.Fatal(err)
				}
				if !fi.ModTime().Equal(mtime) {
					t.Fatalf("%s: mtime %v, want %v", saved, fi.ModTime(), mtime)
				}
			}
			for _, r := range o.rep.Results {
				if r.Status != proto.Saved {
					t.Fatalf("result %+v, want saved", r)
				}
			}
			switch got := in.anon.Load(); {
			case way == "named" && got != anonNo:
				t.Fatalf("unnamed files were used (%d) though turned off", got)
			case way != "named" && runtime.GOOS == "linux" && got != anonYes:
				s, err := in.staging()
				if err != nil {
					t.Fatal(err)
				}
				f, err := s.openAnon(0o600)
				if err != nil && noAnon(err) {
					t.Skipf("the file system of %s makes no unnamed files (%v): the named way is the one used here", in.Dir(), err)
				}
				if f != nil {
					f.Close()
				}
				t.Fatalf("no unnamed files on Linux (%d), though O_TMPFILE works here (%v): is linkat refused?", got, err)
			}
		})
	}
}

// TestSmallFileCorruptNeverWritten: a small file whose digest does not
// match is failed before anything of it reaches the disk, and the files
// around it are saved.
func TestSmallFileCorruptNeverWritten(t *testing.T) {
	src := writeTree(t, map[string]string{"d/a": "first", "d/b": strings.Repeat("b", 5000), "d/c": "third"})
	in := newInbox(t, InboxConfig{})
	// Flip one byte of b's contents on the wire: TLS is not in the way
	// of this plain connection.
	o := transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "d")), func(c net.Conn) net.Conn {
		return &needleConn{Conn: c, needle: []byte(strings.Repeat("b", 64))}
	})
	if o.sendErr == nil && o.rep.Results[2].Status == proto.Saved {
		t.Fatal("the corrupted file was reported saved")
	}
	got := tree(t, in.Dir())
	if _, ok := got["d/b"]; ok {
		t.Fatal("the corrupted file got its name")
	}
	if got["d/a"] != "first" || got["d/c"] != "third" {
		t.Fatalf("the files around the corrupted one: %q", keysOf(got))
	}
	assertNoTemps(t, in.Dir())
}

// needleConn flips the first byte of the first write that holds needle.
type needleConn struct {
	net.Conn
	needle []byte
	done   bool
}

func (c *needleConn) Write(p []byte) (int, error) {
	if !c.done {
		if k := bytes.Index(p, c.needle); k >= 0 {
			p = bytes.Clone(p)
			p[k] ^= 0xff
			c.done = true
		}
	}
	return c.Conn.Write(p)
}

// TestStagedBudgetHeldBackNotStopped: when the transfers together hold
// more staging files than the budget (here, as if others held them), a
// transfer of many small files still completes, holding one file at a
// time, and every file it counted is given back.
func TestStagedBudgetHeldBackNotStopped(t *testing.T) {
	files := map[string]string{}
	for i := range groupFiles + 50 {
		files[fmt.Sprintf("d/f%d", i)] = randomBytes(t, 100+i)
	}
	src := writeTree(t, files)
	others := stagedBudget + 10
	before := stagedOpen.Add(others)
	defer stagedOpen.Add(-others)
	in := newInbox(t, InboxConfig{})
	o := transferOver(t, tcpPair, in, collect(t, filepath.Join(src, "d")), nil)
	if o.sendErr != nil || o.recvErr != nil {
		t.Fatalf("send: %v, receive: %v", o.sendErr, o.recvErr)
	}
	want := map[string]string{"d/": ""}
	for p, c := range files {
		want[p] = c
	}
	assertTree(t, in.Dir(), want)
	if got := stagedOpen.Load(); got != before {
		t.Fatalf("the transfer left %d staging files counted", got-before)
	}
}
