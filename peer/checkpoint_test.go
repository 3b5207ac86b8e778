package peer

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanshare/lanshare/proto"
)

// cutPartial sends content as big.bin into in through a connection cut
// after cutAt bytes, and returns the items, the partial's key and the
// record the cut left.
func cutPartial(t *testing.T, in *Inbox, addr string, ended interface{ Load() int64 }, content string, cutAt int) ([]Item, string, partialRecord) {
	t.Helper()
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	before := ended.Load()
	if _, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, Dial: cutDialer(map[int]int{1: cutAt})}); err == nil {
		t.Fatal("a cut send reported success")
	}
	waitFor(t, func() bool { return ended.Load() > before })
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	return items, key, readRecord(t, in, key)
}

func readRecord(t testing.TB, in *Inbox, key string) partialRecord {
	t.Helper()
	b, err := in.readStaging(recPath(key), maxRecord)
	if err != nil {
		t.Fatal(err)
	}
	var rec partialRecord
	if err := json.Unmarshal(b, &rec); err != nil {
		t.Fatal(err)
	}
	return rec
}

func needStamps(t *testing.T) {
	t.Helper()
	fi, err := os.Stat(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	if _, ok := stampOf(fi); !ok {
		t.Skip("this platform keeps no digest state with a partial file")
	}
}

// TestCutKeepsDigestState: a cut transfer's record keeps the digest state
// of the partial's bytes, at a directAlign boundary within what was
// written, stamped with the partial file as it is; the next send goes on
// from there and the file arrives whole.
func TestCutKeepsDigestState(t *testing.T) {
	needStamps(t)
	const size = 24 << 20
	content := randomBytes(t, size)
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	items, key, rec := cutPartial(t, in, addr, ended, content, size*6/10+1234)

	ck := rec.Digest
	fi, err := os.Lstat(filepath.Join(in.Dir(), partPath(key)))
	if err != nil {
		t.Fatal(err)
	}
	if ck == nil || ck.At == 0 || ck.At%directAlign != 0 || ck.At > rec.Written || rec.Written != uint64(fi.Size()) {
		t.Fatalf("record %+v of a %d-byte partial: want a digest state at a boundary within what was written", rec, fi.Size())
	}
	if st, _ := stampOf(fi); st != ck.File {
		t.Fatalf("state stamped %+v, the partial is %+v", ck.File, st)
	}
	h, sum, err := proto.ResumeDigest(ck.State)
	if err != nil || h == nil {
		t.Fatalf("the kept state: %v", err)
	}
	want := proto.NewDigest()
	want.Write([]byte(content[:ck.At]))
	if string(want.Sum(nil)) != string(sum[:]) {
		t.Fatal("the kept state is not that of the partial's first bytes")
	}

	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != ck.At {
		t.Fatalf("resumed at %d, want the state's %d", rep.Resumed, ck.At)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}

// TestResumeFromStateReadsNoPrefix: with a digest state whose stamp
// matches the partial file, the resume does not read the partial's
// bytes: the digest goes on from the state. (Here the state was made for
// other bytes than the file holds, which only a forger could arrange; the
// file then arrives with the bytes on disk, proving they were not read.)
func TestResumeFromStateReadsNoPrefix(t *testing.T) {
	needStamps(t)
	const size, at = 10 << 20, 8 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	in := newInbox(t, InboxConfig{})
	key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
	onDisk := []byte(content[:at])
	onDisk[12345] ^= 1
	plantState(t, in, key, items[0].Entry, content[:at], string(onDisk))

	addr, _ := serveInbox(t, in, senderPolicy)
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != at {
		t.Fatalf("resumed at %d, want %d", rep.Resumed, at)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": string(onDisk) + content[at:]})
}

// plantState plants a partial file holding onDisk, whose record keeps the
// digest state of covered, stamped with the file as planted.
func plantState(t *testing.T, in *Inbox, key string, e proto.Entry, covered, onDisk string) {
	t.Helper()
	rec := newRecord(senderPolicy.SenderID, "", e)
	rec.Written = uint64(len(onDisk))
	plantPartial(t, in, key, rec, onDisk)
	f, err := in.openStaging(partPath(key), os.O_RDWR, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	h := proto.NewDigest()
	h.Write([]byte(covered))
	if rec.Digest = checkpoint(f, h, uint64(len(covered))); rec.Digest == nil {
		t.Fatal("no digest state")
	}
	if err := in.writeRecord(key, rec); err != nil {
		t.Fatal(err)
	}
}

// TestPartialDamagedAfterStateCaught: a partial file written to after its
// digest state was kept (here a byte changed in place, its size kept) is
// hashed again from disk: the damage fails the digest, nothing gets a
// final name, the partial is dropped, and the next send sends the file
// whole.
func TestPartialDamagedAfterStateCaught(t *testing.T) {
	needStamps(t)
	const size = 16 << 20
	content := randomBytes(t, size)
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	items, key, rec := cutPartial(t, in, addr, ended, content, 12<<20)
	if rec.Digest == nil {
		t.Fatal("the cut kept no digest state")
	}
	f, err := os.OpenFile(filepath.Join(in.Dir(), partPath(key)), os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte{content[4096] ^ 0xff}, 4096); err != nil {
		t.Fatal(err)
	}
	f.Close()

	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeDigest {
		t.Fatalf("resume of a damaged partial: %v, want a digest failure", err)
	}
	if rep.Resumed == 0 || rep.Resumed > rec.Digest.At {
		t.Fatalf("resumed at %d, want at most the state's %d", rep.Resumed, rec.Digest.At)
	}
	assertEmpty(t, in.Dir())

	rep, err = SendTo(context.Background(), addr, items, SendOptions{Name: "s"})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed != 0 {
		t.Fatalf("resumed at %d after a digest failure, want a whole send", rep.Resumed)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}

// TestCrashAfterStateResumesFromDisk: bytes written to a partial file
// after its record kept a digest state, the record left as it was (an
// agent of an earlier version that died in a resumed transfer; another
// program): the file no longer matches the state's stamp, and the
// resume, from the record's written bytes at most, delivers the file
// whole.
func TestCrashAfterStateResumesFromDisk(t *testing.T) {
	needStamps(t)
	const size = 20 << 20
	content := randomBytes(t, size)
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	items, key, rec := cutPartial(t, in, addr, ended, content, 8<<20)
	if rec.Digest == nil {
		t.Fatal("the cut kept no digest state")
	}
	// What the dead transfer wrote after resuming: the next bytes.
	part := filepath.Join(in.Dir(), partPath(key))
	if err := os.Truncate(part, int64(rec.Digest.At)); err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(part, os.O_WRONLY|os.O_APPEND, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(content[rec.Digest.At : rec.Digest.At+3<<20]); err != nil {
		t.Fatal(err)
	}
	f.Close()

	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed == 0 || rep.Resumed > rec.Written {
		t.Fatalf("resumed at %d, want the record's written %d or below", rep.Resumed, rec.Written)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}

// TestUnusableStateFallsBack: a record without a digest state (from an
// older version), or with a damaged one, still resumes, hashing the
// partial from disk, and the file arrives whole; an unused state is
// removed from the record before the partial is written.
func TestUnusableStateFallsBack(t *testing.T) {
	needStamps(t)
	const size, at = 12 << 20, 8 << 20
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	for _, tc := range []struct {
		name   string
		damage func(*partialRecord)
	}{
		{"none", func(r *partialRecord) { r.Digest = nil }},
		{"damaged", func(r *partialRecord) { r.Digest.State[len(r.Digest.State)-40] ^= 1 }},
		{"truncated", func(r *partialRecord) { r.Digest.State = r.Digest.State[:100] }},
	} {
		t.Run(tc.name, func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
			plantState(t, in, key, items[0].Entry, content[:at], content[:at])
			rec := readRecord(t, in, key)
			tc.damage(&rec)
			if err := in.writeRecord(key, rec); err != nil {
				t.Fatal(err)
			}
			var seen *digestCheckpoint
			tempFileHook = func(e proto.Entry, f *os.File) *os.File {
				seen = readRecord(t, in, key).Digest
				return f
			}
			t.Cleanup(func() { tempFileHook = nil })
			addr, _ := serveInbox(t, in, senderPolicy)
			rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
			if err != nil {
				t.Fatal(err)
			}
			if rep.Resumed != at {
				t.Fatalf("resumed at %d, want %d", rep.Resumed, at)
			}
			if seen != nil {
				t.Fatal("an unused digest state stayed in the record while the partial was written")
			}
			assertTree(t, in.Dir(), map[string]string{"big.bin": content})
		})
	}
}

// TestResumedSourceChangedInPrefixCaught: the sender's digest of a
// resumed file, made while the rest streams, still covers the part the
// receiver has, as the source holds it now: a source changed there since
// the cut (its size and mtime kept) fails the digest, and the retry sends
// the new file whole.
func TestResumedSourceChangedInPrefixCaught(t *testing.T) {
	const size = 12 << 20
	content := randomBytes(t, size)
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	items, _, _ := cutPartial(t, in, addr, ended, content, 9<<20)

	src := items[0].Source
	changed := []byte(content)
	changed[1<<20] ^= 0xff
	if err := os.WriteFile(src, changed, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Chtimes(src, items[0].Entry.MTime, items[0].Entry.MTime); err != nil {
		t.Fatal(err)
	}
	var retries []Retry
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", retryBase: 1,
		OnRetry: func(r Retry) { retries = append(retries, r) }})
	if err != nil {
		t.Fatal(err)
	}
	var re *RefusedError
	if len(retries) != 1 || !errors.As(retries[0].Err, &re) || re.Code != proto.CodeDigest {
		t.Fatalf("retries %+v, want one after a digest failure", retries)
	}
	if rep.Sent < size {
		t.Fatalf("sent %d bytes, want the rest and then the whole file", rep.Sent)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": string(changed)})
}

// TestDeathInResumeKeepsItsBytes: an agent that dies in a resumed
// transfer leaves a partial file longer than its last cut; the next
// resume starts below that end (by the window of writes that may not
// have landed), not back at the earlier cut, and the file arrives whole.
// Here the dead transfer wrote 12 MiB past the cut and then failed (out
// of space), leaving the record as it was while it ran.
func TestDeathInResumeKeepsItsBytes(t *testing.T) {
	const size, more = 40 << 20, 12 << 20
	content := randomBytes(t, size)
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	items, _, _ := cutPartial(t, in, addr, ended, content, 8<<20)

	if _, err := os.Stat("/dev/full"); err != nil {
		t.Skip("needs /dev/full")
	}
	var from int64 = -1
	tempFileHook = func(e proto.Entry, f *os.File) *os.File {
		// The transfer that dies: its next 12 MiB land, then nothing.
		off, err := f.Seek(0, io.SeekCurrent)
		if err != nil {
			t.Error(err)
			return f
		}
		if _, err := f.Write([]byte(content[off : off+more])); err != nil {
			t.Error(err)
			return f
		}
		full, err := os.OpenFile("/dev/full", os.O_WRONLY, 0)
		if err != nil {
			t.Error(err)
			return f
		}
		f.Close()
		from = off
		return full
	}
	t.Cleanup(func() { tempFileHook = nil })
	before := ended.Load()
	if _, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1}); err == nil {
		t.Fatal("a send into a full disk reported success")
	}
	waitFor(t, func() bool { return ended.Load() > before })
	tempFileHook = nil
	if from <= 0 {
		t.Fatalf("the second send did not resume (from %d)", from)
	}

	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
	if err != nil {
		t.Fatal(err)
	}
	want := uint64(from+more-resumeWindow) &^ (directAlign - 1)
	if rep.Resumed != want {
		t.Fatalf("resumed at %d, want %d (the dead transfer started at %d and wrote %d)", rep.Resumed, want, from, more)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
}

// TestResumeAfterSystemStopGoesBackToTheRecord: a partial left by a
// resumed transfer of another boot (the system stopped, or crashed, in
// the middle: what the transfer wrote past its record may not be on
// disk) resumes from the record's written bytes; of this boot (the agent
// alone died), from below its end.
func TestResumeAfterSystemStopGoesBackToTheRecord(t *testing.T) {
	if bootID() == "" {
		t.Skip("this system tells no boot from another")
	}
	const size, written, have = 20 << 20, 8 << 20, 15<<20 + 1234
	content := randomBytes(t, size)
	src := writeTree(t, map[string]string{"big.bin": content})
	items := collect(t, filepath.Join(src, "big.bin"))
	for _, tc := range []struct {
		boot string
		want uint64
	}{
		{"another boot", written},
		{bootID(), uint64(have-resumeWindow) &^ (directAlign - 1)},
	} {
		in := newInbox(t, InboxConfig{})
		key := fileKey(senderPolicy.SenderID, "", items[0].Entry)
		rec := newRecord(senderPolicy.SenderID, "", items[0].Entry)
		rec.Written, rec.Boot = written, tc.boot
		plantPartial(t, in, key, rec, content[:have])
		addr, _ := serveInbox(t, in, senderPolicy)
		rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1})
		if err != nil {
			t.Fatal(err)
		}
		if rep.Resumed != tc.want {
			t.Errorf("boot %q: resumed at %d, want %d", tc.boot, rep.Resumed, tc.want)
		}
		assertTree(t, in.Dir(), map[string]string{"big.bin": content})
	}
}
