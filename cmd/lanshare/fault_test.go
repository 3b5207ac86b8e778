package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"math/rand/v2"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"
)

// faultRounds is how many kill-and-resume rounds TestKillAnySideResumes runs.
const faultRounds = 8

// TestKillAnySideResumes is the fault-injection test: rounds of sending a
// mixed tree (large and small files) through the real binaries, in each
// of which the sender or the receiver is killed with SIGKILL at a random
// point, restarted, and the send repeated until it succeeds. After the
// kill, every file under a final name must be byte-identical to its
// source; after the repeat, the tree must have arrived whole with no
// temporary file left, and the repeat must have sent about the bytes that
// were missing, not the whole tree (the receiver resumed).
//
// The seed is printed; LANSHARE_FAULT_SEED=N reruns the same rounds.
func TestKillAnySideResumes(t *testing.T) {
	t.Parallel()
	seed := uint64(time.Now().UnixNano())
	if s := os.Getenv("LANSHARE_FAULT_SEED"); s != "" {
		var err error
		if seed, err = strconv.ParseUint(s, 10, 64); err != nil {
			t.Fatalf("LANSHARE_FAULT_SEED: %v", err)
		}
	}
	t.Logf("seed %d (rerun with LANSHARE_FAULT_SEED=%d)", seed, seed)
	rng := rand.New(rand.NewPCG(seed, seed>>1|1))

	tmp := t.TempDir()
	src := filepath.Join(tmp, "src", "tree")
	total := writeMixedTree(t, src, rng)
	want := readTree(t, filepath.Dir(src))
	rcfg, scfg := filepath.Join(tmp, "rcfg"), filepath.Join(tmp, "scfg")
	addr := freeAddr(t)

	for round := range faultRounds {
		share := filepath.Join(tmp, fmt.Sprintf("share%d", round))
		serveArgs := []string{"--dir", share, "--config", rcfg, "--listen", addr, "--name", "rx"}
		srv := startServe(t, tmp, nil, serveArgs...)
		sendArgs := []string{"send", "--json", "--retries", "0", "--config", scfg, "--name", "tx", addr, src}
		snd := startLanshare(t, local, tmp, nil, sendArgs...)

		killReceiver := rng.IntN(2) == 0
		frac := 0.05 + 0.9*rng.Float64()
		victim, who := snd, "sender"
		if killReceiver {
			victim, who = srv, "receiver"
		}
		waitBytes(share, uint64(frac*float64(total)), snd.done)
		// The sender may have finished between the wait and the kill:
		// then there is nothing to kill, and the rest still holds. A
		// receiver never ends by itself.
		if err := victim.cmd.Process.Kill(); err != nil && (killReceiver || !errors.Is(err, os.ErrProcessDone)) {
			t.Fatalf("round %d: killing the %s: %v", round, who, err)
		}
		<-victim.done
		<-snd.done // without retries, a send whose receiver died ends at once
		if !killReceiver {
			waitIdle(t, tmp, rcfg)
		}

		// Every final file is whole; count what the receiver has.
		got := readTree(t, share)
		var have uint64
		for p, e := range got {
			if w, ok := want[p]; !ok || w.dir != e.dir || w.data != e.data {
				t.Fatalf("round %d (seed %d), %s killed at %.0f%%: %s under its final name is not its source (%d bytes)",
					round, seed, who, frac*100, p, len(e.data))
			}
			have += uint64(len(e.data))
		}
		partials, partialBytes := partialFiles(t, share)
		if have+partialBytes > total {
			t.Fatalf("round %d (seed %d): %d final and %d partial bytes, more than the %d sent", round, seed, have, partialBytes, total)
		}
		missing := total - have - partialBytes

		if killReceiver {
			srv = startServe(t, tmp, nil, serveArgs...)
		}
		sent := uint64(0)
		for try := 1; ; try++ {
			r := runLanshare(t, tmp, nil, sendArgs...)
			if r.code == 0 {
				sent = transferDoneSent(t, r.stdout)
				break
			}
			if try == 3 {
				t.Fatalf("round %d (seed %d): send still fails after %d tries: exit %d\n%s%s", round, seed, try, r.code, r.stdout, r.stderr)
			}
		}
		final := readTree(t, share)
		for p, w := range want {
			if g, ok := final[p]; !ok || g != w {
				t.Fatalf("round %d (seed %d): %s differs from its source after the resend", round, seed, p)
			}
		}
		for p := range final {
			if _, ok := want[p]; !ok {
				t.Fatalf("round %d (seed %d): %s arrived, which was not sent", round, seed, p)
			}
		}
		checkNoTemps(t, share)
		// What a dead receiver wrote last may have landed out of order:
		// a resume starts up to a few MiB below a partial file's end.
		slack := uint64(partials)*(7<<20) + 64<<10
		if sent > missing+slack {
			t.Fatalf("round %d (seed %d), %s killed at %.0f%%: the resend sent %d bytes, but only %d were missing (%d in %d partial files)",
				round, seed, who, frac*100, sent, missing, partialBytes, partials)
		}
		t.Logf("round %d: %s killed at %.0f%%; had %d final + %d partial bytes of %d; resend sent %d (missing %d)",
			round, who, frac*100, have, partialBytes, total, sent, missing)
		srv.stopClean(t)
	}
}

// writeMixedTree writes large and small files of random bytes under dir
// and returns their total size.
func writeMixedTree(t testing.TB, dir string, rng *rand.Rand) uint64 {
	t.Helper()
	var total uint64
	write := func(p string, n int) {
		b := make([]byte, n)
		for i := 0; i+8 <= n; i += 8 {
			v := rng.Uint64()
			for k := range 8 {
				b[i+k] = byte(v >> (8 * k))
			}
		}
		full := filepath.Join(dir, filepath.FromSlash(p))
		if err := os.MkdirAll(filepath.Dir(full), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(full, b, 0o644); err != nil {
			t.Fatal(err)
		}
		total += uint64(n)
	}
	write("big1.bin", 40<<20+rng.IntN(1<<20))
	write("sub/big2.bin", 16<<20+rng.IntN(1<<20))
	write("sub/deep/big3.bin", 9<<20+rng.IntN(1<<20))
	for i := range 150 {
		write(fmt.Sprintf("small/%02d/f%03d.dat", i%12, i), 1<<10+rng.IntN(63<<10))
	}
	if err := os.MkdirAll(filepath.Join(dir, "empty"), 0o755); err != nil {
		t.Fatal(err)
	}
	return total
}

// freeAddr returns a loopback address with a port that was free just now,
// so that a restarted receiver listens where the sender expects it.
func freeAddr(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// waitBytes waits until the files under dir (final and staged) hold at
// least n bytes, or done is closed. It reports whether n was reached.
func waitBytes(dir string, n uint64, done <-chan struct{}) bool {
	for {
		if dirBytes(dir) >= n {
			return true
		}
		select {
		case <-done:
			return false
		case <-time.After(2 * time.Millisecond):
		}
	}
}

// dirBytes is the bytes of the files under dir, each file counted once:
// a partial file given its final name has two names until its staging
// name is removed.
func dirBytes(dir string) uint64 {
	var n uint64
	var big []fs.FileInfo
	_ = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && !sameAsAny(fi, big) {
				n += uint64(fi.Size())
				if fi.Size() >= bigFile {
					big = append(big, fi)
				}
			}
		}
		return nil
	})
	return n
}

// bigFile is the size from which a received file is resumable, so that
// its partial file may be a second name of its final one.
const bigFile = 4 << 20

func sameAsAny(fi fs.FileInfo, fis []fs.FileInfo) bool {
	for _, o := range fis {
		if os.SameFile(fi, o) {
			return true
		}
	}
	return false
}

// waitIdle waits until the agent with config dir cfg receives nothing:
// it has dealt with the connection of a sender that died.
func waitIdle(t testing.TB, tmp, cfg string) {
	t.Helper()
	deadline := time.Now().Add(failAfter)
	for {
		r := runLanshare(t, tmp, nil, "status", "--json", "--config", cfg)
		var st struct{ Transfers int }
		if r.code == 0 && json.Unmarshal([]byte(r.stdout), &st) == nil && st.Transfers == 0 {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("the agent still receives after %v: %s%s", failAfter, r.stdout, r.stderr)
		}
	}
}

// partialFiles counts the partial files in a shared folder's staging
// folder, and their bytes. A partial file that is a second name of a file
// under its final name (the agent died between the link and the removal)
// is not a partial: the restarted agent removes that name.
func partialFiles(t testing.TB, share string) (int, uint64) {
	t.Helper()
	var finals []fs.FileInfo
	_ = filepath.WalkDir(share, func(p string, d fs.DirEntry, err error) error {
		if err == nil && d.IsDir() && d.Name() == stagingDir {
			return filepath.SkipDir
		}
		if err == nil && d.Type().IsRegular() {
			if fi, err := d.Info(); err == nil && fi.Size() >= bigFile {
				finals = append(finals, fi)
			}
		}
		return nil
	})
	var n int
	var bytes uint64
	for _, name := range staged(t, share) {
		if strings.HasSuffix(name, ".part") {
			fi, err := os.Stat(filepath.Join(share, stagingDir, name))
			if err != nil {
				t.Fatal(err)
			}
			if sameAsAny(fi, finals) {
				continue
			}
			n++
			bytes += uint64(fi.Size())
		}
	}
	return n, bytes
}

// transferDoneSent is the "sent" of send --json's transfer-done event.
func transferDoneSent(t testing.TB, stdout string) uint64 {
	t.Helper()
	for _, l := range lines(stdout) {
		var ev struct {
			Event string
			Sent  *uint64
		}
		if json.Unmarshal([]byte(l), &ev) == nil && ev.Event == "transfer-done" && ev.Sent != nil {
			return *ev.Sent
		}
	}
	t.Fatalf("no transfer-done with sent in:\n%s", stdout)
	return 0
}
