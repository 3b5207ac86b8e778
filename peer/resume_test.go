package peer

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// serveInbox accepts connections on loopback and receives each into in
// with pol, until the test ends. It returns the address and a counter of
// the transfers that ended.
func serveInbox(t testing.TB, in *Inbox, pol Policy) (string, *atomic.Int64) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var ended atomic.Int64
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = in.ReceiveWith(c, pol)
				c.Close()
				ended.Add(1)
			}()
		}
	}()
	t.Cleanup(func() { ln.Close(); wg.Wait() })
	return ln.Addr().String(), &ended
}

// cutDialer dials plainly and cuts the connections numbered in cuts (from
// 1) after the given number of written bytes.
func cutDialer(cuts map[int]int) func(context.Context, string) (net.Conn, error) {
	var mu sync.Mutex
	n := 0
	return func(ctx context.Context, addr string) (net.Conn, error) {
		var d net.Dialer
		c, err := d.DialContext(ctx, "tcp", addr)
		if err != nil {
			return nil, err
		}
		mu.Lock()
		n++
		left, cut := cuts[n]
		mu.Unlock()
		if cut {
			return &cutConn{Conn: c, left: left}, nil
		}
		return c, nil
	}
}

var senderPolicy = Policy{SenderID: "sender-id-for-tests"}

// TestResumeAfterCut: a connection cut in the middle of a large file keeps
// its partial bytes; the next send of the same file moves only the rest,
// and the file arrives whole.
func TestResumeAfterCut(t *testing.T) {
	const size = 24 << 20
	src := writeTree(t, map[string]string{"big.bin": randomBytes(t, size)})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)

	cutAt := size * 7 / 10
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, Dial: cutDialer(map[int]int{1: cutAt})})
	if err == nil {
		t.Fatal("a cut send reported success")
	}
	waitFor(t, func() bool { return ended.Load() == 1 })
	if got := tree(t, in.Dir()); len(got) != 0 {
		t.Fatalf("a cut file appeared under a final name: %v", got)
	}
	if s := staged(t, in.Dir()); len(s) != 2 {
		t.Fatalf("staging folder holds %q, want a partial file and its record", s)
	}
	firstSent := rep.Sent

	rep, err = SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": readFile(t, filepath.Join(src, "big.bin"))})
	// The receiver had what crossed before the cut, less what was still
	// in flight.
	if rep.Resumed < uint64(cutAt)-4<<20 || rep.Sent+rep.Resumed != size {
		t.Fatalf("resumed at %d and sent %d (the first send sent %d, cut at %d); want a resume near the cut",
			rep.Resumed, rep.Sent, firstSent, cutAt)
	}
	t.Logf("cut at %d; resumed at %d, sent %d of %d", cutAt, rep.Resumed, rep.Sent, size)
}

// TestSendRetriesAndResumes: a send whose connection is cut retries by
// itself, resuming, and succeeds; each retry is reported.
func TestSendRetriesAndResumes(t *testing.T) {
	src := writeTree(t, map[string]string{
		"d/big.bin": randomBytes(t, 12<<20), "d/small.txt": "small", "d/sub/more.bin": randomBytes(t, 9<<20),
	})
	items := collect(t, filepath.Join(src, "d"))
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	var retries []Retry
	var attempts []int
	opt := SendOptions{
		Name: "s", retryBase: time.Millisecond,
		// Cut the first connection inside big.bin, the second inside
		// more.bin, the third in the offer.
		Dial:    cutDialer(map[int]int{1: 5 << 20, 2: 6 << 20, 3: 10}),
		OnRetry: func(r Retry) { retries = append(retries, r) },
		Progress: func(p Progress) {
			if len(attempts) == 0 || attempts[len(attempts)-1] != p.Attempt {
				attempts = append(attempts, p.Attempt)
			}
		},
	}
	rep, err := SendTo(context.Background(), addr, items, opt)
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), tree(t, src))
	if len(retries) != 3 || retries[0].Attempt != 2 || retries[2].Attempt != 4 || rep.Retries != 3 {
		t.Fatalf("retries %+v (report says %d), want 3", retries, rep.Retries)
	}
	if rep.Saved() != len(items) {
		t.Fatalf("%d of %d saved", rep.Saved(), len(items))
	}
	// Every byte crossed about once: what a cut lost was at most what
	// was in flight.
	if total := uint64(21<<20 + 5); rep.Sent > total+8<<20 {
		t.Fatalf("sent %d bytes for %d", rep.Sent, total)
	}
	t.Logf("sent %d bytes, resumed %d, progress attempts %v", rep.Sent, rep.Resumed, attempts)
}

// TestRetriesAreBounded: a receiver that drops every connection is given
// up on after Retries attempts without progress.
func TestRetriesAreBounded(t *testing.T) {
	src := writeTree(t, map[string]string{"f.bin": randomBytes(t, 6<<20)})
	items := collect(t, filepath.Join(src, "f.bin"))
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	cuts := map[int]int{}
	for i := 1; i < 100; i++ {
		cuts[i] = 30 // inside the offer: no progress ever
	}
	n := 0
	_, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: 3, retryBase: time.Millisecond,
		Dial: cutDialer(cuts), OnRetry: func(Retry) { n++ }})
	if err == nil || n != 0 {
		// The first connection never got the receiver's hello: nothing
		// to retry with.
		t.Fatalf("err %v after %d retries; want a failure without retries", err, n)
	}
	for i := 2; i < 100; i++ {
		cuts[i] = 30
	}
	cuts[1] = 2 << 20 // the first gets through the answer
	n = 0
	_, err = SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: 3, retryBase: time.Millisecond,
		Dial: cutDialer(cuts), OnRetry: func(Retry) { n++ }})
	if err == nil || n != 3 {
		t.Fatalf("err %v after %d retries; want a failure after 3", err, n)
	}
}

// TestDeadAgentPartialResumes: a partial file left by an agent that died
// (a record without the written count) resumes below its end, by the
// window of writes that may not have landed.
func TestDeadAgentPartialResumes(t *testing.T) {
	const size = 20 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	have := 15<<20 + 1234
	plantPartial(t, in, key, newRecord(senderPolicy.SenderID, "", items[0].Entry), content[:have])

	addr, _ := serveInbox(t, in, senderPolicy)
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
	want := uint64(have-resumeWindow) &^ (directAlign - 1)
	if rep.Resumed != want {
		t.Fatalf("resumed at %d, want %d", rep.Resumed, want)
	}
}

// TestDamagedPartialSentWhole: a partial file whose bytes are not the
// source's fails the digest; the receiver drops it and the send, retrying
// by itself, sends the file whole.
func TestDamagedPartialSentWhole(t *testing.T) {
	const size = 10 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	rec := newRecord(senderPolicy.SenderID, "", items[0].Entry)
	rec.Written = 8 << 20
	plantPartial(t, in, key, rec, randomBytes(t, 8<<20))

	addr, _ := serveInbox(t, in, senderPolicy)
	var retries []Retry
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", retryBase: time.Millisecond,
		OnRetry: func(r Retry) { retries = append(retries, r) }})
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
	var re *RefusedError
	if len(retries) != 1 || !errors.As(retries[0].Err, &re) || re.Code != proto.CodeDigest {
		t.Fatalf("retries %+v, want one after a digest failure", retries)
	}
	if rep.Sent != size+2<<20 {
		t.Fatalf("sent %d bytes, want the 2 MiB after the damaged part, then the whole %d", rep.Sent, size)
	}
}

// TestChangedSourceStartsOver: a source whose mtime or size changed since
// the partial was made is sent whole; the stale partial is left for the
// sweep.
func TestChangedSourceStartsOver(t *testing.T) {
	content := randomBytes(t, 8<<20)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	old := items[0].Entry
	old.MTime = old.MTime.Add(-time.Hour)
	key := fileKey(senderPolicy.SenderID, "", old)
	rec := newRecord(senderPolicy.SenderID, "", old)
	rec.Written = 6 << 20
	plantPartial(t, in, key, rec, content[:6<<20])

	addr, _ := serveInbox(t, in, senderPolicy)
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 0 || rep.Sent != 8<<20 {
		t.Fatalf("resumed %d, sent %d: a changed source must start over", rep.Resumed, rep.Sent)
	}
	if got := len(staged(t, in.Dir())); got != 2 {
		t.Fatalf("%d staged files, want the stale partial and record", got)
	}
	// The sweep keeps it until it is old, then removes it.
	if n := in.Sweep(time.Hour); n != 0 {
		t.Fatalf("sweep removed %d fresh files", n)
	}
	past := time.Now().Add(-2 * time.Hour)
	for _, p := range []string{partPath(key), recPath(key)} {
		if err := os.Chtimes(filepath.Join(in.Dir(), p), past, past); err != nil {
			t.Fatal(err)
		}
	}
	if n := in.Sweep(time.Hour); n != 2 {
		t.Fatalf("sweep removed %d files, want the partial and its record", n)
	}
	assertNoTemps(t, in.Dir())
}

// TestResendSkipsWhatArrived: sending a folder again moves no file bytes:
// every file is already there. A file changed since is saved under a new
// name; a file from another sender is never taken for ours.
func TestResendSkipsWhatArrived(t *testing.T) {
	files := map[string]string{"d/a.txt": "aaa", "d/sub/b.bin": randomBytes(t, 5<<20), "d/empty/": ""}
	for i := range 50 {
		files[fmt.Sprintf("d/many/%02d", i)] = fmt.Sprint(i)
	}
	src := writeTree(t, files)
	in := newInbox(t, InboxConfig{})
	addr, _ := serveInbox(t, in, senderPolicy)
	send := func() *Report {
		t.Helper()
		rep, err := SendTo(context.Background(), addr, collect(t, filepath.Join(src, "d")), SendOptions{Name: "s"})
		if err != nil {
			t.Fatal(err)
		}
		return rep
	}
	send()
	want := tree(t, src)
	assertTree(t, in.Dir(), want)

	rep := send()
	if rep.Sent != 0 {
		t.Fatalf("re-send moved %d file bytes, want 0", rep.Sent)
	}
	skipped := 0
	for i, r := range rep.Results {
		if r.Status == proto.Skipped {
			skipped++
			if r.SavedAs != rep.Items[i].Entry.Path {
				t.Errorf("%s skipped as %q", rep.Items[i].Entry.Path, r.SavedAs)
			}
		}
	}
	if skipped != len(files)-1 {
		t.Fatalf("%d files skipped as already there, want %d", skipped, len(files)-1)
	}
	assertTree(t, in.Dir(), want)

	// A changed file collides: it gets a new name, the old one stays.
	a := filepath.Join(src, "d", "a.txt")
	if err := os.WriteFile(a, []byte("AAAA"), 0o644); err != nil {
		t.Fatal(err)
	}
	if rep := send(); rep.Sent != 4 {
		t.Fatalf("sent %d bytes after one change, want 4", rep.Sent)
	}
	want["d/a (1).txt"] = "AAAA"
	assertTree(t, in.Dir(), want)

	// Another sender with the same tree is not "already there".
	other, _ := serveInbox(t, in, Policy{SenderID: "someone else"})
	rep, err := SendTo(context.Background(), other, collect(t, filepath.Join(src, "d")), SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range rep.Results {
		if r.Status != proto.Saved {
			t.Fatalf("another sender's file: %+v, want saved", r)
		}
	}
}

// TestStagingFolderNameRefused: an offer cannot write into the staging
// folder.
func TestStagingFolderNameRefused(t *testing.T) {
	in := newInbox(t, InboxConfig{})
	for _, p := range []string{".lanshare/arrived", ".LANSHARE/x", ".lanshare"} {
		o := transferOver(t, tcpPair, in, []Item{hostileItem(t, p)}, nil)
		var re *RefusedError
		if !errors.As(o.sendErr, &re) || re.Code != proto.CodeBadName {
			t.Fatalf("%q: send error %v, want refused as a bad name", p, o.sendErr)
		}
	}
	assertEmpty(t, in.Dir())
}

// TestStagingFolderLookAlikeWithTrailingDotRefused: a FAT folder (vfat)
// drops a name's trailing dots, so ".lanshare." opens the staging
// folder: such names are refused like the staging folder's own, under
// every rule set.
func TestStagingFolderLookAlikeWithTrailingDotRefused(t *testing.T) {
	for _, rules := range []NameRules{NamesNative, NamesPOSIX, NamesWindows} {
		in := newInbox(t, InboxConfig{NameRules: rules})
		for _, p := range []string{".lanshare./arrived", ".LANSHARE../x", ".lanshare ./x"} {
			o := transferOver(t, tcpPair, in, []Item{hostileItem(t, p)}, nil)
			var re *RefusedError
			if !errors.As(o.sendErr, &re) || re.Code != proto.CodeBadName {
				t.Fatalf("%s: %q: send error %v, want refused as a bad name", rules, p, o.sendErr)
			}
		}
		assertEmpty(t, in.Dir())
	}
}

func plantPartial(t testing.TB, in *Inbox, key string, rec partialRecord, content string) {
	t.Helper()
	if err := in.ensureStaging(); err != nil {
		t.Fatal(err)
	}
	if err := in.writeRecord(key, rec); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(in.Dir(), partPath(key)), []byte(content), 0o600); err != nil {
		t.Fatal(err)
	}
}

func readFile(t testing.TB, p string) string {
	t.Helper()
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// waitFor polls cond until it holds, failing the test after 10 s.
func waitFor(t testing.TB, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatal("condition not met within 10s")
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// stallConn stops writing after left bytes, without closing, until
// release is closed: a sender whose network vanished.
type stallConn struct {
	net.Conn
	left    int
	release chan struct{}
}

func (c *stallConn) Write(p []byte) (int, error) {
	if len(p) <= c.left {
		c.left -= len(p)
		return c.Conn.Write(p)
	}
	n, err := c.Conn.Write(p[:c.left])
	c.left = 0
	if err != nil {
		return n, err
	}
	<-c.release
	return n, net.ErrClosed
}

// TestStaleConnectionTakenOver: when a sender reconnects while the
// receiver still holds its earlier, silent connection, the new transfer
// takes the partial file over and resumes.
func TestStaleConnectionTakenOver(t *testing.T) {
	const size = 16 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)

	release := make(chan struct{})
	first := make(chan error, 1)
	go func() {
		_, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1,
			Dial: func(ctx context.Context, addr string) (net.Conn, error) {
				var d net.Dialer
				c, err := d.DialContext(ctx, "tcp", addr)
				if err != nil {
					return nil, err
				}
				return &stallConn{Conn: c, left: 10 << 20, release: release}, nil
			}})
		first <- err
	}()
	// The receiver has the first 10 MiB (less what the socket holds).
	waitFor(t, func() bool {
		fi, err := os.Stat(filepath.Join(in.Dir(), partPath(fileKey(senderPolicy.SenderID, "", items[0].Entry))))
		return err == nil && fi.Size() >= 8<<20
	})
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	close(release)
	if ferr := <-first; ferr == nil {
		t.Fatal("the stalled send reported success")
	}
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed < 8<<20 {
		t.Fatalf("resumed at %d: the partial of the silent connection was not taken over", rep.Resumed)
	}
	if ended.Load() < 1 {
		t.Fatal("the silent connection is still held")
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}

// TestCutBeforeFileEndKeepsWholePartial: a connection that ends between a
// large file's last byte and its file-end keeps every byte; the next send
// moves no file byte, only the file-end, and the file arrives whole.
func TestCutBeforeFileEndKeepsWholePartial(t *testing.T) {
	const size = 5 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)

	// What the sender writes before the file's bytes: its hello and offer.
	var head bytes.Buffer
	if err := proto.WriteHello(&head, proto.NewHello("s")); err != nil {
		t.Fatal(err)
	}
	if err := proto.WriteOffer(&head, proto.Offer{Entries: []proto.Entry{items[0].Entry}}); err != nil {
		t.Fatal(err)
	}
	_, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1,
		Dial: cutDialer(map[int]int{1: head.Len() + size})})
	if err == nil {
		t.Fatal("a cut send reported success")
	}
	waitFor(t, func() bool { return ended.Load() == 1 })

	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Sent != 0 || rep.Resumed != size {
		t.Fatalf("the resend sent %d bytes and resumed at %d; want 0 sent, resumed at %d", rep.Sent, rep.Resumed, size)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}
