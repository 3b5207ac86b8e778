package peer

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// queueTestID is a well-formed lanshare id for the records of these tests.
var queueTestID = strings.Repeat("a", 52)

// smallCaps stand for MaxQueueJobs and MaxQueueEntries where a test fills
// the queue: the same code, without writing 100,000 entries (seconds
// under -race). TestQueueCapsAreDocumented holds the real ones.
var smallCaps = queueCaps{jobs: 10, entries: 50}

// TestQueueCapsAreDocumented: the agent's queue holds to the caps the
// README's Limits table gives.
func TestQueueCapsAreDocumented(t *testing.T) {
	if q := openQueue(t.TempDir()); q.caps != (queueCaps{jobs: 1000, entries: 100_000}) || MaxQueueJobs != 1000 || MaxQueueEntries != 100_000 {
		t.Errorf("caps %+v, want 1,000 jobs and 100,000 files and folders", q.caps)
	}
}

// testRecord is a waiting job of one file entry per path in sources.
func testRecord(sources ...string) *queueRecord {
	r := &queueRecord{Target: "bob", Peer: "bob", PeerID: queueTestID, ByName: true, Queued: time.Unix(1700000000, 0).UTC(), State: JobWaiting}
	for i, s := range sources {
		r.Entries = append(r.Entries, queueEntry{Path: fmt.Sprintf("f%d.txt", i), Size: 5, Mode: 0o644, MTime: 1700000000e9, Source: s})
	}
	return r
}

// writeQueueFile writes jobs as a queue file in dir, bypassing the caps.
func writeQueueFile(t testing.TB, dir string, jobs []*queueRecord) []byte {
	t.Helper()
	data, err := json.Marshal(queueFile{Version: queueVersion, Jobs: jobs})
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, queueFileName), data, 0o600); err != nil {
		t.Fatal(err)
	}
	return data
}

// TestQueueFileRoundTrip: jobs added are in the file, owner-only, and a
// new reader (the agent's next start) finds them as they were, in order;
// a removed one is gone from the file too.
func TestQueueFileRoundTrip(t *testing.T) {
	dir := t.TempDir()
	q := openQueue(dir)
	if err := q.loadErr(); err != nil {
		t.Fatalf("a missing file is an empty queue, got %v", err)
	}
	a, b := testRecord("/src/a"), testRecord("/src/b", "/src/c")
	for _, r := range []*queueRecord{a, b} {
		if err := q.add(r); err != nil {
			t.Fatal(err)
		}
		if !validJobID(r.ID) {
			t.Fatalf("add gave id %q", r.ID)
		}
	}
	if a.ID == b.ID {
		t.Fatalf("two jobs got id %s", a.ID)
	}
	fi, err := os.Stat(filepath.Join(dir, queueFileName))
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("queue file: %v, mode %v; want 0600", err, fi.Mode().Perm())
	}
	got, err := openQueue(dir).snapshot()
	if err != nil || len(got) != 2 {
		t.Fatalf("reopened: %d jobs, %v; want 2", len(got), err)
	}
	for i, want := range []*queueRecord{a, b} {
		g, _ := json.Marshal(got[i])
		w, _ := json.Marshal(want)
		if !bytes.Equal(g, w) {
			t.Errorf("job %d read back as\n%s\nwant\n%s", i, g, w)
		}
	}
	if err := q.update(a.ID, func(r *queueRecord) { r.State, r.Attempts, r.LastError = JobFailed, 2, "refused" }); err != nil {
		t.Fatal(err)
	}
	if _, err := q.remove(b.ID); err != nil {
		t.Fatal(err)
	}
	if _, err := q.remove(b.ID); !errors.Is(err, ErrNoJob) {
		t.Errorf("removing it again: %v, want ErrNoJob", err)
	}
	got, err = openQueue(dir).snapshot()
	if err != nil || len(got) != 1 || got[0].ID != a.ID || got[0].State != JobFailed || got[0].Attempts != 2 || got[0].LastError != "refused" {
		t.Fatalf("after update and remove, the file holds %+v (%v)", got, err)
	}
	if j := got[0].job(); j.Files != 1 || j.Bytes != 5 || len(j.First) != 1 || j.First[0] != "f0.txt" {
		t.Errorf("job summary %+v", j)
	}
}

// TestQueueFileCorrupt: a file that cannot be used is a clear error naming
// the file and what is wrong, never a crash; nothing is written over it
// (the jobs in it stay for a fix by hand), and once it is fixed the queue
// reads it without a restart.
func TestQueueFileCorrupt(t *testing.T) {
	valid := func(edit func(*queueRecord)) string {
		r := testRecord("/src/a")
		r.ID = "0a1b2c"
		if edit != nil {
			edit(r)
		}
		data, _ := json.Marshal(queueFile{Version: queueVersion, Jobs: []*queueRecord{r}})
		return string(data)
	}
	many := func(n, entries int) string {
		var jobs []*queueRecord
		for i := range n {
			r := testRecord()
			r.ID = fmt.Sprintf("%06x", i)
			for k := range entries {
				r.Entries = append(r.Entries, queueEntry{Path: fmt.Sprintf("d/%d", k), Size: 1, MTime: 1, Source: "/s"})
			}
			jobs = append(jobs, r)
		}
		data, _ := json.Marshal(queueFile{Version: queueVersion, Jobs: jobs})
		return string(data)
	}
	cases := []struct {
		name, content, want string
	}{
		{"garbage", "\x00\x01not json", "not JSON at byte 1"},
		{"cut short", valid(nil)[:40], "not JSON"},
		{"a list", "[1,2]", "not a queue"},
		{"other version", `{"version":2,"jobs":[]}`, "version 2"},
		{"null job", `{"version":1,"jobs":[null]}`, "job 1 is null"},
		{"bad id", valid(func(r *queueRecord) { r.ID = "../x" }), "not a job id"},
		{"twice", strings.Replace(valid(nil), `"jobs":[`, `"jobs":[`+strings.TrimSuffix(strings.TrimPrefix(valid(nil), `{"version":1,"jobs":[`), "]}")+",", 1), "id 0a1b2c twice"},
		{"bad peer id", valid(func(r *queueRecord) { r.PeerID = "ls-" + strings.Repeat("0", 64) }), "not a lanshare id"},
		{"unknown state", valid(func(r *queueRecord) { r.State = JobDelivering }), `state "delivering"`},
		{"no entries", valid(func(r *queueRecord) { r.Entries = nil }), "no files"},
		{"unsafe path", valid(func(r *queueRecord) { r.Entries[0].Path = "../etc/passwd" }), "is not one that send offers"},
		{"relative source", valid(func(r *queueRecord) { r.Entries[0].Source = "src/a" }), "not an absolute path"},
		{"too many jobs", many(MaxQueueJobs+1, 1), fmt.Sprintf("%d jobs, over the limit of %d", MaxQueueJobs+1, MaxQueueJobs)},
		{"too many entries", many(2, smallCaps.entries/2+1), fmt.Sprintf("more than %d files and folders", smallCaps.entries)},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			path := filepath.Join(dir, queueFileName)
			if err := os.WriteFile(path, []byte(c.content), 0o600); err != nil {
				t.Fatal(err)
			}
			q := openQueue(dir)
			if c.name == "too many entries" {
				q = openQueueCaps(dir, smallCaps)
			}
			err := q.loadErr()
			if !errors.Is(err, ErrQueueFile) || !strings.Contains(err.Error(), path) || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v\nwant ErrQueueFile naming %s and saying %q", err, path, c.want)
			}
			if err := q.add(testRecord("/src/new")); !errors.Is(err, ErrQueueFile) {
				t.Errorf("add to a queue whose file is bad: %v, want ErrQueueFile", err)
			}
			if _, err := q.remove("0a1b2c"); !errors.Is(err, ErrQueueFile) {
				t.Errorf("remove from a queue whose file is bad: %v, want ErrQueueFile", err)
			}
			if got, _ := os.ReadFile(path); string(got) != c.content {
				t.Errorf("the bad file was changed")
			}
			// Fixed by hand (here: moved away): usable again.
			if err := os.Rename(path, path+".bad"); err != nil {
				t.Fatal(err)
			}
			if err := q.add(testRecord("/src/new")); err != nil {
				t.Errorf("add once the file is gone: %v", err)
			}
		})
	}
	t.Run("over 64 MiB", func(t *testing.T) {
		dir := t.TempDir()
		path := filepath.Join(dir, queueFileName)
		f, err := os.Create(path)
		if err != nil {
			t.Fatal(err)
		}
		if err := f.Truncate(maxQueueFileSize + 1); err != nil {
			t.Fatal(err)
		}
		f.Close()
		if err := openQueue(dir).loadErr(); !errors.Is(err, ErrQueueFile) || !strings.Contains(err.Error(), "larger than 64 MiB") {
			t.Errorf("error %v, want ErrQueueFile: larger than 64 MiB", err)
		}
	})
}

// TestQueueFileAtomic: a save that fails leaves the file and the queue in
// memory as they were, and no temporary file; a temporary file left by a
// crash does not disturb the next start; a reader never sees a part of a
// file while jobs are added.
func TestQueueFileAtomic(t *testing.T) {
	t.Run("failed save", func(t *testing.T) {
		dir := t.TempDir()
		q := openQueue(dir)
		if err := q.add(testRecord("/src/a")); err != nil {
			t.Fatal(err)
		}
		path := filepath.Join(dir, queueFileName)
		before, _ := os.ReadFile(path)
		// A folder in the file's place: the rename over it fails.
		if err := os.Rename(path, path+".saved"); err != nil {
			t.Fatal(err)
		}
		if err := os.MkdirAll(filepath.Join(path, "x"), 0o700); err != nil {
			t.Fatal(err)
		}
		if err := q.add(testRecord("/src/b")); err == nil {
			t.Fatal("add saved over a folder")
		}
		if got, _ := q.snapshot(); len(got) != 1 {
			t.Errorf("after a failed save the queue holds %d jobs, want the 1 of the file", len(got))
		}
		ents, _ := os.ReadDir(dir)
		for _, e := range ents {
			if strings.HasPrefix(e.Name(), ".") {
				t.Errorf("temporary file %s left behind", e.Name())
			}
		}
		if err := os.RemoveAll(path); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(path+".saved", path); err != nil {
			t.Fatal(err)
		}
		if got, _ := os.ReadFile(path); !bytes.Equal(got, before) {
			t.Errorf("the file changed")
		}
	})
	t.Run("temporary file of a crash", func(t *testing.T) {
		dir := t.TempDir()
		if err := openQueue(dir).add(testRecord("/src/a")); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(dir, "."+queueFileName+"-123"), []byte(`{"version":1,"jo`), 0o600); err != nil {
			t.Fatal(err)
		}
		if got, err := openQueue(dir).snapshot(); err != nil || len(got) != 1 {
			t.Errorf("next start: %d jobs, %v; want the 1 saved", len(got), err)
		}
	})
	t.Run("readers see whole files", func(t *testing.T) {
		dir := t.TempDir()
		q := openQueue(dir)
		path := filepath.Join(dir, queueFileName)
		const jobs = 20
		stop := make(chan struct{})
		var wg sync.WaitGroup
		var reads, bad int
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-stop:
					return
				default:
				}
				data, err := os.ReadFile(path)
				if errors.Is(err, os.ErrNotExist) {
					continue
				}
				reads++
				if _, err := parseQueue(data, defaultQueueCaps); err != nil {
					bad++
				}
			}
		}()
		for i := range jobs {
			srcs := make([]string, 200) // a file of some size, written in more than one piece
			for k := range srcs {
				srcs[k] = fmt.Sprintf("/src/%d/%d", i, k)
			}
			if err := q.add(testRecord(srcs...)); err != nil {
				close(stop)
				wg.Wait()
				t.Fatal(err)
			}
		}
		close(stop)
		wg.Wait()
		t.Logf("%d reads while %d jobs were added", reads, jobs)
		if bad > 0 {
			t.Errorf("%d of %d reads saw a file that does not parse", bad, reads)
		}
		if got, _ := openQueue(dir).snapshot(); len(got) != jobs {
			t.Errorf("the file holds %d jobs, want %d", len(got), jobs)
		}
	})
}

// TestQueueCaps: the queue takes MaxQueueJobs jobs and MaxQueueEntries
// files and folders, and refuses more with ErrQueueFull, leaving the file
// as it was.
func TestQueueCaps(t *testing.T) {
	t.Run("jobs", func(t *testing.T) {
		dir := t.TempDir()
		var jobs []*queueRecord
		for i := range MaxQueueJobs - 1 {
			r := testRecord("/src/a")
			r.ID = fmt.Sprintf("%06x", i)
			jobs = append(jobs, r)
		}
		writeQueueFile(t, dir, jobs)
		q := openQueue(dir)
		if err := q.add(testRecord("/src/last")); err != nil {
			t.Fatalf("job %d of %d: %v", MaxQueueJobs, MaxQueueJobs, err)
		}
		before, _ := os.ReadFile(filepath.Join(dir, queueFileName))
		err := q.add(testRecord("/src/over"))
		if !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), fmt.Sprint(MaxQueueJobs)) {
			t.Errorf("job %d: %v, want ErrQueueFull naming the limit", MaxQueueJobs+1, err)
		}
		if after, _ := os.ReadFile(filepath.Join(dir, queueFileName)); !bytes.Equal(before, after) {
			t.Errorf("a refused job changed the file")
		}
		if got, _ := openQueue(dir).snapshot(); len(got) != MaxQueueJobs {
			t.Errorf("the file holds %d jobs, want %d", len(got), MaxQueueJobs)
		}
	})
	t.Run("entries", func(t *testing.T) {
		dir := t.TempDir()
		big := testRecord()
		big.ID = "000001"
		for k := range smallCaps.entries - 1 {
			big.Entries = append(big.Entries, queueEntry{Path: fmt.Sprintf("d/%d", k), Size: 1, MTime: 1, Source: "/s"})
		}
		writeQueueFile(t, dir, []*queueRecord{big})
		q := openQueueCaps(dir, smallCaps)
		if err := q.add(testRecord("/src/a", "/src/b")); !errors.Is(err, ErrQueueFull) || !strings.Contains(err.Error(), fmt.Sprintf("would hold %d, over its limit of %d", smallCaps.entries+1, smallCaps.entries)) {
			t.Errorf("2 entries more: %v, want ErrQueueFull", err)
		}
		if err := q.add(testRecord("/src/a")); err != nil {
			t.Errorf("the last entry that fits: %v", err)
		}
	})
}

// TestQueueSourceCheck: a source checks out only while it is the very
// file queued: same size, mtime and (on Unix) identity; one changed,
// replaced, gone or turned into a folder is named in the error.
func TestQueueSourceCheck(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "hello", "b.txt": "world", "sub/": ""})
	items := collect(t, filepath.Join(dir, "a.txt"), filepath.Join(dir, "b.txt"), filepath.Join(dir, "sub"))
	entries := queueEntries(items)
	if err := checkSources(entries); err != nil {
		t.Fatalf("unchanged sources: %v", err)
	}
	if entries[0].Ino == 0 && statIDWorks(t, dir) {
		t.Errorf("no identity recorded for %s", entries[0].Source)
	}
	a := filepath.Join(dir, "a.txt")
	fi, _ := os.Stat(a)
	mtime := fi.ModTime()
	cases := []struct {
		name   string
		change func(t *testing.T)
		want   string
	}{
		{"grown", func(t *testing.T) { appendFile(t, a, "!") }, "changed since it was queued"},
		{"touched", func(t *testing.T) {
			if err := os.Chtimes(a, mtime, mtime.Add(time.Second)); err != nil {
				t.Fatal(err)
			}
		}, "changed since it was queued (modified"},
		{"replaced", func(t *testing.T) {
			other := filepath.Join(dir, "other")
			if err := os.WriteFile(other, []byte("HELLO"), 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.Chtimes(other, mtime, mtime); err != nil {
				t.Fatal(err)
			}
			if err := os.Rename(other, a); err != nil {
				t.Fatal(err)
			}
		}, "replaced by another file"},
		{"gone", func(t *testing.T) {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
		}, "no such file"},
		{"a folder now", func(t *testing.T) {
			if err := os.Remove(a); err != nil {
				t.Fatal(err)
			}
			if err := os.Mkdir(a, 0o755); err != nil {
				t.Fatal(err)
			}
		}, "no longer a regular file"},
	}
	reset := func(t *testing.T) {
		os.RemoveAll(a)
		if err := os.WriteFile(a, []byte("hello"), 0o644); err != nil {
			t.Fatal(err)
		}
		if err := os.Chtimes(a, mtime, mtime); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if c.name == "replaced" && !statIDWorks(t, dir) {
				t.Skip("no file identity on this system: a file replaced by one of the same size and mtime is not caught")
			}
			reset(t)
			entries := queueEntries(items)
			c.change(t)
			err := checkSources(entries)
			if err == nil || !strings.Contains(err.Error(), c.want) || !strings.Contains(err.Error(), "a.txt") {
				t.Errorf("check: %v, want an error naming a.txt: %q", err, c.want)
			}
		})
	}
	t.Run("two changed", func(t *testing.T) {
		reset(t)
		entries := queueEntries(items)
		appendFile(t, filepath.Join(dir, "b.txt"), "!")
		os.RemoveAll(filepath.Join(dir, "sub"))
		if err := checkSources(entries); err == nil || !strings.HasPrefix(err.Error(), "2 files or folders changed or vanished") {
			t.Errorf("check: %v, want it to count 2", err)
		}
	})
}

func statIDWorks(t testing.TB, dir string) bool {
	fi, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	_, _, ok := statID(fi)
	return ok
}

func appendFile(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
	f.Close()
}

// FuzzParseQueue: no content makes the reader panic, and what it accepts
// holds to the caps and checks a delivery relies on.
func FuzzParseQueue(f *testing.F) {
	r := testRecord("/src/a", "/src/b")
	r.ID = "0a1b2c"
	good, _ := json.Marshal(queueFile{Version: queueVersion, Jobs: []*queueRecord{r}})
	f.Add(good)
	f.Add([]byte(`{"version":1,"jobs":[]}`))
	f.Add([]byte(`{"version":1,"jobs":[null]}`))
	f.Add([]byte(`{"version":1,"jobs":[{"id":"0a1b2c","peer_id":"x","state":"waiting","entries":[{"path":"../a","source":"/a"}]}]}`))
	f.Fuzz(func(t *testing.T, data []byte) {
		jobs, err := parseQueue(data, defaultQueueCaps)
		if err != nil {
			return
		}
		n := 0
		for _, j := range jobs {
			if j.validate() != nil {
				t.Fatalf("accepted a job that does not validate: %+v", j)
			}
			n += len(j.Entries)
		}
		if len(jobs) > MaxQueueJobs || n > MaxQueueEntries {
			t.Fatalf("accepted %d jobs of %d entries", len(jobs), n)
		}
	})
}

// TestQueueSourceNotUTF8: a source path that is not UTF-8 (here its
// folder's name; what is offered is UTF-8) survives the file, which JSON
// strings could not carry, and still checks out.
func TestQueueSourceNotUTF8(t *testing.T) {
	root := t.TempDir()
	folder := filepath.Join(root, "caf\xe9")
	if err := os.Mkdir(folder, 0o755); err != nil {
		t.Fatal(err)
	}
	src := filepath.Join(folder, "report.txt")
	if err := os.WriteFile(src, []byte("hello"), 0o644); err != nil {
		t.Fatal(err)
	}
	r := testRecord()
	r.Entries = queueEntries(collect(t, src))
	if r.Entries[0].SourceRaw == nil || r.Entries[0].Source != "" {
		t.Fatalf("entry %+v, want the source in source_raw", r.Entries[0])
	}
	dir := t.TempDir()
	if err := openQueue(dir).add(r); err != nil {
		t.Fatal(err)
	}
	got, err := openQueue(dir).snapshot()
	if err != nil || len(got) != 1 {
		t.Fatalf("read back %d jobs, %v", len(got), err)
	}
	if s := got[0].items()[0].Source; s != src {
		t.Errorf("source read back as %q, want %q", s, src)
	}
	if err := checkSources(got[0].Entries); err != nil {
		t.Errorf("check: %v", err)
	}
}

// TestQueuedItemsKeepTheirIdentity: a queued job's items carry the
// identity Collect found, so that its send, like any, sends only the
// files collected (see Item.id).
func TestQueuedItemsKeepTheirIdentity(t *testing.T) {
	dir := writeTree(t, map[string]string{"a.txt": "a", "sub/b.txt": "b"})
	items := collect(t, dir)
	if !statIDWorks(t, dir) {
		t.Skip("no file identity on this platform")
	}
	r := queueRecord{Entries: queueEntries(items)}
	got := r.items()
	files := 0
	for i := range items {
		if items[i].Entry.Kind != proto.KindFile {
			continue
		}
		files++
		if items[i].id == (fileID{}) || got[i].id != items[i].id {
			t.Errorf("%s: queued with id %+v, collected with %+v", items[i].Entry.Path, got[i].id, items[i].id)
		}
	}
	if files != 2 {
		t.Errorf("%d files collected, want 2", files)
	}
}
