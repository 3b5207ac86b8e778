package main

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/lanshare/lanshare/peer"
)

// queueEvent is one line of `serve --json` about a queued job, as scripts
// read it: the names are spelled out here rather than taken from serve.go.
type queueEventLine struct {
	Event   string `json:"event"`
	Job     string `json:"job"`
	Peer    string `json:"peer"`
	ID      string `json:"id"`
	Files   int    `json:"files"`
	Bytes   uint64 `json:"bytes"`
	Reason  string `json:"reason"`
	Skipped int    `json:"skipped"`
}

// TestLabSendLater: the receiver is down; alice queues three jobs for it
// with send --later and cancels one; her agent restarts; the receiver comes
// up; the file of the first job arrives once, byte for byte, with no
// second copy; the cancelled job never arrives; the job whose file
// changed after it was queued is reported and not sent. The queue, status
// and serve's log (text and --json) say so.
func TestLabSendLater(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	alice := launchAgent(t, lab.Host(0), "alice")
	bob := launchAgent(t, lab.Host(1), "bob")
	alice.ready(t)
	bob.ready(t)
	waitPeerUp(t, alice, bob)
	run := func(args ...string) runResult {
		t.Helper()
		return runLanshareOn(t, alice.host.CommandContext, alice.tmp, nil, args...)
	}
	src := filepath.Join(t.TempDir(), "src")
	hello := filepath.Join(src, "hello.txt")
	writeFile(t, hello, []byte("hello bob\n"), 0o644, time.Now())
	// A first send pins the name bob to bob's key.
	if r := run("send", "--config", alice.config, "bob", hello); r.code != 0 {
		t.Fatalf("send bob: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	bob.stopClean(t)
	alice.out.waitFor(t, "alice's \"peer down\" line for bob", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.HasSuffix(l, " peer down: "+bob.instance) })
	})

	report := filepath.Join(src, "report.bin")
	data := randomFile(t, report, 5<<20+123)
	dropped := filepath.Join(src, "dropped.txt")
	writeFile(t, dropped, []byte("never\n"), 0o644, time.Now())
	changed := filepath.Join(src, "changed.txt")
	writeFile(t, changed, []byte("first\n"), 0o644, time.Now())

	// Without an agent, --later says what to do.
	if r := run("send", "--later", "--config", filepath.Join(alice.tmp, "none"), "bob", report); r.code != 1 {
		t.Errorf("send --later without an agent: exit %d, want 1; stderr:\n%s", r.code, r.stderr)
	} else {
		checkErrorLine(t, r.stderr, "--later hands the job to the agent", "lanshare serve")
	}

	r := run("send", "--later", "--config", alice.config, "bob", report)
	if r.code != 0 {
		t.Fatalf("send --later bob report.bin: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	t.Logf("send --later printed: %s", strings.TrimSpace(r.stdout))
	m := regexp.MustCompile(`^queued job ([0-9a-f]{6}) for bob \(` + bob.id[:4] + `\): 1 file, 5\.2 MB: report\.bin; the agent delivers it when bob \(` + bob.id[:4] + `\) is online \(lanshare queue lists it\)\n$`).FindStringSubmatch(r.stdout)
	if m == nil {
		t.Fatalf("send --later printed %q", r.stdout)
	}
	reportJob := m[1]
	queueJSON := func(path string) string {
		t.Helper()
		r := run("send", "--later", "--json", "--config", alice.config, "bob", path)
		var ev queuedEvent
		if r.code != 0 || json.Unmarshal([]byte(r.stdout), &ev) != nil || ev.Event != "queued" || ev.ID != bob.id || ev.Files != 1 {
			t.Fatalf("send --later --json bob %s: exit %d, printed %q; stderr:\n%s", path, r.code, r.stdout, r.stderr)
		}
		return ev.Job
	}
	droppedJob, changedJob := queueJSON(dropped), queueJSON(changed)
	alice.out.waitFor(t, "alice's \"queued\" line", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool {
			return strings.Contains(l, " queued job "+reportJob+" for "+bob.instance+": 1 file, 5.2 MB: report.bin; it is delivered when ")
		})
	})

	jobs := listJobs(t, alice)
	if len(jobs) != 3 {
		t.Fatalf("queue lists %d jobs, want 3", len(jobs))
	}
	for _, j := range jobs {
		if j.State != peer.JobWaiting || j.PeerID != bob.id || j.Target != "bob" {
			t.Errorf("queued job %+v, want waiting for bob's id", j)
		}
	}
	var st struct{ Queued int }
	if r := run("status", "--json", "--config", alice.config); r.code != 0 || json.Unmarshal([]byte(r.stdout), &st) != nil || st.Queued != 3 {
		t.Errorf("status --json: exit %d, queued %d, want 3; output:\n%s", r.code, st.Queued, r.stdout)
	}
	if r := run("status", "--config", alice.config); !strings.Contains(r.stdout, "queue:     3 jobs of send --later waiting for their peer (lanshare queue)\n") {
		t.Errorf("status printed:\n%s", r.stdout)
	}

	if r := run("queue", "cancel", "--config", alice.config, droppedJob); r.code != 0 || !strings.HasPrefix(r.stdout, "cancelled job "+droppedJob+" for "+bob.instance+": 1 file, 6 B: dropped.txt\n") {
		t.Errorf("queue cancel %s: exit %d, printed %q; stderr:\n%s", droppedJob, r.code, r.stdout, r.stderr)
	}
	if r := run("queue", "cancel", "--config", alice.config, droppedJob); r.code != 1 {
		t.Errorf("cancelling it again: exit %d, want 1", r.code)
	} else {
		checkErrorLine(t, r.stderr, "no queued job "+droppedJob)
	}
	appendTo(t, changed, "second\n")
	listing := run("queue", "--config", alice.config)
	t.Logf("lanshare queue:\n%s", listing.stdout)
	for _, want := range []string{reportJob + "  to " + bob.instance + "  1 file, 5.2 MB: report.bin  queued ", "waiting for it to be online", changedJob, "drop one with: lanshare queue cancel ID"} {
		if !strings.Contains(listing.stdout, want) {
			t.Errorf("lanshare queue does not say %q", want)
		}
	}
	if strings.Contains(listing.stdout, droppedJob) {
		t.Errorf("lanshare queue lists the cancelled job %s", droppedJob)
	}

	// The sender's agent restarts (logging JSON now), then the receiver
	// comes up.
	alice.stopClean(t)
	alice2 := startLanshare(t, alice.host.CommandContext, alice.tmp, nil,
		"serve", "--json", "--dir", alice.dir, "--config", alice.config, "--name", "alice", "--listen", ":0")
	bob2 := relaunch(t, bob)
	bob2.ready(t)
	events := func(ls []string) []queueEventLine {
		var out []queueEventLine
		for _, l := range ls {
			var ev queueEventLine
			if json.Unmarshal([]byte(l), &ev) == nil && ev.Job != "" {
				out = append(out, ev)
			}
		}
		return out
	}
	find := func(evs []queueEventLine, kind, job string) (queueEventLine, bool) {
		i := slices.IndexFunc(evs, func(ev queueEventLine) bool { return ev.Event == kind && ev.Job == job })
		if i < 0 {
			return queueEventLine{}, false
		}
		return evs[i], true
	}
	alice2.out.waitFor(t, "delivered and source-changed events", func(ls []string) bool {
		evs := events(ls)
		_, delivered := find(evs, peer.QueueDelivered, reportJob)
		_, held := find(evs, peer.QueueSourceChanged, changedJob)
		return delivered && held
	})
	evs := events(alice2.out.Lines())
	if ev, _ := find(evs, peer.QueueDelivered, reportJob); ev.Peer != bob.instance || ev.ID != bob.id || ev.Files != 1 || ev.Bytes != uint64(len(data)) {
		t.Errorf("delivered event %+v", ev)
	}
	if ev, _ := find(evs, peer.QueueSourceChanged, changedJob); !strings.Contains(ev.Reason, "changed.txt changed since it was queued") {
		t.Errorf("source-changed event %+v, want the file named", ev)
	}
	for _, ev := range evs {
		if ev.Job == droppedJob || (ev.Job == changedJob && ev.Event == peer.QueueDelivering) {
			t.Errorf("event %+v: the cancelled or changed job was tried", ev)
		}
	}

	// Byte for byte, once: no second copy, nothing of the other jobs.
	got, err := os.ReadFile(filepath.Join(bob.dir, "report.bin"))
	if err != nil || !bytes.Equal(got, data) {
		t.Errorf("bob's report.bin: %d bytes (%v), want the %d queued, byte for byte", len(got), err, len(data))
	}
	var names []string
	for name := range readTree(t, bob.dir) {
		names = append(names, name)
	}
	slices.Sort(names)
	if want := []string{"hello.txt", "report.bin"}; !slices.Equal(names, want) {
		t.Errorf("bob's folder holds %q, want %q", names, want)
	}
	if n := len(slices.DeleteFunc(received(bob2.out.Lines()), func(p string) bool { return p != "report.bin" })); n != 1 {
		t.Errorf("bob logged report.bin received %d times, want once; log:\n%s", n, bob2.out)
	}
	jobs = listJobs(t, alice)
	if len(jobs) != 1 || jobs[0].ID != changedJob || jobs[0].State != peer.JobSourceChanged {
		t.Errorf("after the delivery the queue holds %+v, want only %s, held as source-changed", jobs, changedJob)
	}
}

// listJobs runs `lanshare queue --json` for a's agent.
func listJobs(t testing.TB, a *labAgent) []peer.QueueJob {
	t.Helper()
	r := runLanshareOn(t, a.host.CommandContext, a.tmp, nil, "queue", "--json", "--config", a.config)
	if r.code != 0 {
		t.Fatalf("lanshare queue --json: exit %d; stderr:\n%s", r.code, r.stderr)
	}
	var jobs []peer.QueueJob
	for _, l := range lines(r.stdout) {
		var j peer.QueueJob
		if err := json.Unmarshal([]byte(l), &j); err != nil {
			t.Fatalf("lanshare queue --json printed %q: %v", l, err)
		}
		jobs = append(jobs, j)
	}
	return jobs
}

func appendTo(t testing.TB, path, s string) {
	t.Helper()
	f, err := os.OpenFile(path, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.WriteString(s); err != nil {
		t.Fatal(err)
	}
}
