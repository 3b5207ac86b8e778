package peer

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// stateOf returns the digest state of b.
func stateOf(t testing.TB, b []byte) []byte {
	t.Helper()
	h := proto.NewDigest()
	h.Write(b)
	s, err := proto.AppendDigestState(nil, h)
	if err != nil {
		t.Skip("this build cannot save digest states:", err)
	}
	return s
}

func digestOfBytes(b []byte) []byte {
	h := proto.NewDigest()
	h.Write(b)
	return h.Sum(nil)
}

// TestDigestCacheKeying: an entry is found only for the very stamp it was
// saved for: another device, inode, size, mtime or change time finds
// nothing, and the states come back as saved.
func TestDigestCacheKeying(t *testing.T) {
	data := bytes.Repeat([]byte("0123456789abcdef"), 1<<17) // 2 MiB
	c := openDigestCache(t.TempDir())
	st := partialStamp{Dev: 1, Ino: 2, Size: int64(len(data)), MTime: 4, CTime: 5}
	marks := []digestMark{{at: 1 << 20, state: stateOf(t, data[:1<<20])}, {at: 2 << 20, state: stateOf(t, data)}}
	if err := c.save(st, marks); err != nil {
		t.Fatal(err)
	}
	h, from, err := c.resume(st, 2<<20-4096)
	if err != nil || from != 1<<20 {
		t.Fatalf("resume below the second state: from %d, %v; want from the first", from, err)
	}
	if got, err := c.load(st); err != nil || len(got) != 2 || got[1].at != 2<<20 || !bytes.Equal(got[1].state, marks[1].state) {
		t.Fatalf("loaded %d states (%v), want the 2 saved", len(got), err)
	}
	h.Write(data[1<<20:])
	if !bytes.Equal(h.Sum(nil), digestOfBytes(data)) {
		t.Fatal("the state kept does not go on to the file's digest")
	}
	if _, _, err := c.resume(st, 1<<20-1); err == nil {
		t.Fatal("a state above the offset was used")
	}
	for _, other := range []partialStamp{
		{Dev: 9, Ino: 2, Size: st.Size, MTime: 4, CTime: 5},
		{Dev: 1, Ino: 9, Size: st.Size, MTime: 4, CTime: 5},
		{Dev: 1, Ino: 2, Size: st.Size + 1, MTime: 4, CTime: 5},
		{Dev: 1, Ino: 2, Size: st.Size, MTime: 9, CTime: 5},
		{Dev: 1, Ino: 2, Size: st.Size, MTime: 4, CTime: 9},
	} {
		if _, err := c.load(other); err == nil {
			t.Fatalf("stamp %+v found the entry of %+v", other, st)
		}
	}
	// An entry renamed to another stamp's name is refused by its content.
	other := st
	other.CTime++
	if err := os.Rename(filepath.Join(c.dir, entryName(st)), filepath.Join(c.dir, entryName(other))); err != nil {
		t.Fatal(err)
	}
	if _, err := c.load(other); err == nil {
		t.Fatal("an entry was used for a stamp it was not saved for")
	}
	var none *digestCache
	if _, err := none.load(st); err == nil || none.save(st, marks) != nil {
		t.Fatal("a nil cache found or refused something")
	}
}

// TestDigestCacheRefusesDamage: a damaged, cut, padded, reordered or
// oversized entry, or a damaged state, is refused, never used.
func TestDigestCacheRefusesDamage(t *testing.T) {
	data := randomBytes(t, 3<<20)
	st := partialStamp{Dev: 1, Ino: 2, Size: int64(len(data)), MTime: 4, CTime: 5}
	c := openDigestCache(t.TempDir())
	var marks []digestMark
	for at := uint64(1 << 20); at <= 3<<20; at += 1 << 20 {
		marks = append(marks, digestMark{at: at, state: stateOf(t, []byte(data[:at]))})
	}
	if err := c.save(st, marks); err != nil {
		t.Fatal(err)
	}
	p := filepath.Join(c.dir, entryName(st))
	good, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.resume(st, 3<<20); err != nil {
		t.Fatalf("the entry as saved: %v", err)
	}
	flip := func(i int) []byte {
		b := bytes.Clone(good)
		b[i] ^= 0x40
		return b
	}
	head := len(digestCacheMagic) + 5*8 + 2 + 3*16 + 4
	oversized := encodeEntry(st, []digestMark{{at: 1 << 20, state: make([]byte, digestEntryMax)}})
	cases := map[string][]byte{
		"empty":                 nil,
		"magic":                 flip(0),
		"stamp":                 flip(len(digestCacheMagic) + 3),
		"a row":                 flip(head - 10),
		"the header's checksum": flip(head - 1),
		"the state used":        flip(len(good) - 100),
		"cut":                   good[:len(good)-100],
		"padded":                append(bytes.Clone(good), 0),
		"out of order":          encodeEntry(st, []digestMark{marks[0], marks[2], marks[1]}),
		"beyond the file":       encodeEntry(st, []digestMark{{at: 4 << 20, state: marks[2].state}}),
		"oversized":             oversized,
	}
	for name, b := range cases {
		if err := os.WriteFile(p, b, 0o600); err != nil {
			t.Fatal(err)
		}
		if _, _, err := c.resume(st, 4<<20); err == nil {
			t.Errorf("%s: a damaged entry was used", name)
		}
		if _, err := c.load(st); err == nil {
			t.Errorf("%s: a damaged entry was loaded", name)
		}
	}
	// A state that passes the entry's checks but not its own.
	bad := bytes.Clone(marks[2].state)
	bad[len(bad)-1] ^= 1
	if err := c.save(st, []digestMark{{at: 3 << 20, state: bad}}); err != nil {
		t.Fatal(err)
	}
	if _, _, err := c.resume(st, 3<<20); err == nil {
		t.Error("a state that does not hash to its digest was used")
	}
}

// TestDigestCacheCap: the folder stays under its cap, the entries written
// least recently going first, and a temporary file left by a dead writer
// goes too.
func TestDigestCacheCap(t *testing.T) {
	c := openDigestCache(t.TempDir())
	state := stateOf(t, []byte("x"))
	one := len(digestCacheMagic) + 5*8 + 2 + 16 + 4 + len(state)
	c.max = int64(3 * one)
	if err := os.MkdirAll(c.dir, 0o700); err != nil {
		t.Fatal(err)
	}
	orphan := filepath.Join(c.dir, "tmp-dead")
	if err := os.WriteFile(orphan, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	long := time.Now().Add(-time.Hour)
	if err := os.Chtimes(orphan, long, long); err != nil {
		t.Fatal(err)
	}
	stamp := func(i int) partialStamp { return partialStamp{Ino: uint64(i), Size: 1 << 30} }
	base := time.Now().Add(-time.Minute)
	for i := range 3 {
		if err := c.save(stamp(i), []digestMark{{at: 1 << 20, state: state}}); err != nil {
			t.Fatal(err)
		}
		at := base.Add(time.Duration(i) * time.Second)
		if err := os.Chtimes(filepath.Join(c.dir, entryName(stamp(i))), at, at); err != nil {
			t.Fatal(err)
		}
	}
	// Saving the oldest again (as a send that used it does) makes it the
	// most recent.
	if err := c.save(stamp(0), []digestMark{{at: 1 << 20, state: state}}); err != nil {
		t.Fatal(err)
	}
	if err := c.save(stamp(3), []digestMark{{at: 1 << 20, state: state}}); err != nil {
		t.Fatal(err)
	}
	for i, want := range []bool{true, false, true, true} {
		if _, err := os.Stat(filepath.Join(c.dir, entryName(stamp(i)))); (err == nil) != want {
			t.Errorf("entry %d kept: %v, want %v", i, err == nil, want)
		}
	}
	if _, err := os.Stat(orphan); err == nil {
		t.Error("a dead writer's temporary file was kept")
	}
	if err := c.save(stamp(4), make([]digestMark, digestRecent+digestSpread+1)); err == nil {
		t.Error("an entry over the cap of states was saved")
	}
}

// TestDigestLogKeeps: a log keeps the recent states, one per digestStep,
// and at most digestSpread more spread over the file, sorted; and the
// states of an older entry at the spread's multiples that it did not take
// itself.
func TestDigestLogKeeps(t *testing.T) {
	h := proto.NewDigest()
	h.Write([]byte("x"))
	const size = 10 << 30
	l := newDigestLog(size)
	if l.spread != 512<<20 {
		t.Fatalf("spread %d for 10 GiB, want 512 MiB", l.spread)
	}
	// As a resume from 1 GiB does.
	for at := uint64(1<<30 + 256<<10); at <= 5<<30; at += 256 << 10 {
		l.take(at, h)
	}
	l.keep([]digestMark{{at: 1 << 20, state: []byte("recent, not kept")}, {at: 512 << 20, state: []byte("spread, kept")},
		{at: 1536 << 20, state: []byte("taken again, not kept")}})
	marks := l.marks()
	var spread, recent int
	for i, m := range marks {
		if i > 0 && m.at <= marks[i-1].at {
			t.Fatalf("marks out of order at %d", i)
		}
		if m.at%l.spread == 0 {
			spread++
		} else {
			recent++
			if m.at <= 5<<30-(digestRecent+1)*digestStep {
				t.Fatalf("an old recent state at %d kept", m.at)
			}
		}
		if string(m.state) == "taken again, not kept" || string(m.state) == "recent, not kept" {
			t.Fatalf("an older state at %d kept", m.at)
		}
	}
	if spread != 9 || recent != digestRecent || string(marks[0].state) != "spread, kept" || marks[len(marks)-1].at != 5<<30 {
		t.Fatalf("%d spread and %d recent states, first %q, last at %d", spread, recent, marks[0].state, marks[len(marks)-1].at)
	}
}

// readChars returns the bytes this process has read by read(2)-like calls
// (rchar in /proc/self/io), or skips the test.
func readChars(t testing.TB) uint64 {
	t.Helper()
	f, err := os.Open("/proc/self/io")
	if err != nil {
		t.Skip("no /proc/self/io to count the bytes read:", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "rchar: "); ok {
			n, err := strconv.ParseUint(v, 10, 64)
			if err != nil {
				t.Fatal(err)
			}
			return n
		}
	}
	t.Skip("/proc/self/io has no rchar")
	return 0
}

// cacheCut sends a file of size bytes through a connection cut after
// cutAt bytes, with the sender's config folder cfg, and returns the items
// and the address of the receiving inbox.
func cacheCut(t *testing.T, in *Inbox, addr string, ended interface{ Load() int64 }, size, cutAt int, cfg string) []Item {
	t.Helper()
	src := writeTree(t, map[string]string{"big.bin": randomBytes(t, size)})
	items := collect(t, filepath.Join(src, "big.bin"))
	before := ended.Load()
	if _, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, ConfigDir: cfg,
		Dial: cutDialer(map[int]int{1: cutAt})}); err == nil {
		t.Fatal("a cut send reported success")
	}
	waitFor(t, func() bool { return ended.Load() > before })
	return items
}

func sourceStampOf(t testing.TB, p string) partialStamp {
	t.Helper()
	fi, err := os.Stat(p)
	if err != nil {
		t.Fatal(err)
	}
	st, _ := stampOf(fi)
	return st
}

// TestWarmCacheResumeReadsNoPrefix: after a cut, the sender kept the
// digest states of what it had hashed, so the resume reads neither the
// sender's nor the receiver's copy of the prefix: the process reads about
// the missing bytes only. Without the cache the same resume reads the
// whole prefix again. Both arrive whole and verified.
func TestWarmCacheResumeReadsNoPrefix(t *testing.T) {
	needStamps(t)
	const size, cutAt = 96 << 20, 88<<20 + 12345
	for _, warm := range []bool{true, false} {
		t.Run(map[bool]string{true: "warm", false: "cold"}[warm], func(t *testing.T) {
			in := newInbox(t, InboxConfig{})
			addr, ended := serveInbox(t, in, senderPolicy)
			cfg := t.TempDir()
			items := cacheCut(t, in, addr, ended, size, cutAt, cfg)
			st := sourceStampOf(t, items[0].Source)
			marks, err := openDigestCache(cfg).load(st)
			if err != nil || len(marks) == 0 {
				t.Fatalf("the cut send kept no states: %v", err)
			}
			if !warm {
				if err := os.RemoveAll(filepath.Join(cfg, digestCacheDir)); err != nil {
					t.Fatal(err)
				}
			}
			before := readChars(t)
			rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, ConfigDir: cfg})
			read := readChars(t) - before
			if err != nil {
				t.Fatal(err)
			}
			assertTree(t, in.Dir(), map[string]string{"big.bin": readFile(t, items[0].Source)})
			prefix := rep.Resumed
			if prefix < cutAt-4<<20 || prefix%directAlign != 0 {
				t.Fatalf("resumed at %d; want just below the cut at %d", prefix, cutAt)
			}
			t.Logf("resumed at %d: the process read %d bytes (the rest is %d)", prefix, read, size-prefix)
			if warm && read > prefix/2 {
				t.Fatalf("with the sender's states, the resume read %d bytes for %d missing: it read the prefix", read, size-prefix)
			}
			if !warm && read < prefix {
				t.Fatalf("without the sender's states, the resume read %d bytes: the check cannot see the prefix read", read)
			}
		})
	}
}

// TestWrongCachedStateFailsDigest: a kept state that passes every check
// but is not of the file's bytes (which only a bug or a forger could
// make) yields a digest the receiver refuses, with a clear reason; the
// sender drops the entry and the receiver its partial. With retries, the
// send goes on by itself with the whole file, which arrives as it is, and
// the states kept after are the file's.
func TestWrongCachedStateFailsDigest(t *testing.T) {
	needStamps(t)
	const size, cutAt = 80 << 20, 70 << 20
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	cfg := t.TempDir()
	items := cacheCut(t, in, addr, ended, size, cutAt, cfg)
	st := sourceStampOf(t, items[0].Source)
	c := openDigestCache(cfg)
	good, err := c.load(st)
	if err != nil {
		t.Fatal(err)
	}
	other := []byte(randomBytes(t, size))
	forge := func() {
		t.Helper()
		marks := slices.Clone(good)
		h, pos := proto.NewDigest(), uint64(0)
		for i, m := range marks {
			h.Write(other[pos:m.at])
			pos = m.at
			if marks[i].state, err = proto.AppendDigestState(nil, h); err != nil {
				t.Fatal(err)
			}
		}
		if err := c.save(st, marks); err != nil {
			t.Fatal(err)
		}
	}

	// Without retries: the failure, and nothing left to use it again.
	forge()
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", ConfigDir: cfg, Retries: -1})
	var re *RefusedError
	if !errors.As(err, &re) || re.Code != proto.CodeDigest || rep.Resumed == 0 {
		t.Fatalf("resumed %d from wrong states: %v; want the receiver to refuse the digest", rep.Resumed, err)
	}
	t.Logf("the send says: %v", err)
	if _, err := c.load(st); !errors.Is(err, fs.ErrNotExist) {
		t.Fatalf("the wrong states are still kept: %v", err)
	}
	if got := tree(t, in.Dir()); len(got) != 0 {
		t.Fatalf("a refused file appeared: %v", got)
	}

	// With retries: a new cut, wrong states again; the send recovers.
	items = cacheCut(t, in, addr, ended, size, cutAt, cfg)
	content := readFile(t, items[0].Source)
	st = sourceStampOf(t, items[0].Source)
	if good, err = c.load(st); err != nil {
		t.Fatal(err)
	}
	forge()
	var retries []Retry
	rep, err = SendTo(context.Background(), addr, items, SendOptions{Name: "s", ConfigDir: cfg, retryBase: time.Millisecond,
		OnRetry: func(r Retry) { retries = append(retries, r) }})
	if err != nil {
		t.Fatal(err)
	}
	if len(retries) != 1 || !errors.As(retries[0].Err, &re) || re.Code != proto.CodeDigest {
		t.Fatalf("retries %+v: want one, after the digest failed", retries)
	}
	if rep.Resumed == 0 || rep.Sent < size {
		t.Fatalf("resumed %d and sent %d: want a resume, then the whole file", rep.Resumed, rep.Sent)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": content})
	marks, err := c.load(st)
	if err != nil {
		t.Fatal(err)
	}
	h, pos := proto.NewDigest(), uint64(0)
	for _, m := range marks {
		h.Write([]byte(content[pos:m.at]))
		pos = m.at
		_, sum, err := proto.ResumeDigest(m.state)
		if err != nil || !bytes.Equal(sum[:], h.Sum(nil)) {
			t.Fatalf("a state kept after the retry, at %d, is not of the file: %v", m.at, err)
		}
	}
}

// TestDamagedCacheEntryIgnored: an entry whose header is damaged on disk
// is not used: the resume hashes the file from its start and succeeds at
// once.
func TestDamagedCacheEntryIgnored(t *testing.T) {
	needStamps(t)
	const size, cutAt = 72 << 20, 60 << 20
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	cfg := t.TempDir()
	items := cacheCut(t, in, addr, ended, size, cutAt, cfg)
	p := filepath.Join(cfg, digestCacheDir, entryName(sourceStampOf(t, items[0].Source)))
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	b[len(digestCacheMagic)+20] ^= 1 // in the stamp
	if err := os.WriteFile(p, b, 0o600); err != nil {
		t.Fatal(err)
	}
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, ConfigDir: cfg})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Resumed == 0 {
		t.Fatal("no resume")
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": readFile(t, items[0].Source)})
}

// TestChangedSourceWithRestoredMTimeNotFromCache: a source rewritten in
// place with its mtime set back (same size and mtime, so the receiver
// resumes) has a new change time: its kept states are not used, its
// digest is of its bytes now, which the receiver's partial fails, and it
// arrives whole as it is now, never the old prefix with the new rest.
func TestChangedSourceWithRestoredMTimeNotFromCache(t *testing.T) {
	needStamps(t)
	const size, cutAt = 72 << 20, 60 << 20
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	cfg := t.TempDir()
	items := cacheCut(t, in, addr, ended, size, cutAt, cfg)
	fi, err := os.Stat(items[0].Source)
	if err != nil {
		t.Fatal(err)
	}
	f, err := os.OpenFile(items[0].Source, os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteAt([]byte("changed"), 1<<20); err != nil {
		t.Fatal(err)
	}
	f.Close()
	if err := os.Chtimes(items[0].Source, fi.ModTime(), fi.ModTime()); err != nil {
		t.Fatal(err)
	}
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", ConfigDir: cfg, retryBase: time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	if rep.Retries != 1 {
		t.Fatalf("%d retries: want the resume refused for its digest, then the file whole", rep.Retries)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": readFile(t, items[0].Source)})
}

// TestSpreadStateResumesInBackground: with only the states spread over
// the file kept (none near the offset), the resume goes on from the one
// below the offset on a goroutine of its own, and arrives verified.
func TestSpreadStateResumesInBackground(t *testing.T) {
	needStamps(t)
	const size, cutAt = 80 << 20, 70 << 20
	in := newInbox(t, InboxConfig{})
	addr, ended := serveInbox(t, in, senderPolicy)
	cfg := t.TempDir()
	items := cacheCut(t, in, addr, ended, size, cutAt, cfg)
	st := sourceStampOf(t, items[0].Source)
	c := openDigestCache(cfg)
	marks, err := c.load(st)
	if err != nil {
		t.Fatal(err)
	}
	var spread []digestMark
	l := newDigestLog(size)
	l.keep(marks)
	for _, m := range l.kept {
		if m.at <= cutAt-8<<20 {
			spread = append(spread, m)
		}
	}
	if len(spread) == 0 {
		t.Fatal("no spread states well below the cut")
	}
	if err := c.save(st, spread); err != nil {
		t.Fatal(err)
	}
	before := readChars(t)
	rep, err := SendTo(context.Background(), addr, items, SendOptions{Name: "s", Retries: -1, ConfigDir: cfg})
	read := readChars(t) - before
	if err != nil {
		t.Fatal(err)
	}
	assertTree(t, in.Dir(), map[string]string{"big.bin": readFile(t, items[0].Source)})
	// From the state to the end on its own goroutine, and the stream's
	// bytes: read, sent (sendfile counts) and received.
	if last := spread[len(spread)-1].at; read > size-last+3*(size-rep.Resumed)+1<<20 {
		t.Fatalf("read %d bytes, resuming at %d from a state at %d: more than from the state", read, rep.Resumed, last)
	}
}
