//go:build linux

package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// bench holds what the scenarios share: the work directory, the lanshare
// binary, both agents' config directories and the data sets.
type bench struct {
	cfg       config
	sizes     sizes
	start     time.Time
	work      string
	lanshare  string // the binary, built for this run
	self      string // this program, for helpers
	sendCfg   string
	recvCfg   string
	recvID    string // the receiver's whole id
	loopback  place  // the benchmark's own namespace
	sets      map[string]dataset
	rounds    int       // rounds run so far, naming their folders
	deletedAt time.Time // when an earlier run last deleted many files here (see settle)
	// keepAll: the outputs stay until the bench ends, as the work
	// directory is on ext4 without a journal (see runRounds).
	keepAll    bool
	notes      []string  // printed under the table
	lastLookup time.Time // when scenario 6 last sent by id
}

// runTimeout bounds one run of one way.
const runTimeout = 10 * time.Minute

func newBench(ctx context.Context, cfg config) (_ *bench, err error) {
	b := &bench{cfg: cfg, sizes: fullSizes, start: time.Now(), sets: map[string]dataset{},
		loopback: place{addr: "127.0.0.1"}}
	if cfg.quick {
		b.sizes = quickSizes
	}
	if b.self, err = os.Executable(); err != nil {
		return nil, fmt.Errorf("finding this program: %w", err)
	}
	if b.work, err = os.MkdirTemp(cfg.dir, "lanshare-bench-"); err != nil {
		return nil, fmt.Errorf("making the work directory: %w", err)
	}
	if b.keepAll = noJournal(b.work); b.keepAll && !cfg.quick {
		b.deletedAt = readDeletedMark(b.work)
	}
	defer func() {
		if err != nil {
			b.close()
		}
	}()
	b.lanshare = filepath.Join(b.work, "bin", "lanshare")
	b.sendCfg = filepath.Join(b.work, "config", "sender")
	b.recvCfg = filepath.Join(b.work, "config", "receiver")
	b.logf("work directory %s; building lanshare", b.work)
	build := exec.CommandContext(ctx, "go", "build", "-o", b.lanshare, "github.com/lanshare/lanshare/cmd/lanshare")
	if out, err := build.CombinedOutput(); err != nil {
		return nil, fmt.Errorf("building lanshare (run this from the lanshare module, with its dependencies in the module cache: go mod download): %w: %s",
			err, strings.TrimSpace(string(out)))
	}
	// Identities are made now, not by the first timed run.
	if _, err := b.lanshareID(ctx, b.sendCfg, "bench-sender"); err != nil {
		return nil, err
	}
	if b.recvID, err = b.lanshareID(ctx, b.recvCfg, "bench-receiver"); err != nil {
		return nil, err
	}
	return b, nil
}

// lanshareID runs "lanshare id", which makes the identity in dir if
// needed, and returns the whole id without its dashes.
func (b *bench) lanshareID(ctx context.Context, dir, name string) (string, error) {
	c, err := startChild("lanshare id", b.loopback.command(ctx, b.lanshare, "id", "--config", dir, "--name", name))
	if err != nil {
		return "", err
	}
	if err := c.wait(); err != nil {
		return "", err
	}
	id, ok := strings.CutPrefix(c.out.lastLine(), "id: ")
	if !ok {
		return "", fmt.Errorf("lanshare id printed %q last, not the id", c.out.lastLine())
	}
	return strings.ReplaceAll(id, "-", ""), nil
}

// close removes the work directory. When that deletes many files on ext4
// without a journal, it leaves a mark, so that a run that follows soon
// waits (see settle).
func (b *bench) close() {
	files, _, _ := measureTree(b.work)
	mark := deletedMarkPath(b.work)
	if err := os.RemoveAll(b.work); err != nil {
		fmt.Fprintf(os.Stderr, "lanshare-bench: removing %s: %v\n", b.work, err)
	}
	if b.keepAll && files >= manyDeleted && mark != "" {
		_ = syncFS(b.cfg.dir)
		writeDeletedMark(mark)
	}
}

// deletedMarkPath is where close marks a deletion of many files on the
// file system holding dir: in this user's cache folder, where no other
// user can plant a link or a false time, one file per file system.
func deletedMarkPath(dir string) string {
	cache, err := os.UserCacheDir()
	var st unix.Stat_t
	if err != nil || unix.Stat(dir, &st) != nil {
		return ""
	}
	return filepath.Join(cache, "lanshare-bench", fmt.Sprintf("deleted-%x", st.Dev))
}

// writeDeletedMark sets the mark's time to now, making it if needed,
// never through a link.
func writeDeletedMark(mark string) {
	if os.MkdirAll(filepath.Dir(mark), 0o700) != nil {
		return
	}
	f, err := os.OpenFile(mark, os.O_WRONLY|os.O_CREATE|unix.O_NOFOLLOW, 0o600)
	if err != nil {
		return
	}
	f.Close()
	now := time.Now()
	_ = os.Chtimes(mark, now, now)
}

// readDeletedMark returns the time of the mark for the file system
// holding dir, if it is this user's regular file and not in the future.
func readDeletedMark(dir string) time.Time {
	mark := deletedMarkPath(dir)
	if mark == "" {
		return time.Time{}
	}
	fi, err := os.Lstat(mark)
	if err != nil || !fi.Mode().IsRegular() {
		return time.Time{}
	}
	if st, ok := fi.Sys().(*syscall.Stat_t); !ok || int(st.Uid) != os.Geteuid() || fi.ModTime().After(time.Now()) {
		return time.Time{}
	}
	return fi.ModTime()
}

// logf prints progress on stderr, the table going to stdout.
func (b *bench) logf(format string, args ...any) {
	fmt.Fprintf(os.Stderr, "[%6.1fs] %s\n", time.Since(b.start).Seconds(), fmt.Sprintf(format, args...))
}

func (b *bench) note(format string, args ...any) {
	b.notes = append(b.notes, fmt.Sprintf(format, args...))
}

// dataset returns the named data set, making it on first use: "big" (one
// file), "small" (many small files) or "mixed". New sources are synced so
// that their write-back does not overlap the runs.
func (b *bench) dataset(name string) (dataset, error) {
	if ds, ok := b.sets[name]; ok {
		return ds, nil
	}
	t := time.Now()
	path := filepath.Join(b.work, "src", name)
	var ds dataset
	var err error
	switch name {
	case "big":
		ds, err = makeBigFile(path+".bin", b.sizes.bigFile)
	case "small":
		ds, err = makeSmallTree(path, b.sizes.smallFiles, b.sizes.smallSize)
	case "mixed":
		ds, err = makeMixedTree(path, b.sizes.mixed)
	case "tiny":
		ds, err = makeBigFile(path+".txt", 1<<10)
	default:
		err = fmt.Errorf("no data set %q", name)
	}
	if err == nil {
		err = syncFS(b.work)
	}
	if err != nil {
		return dataset{}, fmt.Errorf("making data set %s: %w", name, err)
	}
	b.logf("made %s: %d files, %s, in %.1fs", name, ds.files, formatBytes(ds.bytes), time.Since(t).Seconds())
	b.sets[name] = ds
	return ds, nil
}

// syncFS commits everything written to the file system holding path.
func syncFS(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := unix.Syncfs(int(f.Fd())); err != nil {
		return fmt.Errorf("syncfs %s: %w", path, err)
	}
	return nil
}

// way is one way of making a transfer. run makes it into out, a path that
// does not exist yet in the round's folder.
type way struct {
	name string
	run  func(ctx context.Context, out string) (sample, error)
}

// sample is what one run of a way measured.
type sample struct {
	seconds  float64
	snd, rcv usage
	network  float64 // a baseline receiver's time to the end of the stream, before its syncs
	syn      float64 // scenario 6: seconds from start to the SYN
	// received: scenario 8, the receiver's own time for the transfer,
	// from its log (from the offer's arrival to the last file named).
	received float64
}

// runRounds runs every way once per round, runs rounds, in an order that
// turns each round, and returns the samples by way and round.
//
// Every run writes into a folder of its own that no earlier run used.
// Files of bigOutput bytes or more are deleted after their round (few
// inodes, most of the bytes). On ext4 without a journal (keepAll) the
// rest stay until the bench ends (close): it does not reuse an inode
// freed within the last 60 s, or 6 min while its inode table block is
// dirty (as a new file next to it makes it), and scans past every such
// inode for each new file (recently_deleted), a tax that grew round by
// round, hid the ways' own costs, and made a bench run right after
// another measure tar at a sixth of its speed; a run that starts within
// that time of an earlier run's deletion waits for it first (see
// settle). Elsewhere the outputs go after the scenario's last round, so
// that a /tmp in memory does not hold them all.
func (b *bench) runRounds(ctx context.Context, runs int, ways []way) ([][]sample, error) {
	if err := b.settle(ctx); err != nil {
		return nil, err
	}
	got := make([][]sample, len(ways))
	for r := range runs {
		b.rounds++
		dir := filepath.Join(b.work, "out", "round"+strconv.Itoa(b.rounds))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		for k := range ways {
			i := (k + r) % len(ways)
			w := ways[i]
			runCtx, cancel := context.WithTimeout(ctx, runTimeout)
			s, err := w.run(runCtx, filepath.Join(dir, strconv.Itoa(i)))
			cancel()
			if err != nil {
				return nil, fmt.Errorf("round %d, %s: %w", r+1, w.name, err)
			}
			b.logf("  round %d/%d  %-34s %8.3fs  RSS %s/%s  CPU %.2fs/%.2fs", r+1, runs, w.name, s.seconds,
				formatMiB(s.snd.maxRSS), formatMiB(s.rcv.maxRSS), s.snd.cpu, s.rcv.cpu)
			got[i] = append(got[i], s)
		}
		if err := deleteBig(dir); err != nil {
			return nil, fmt.Errorf("deleting round %d's large outputs: %w", r+1, err)
		}
		if err := syncFS(b.work); err != nil {
			return nil, err
		}
	}
	if !b.keepAll {
		for r := b.rounds - runs + 1; r <= b.rounds; r++ {
			if err := os.RemoveAll(filepath.Join(b.work, "out", "round"+strconv.Itoa(r))); err != nil {
				return nil, fmt.Errorf("deleting round %d's outputs: %w", r, err)
			}
		}
	}
	return got, nil
}

const (
	// bigOutput is the size from which an output file is deleted after its
	// round: a 1 GiB file is not kept five times over, and the many small
	// files of scenarios 2 to 5 are kept until the bench ends.
	bigOutput = 1 << 20
	// deletedWindow is how long ext4 without a journal may pass over a
	// deleted inode: 60 s, and 300 s more while its inode table block is
	// dirty (RECENTCY_MIN and RECENTCY_DIRTY in fs/ext4/ialloc.c).
	deletedWindow = 6*time.Minute + 5*time.Second
	// manyDeleted is how many deleted files leave the mark.
	manyDeleted = 1000
)

// deleteBig deletes the regular files of bigOutput bytes or more under
// dir.
func deleteBig(dir string) error {
	return filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() {
			return err
		}
		info, err := d.Info()
		if err != nil || info.Size() < bigOutput {
			return err
		}
		return os.Remove(path)
	})
}

// settle waits, before the first timed run, until an earlier bench run's
// deletion of many files on this file system is deletedWindow old, where
// that matters: ext4 without a journal (not for -quick, whose figures are
// a smoke test).
func (b *bench) settle(ctx context.Context) error {
	wait := min(time.Until(b.deletedAt.Add(deletedWindow)), deletedWindow)
	if b.deletedAt.IsZero() || wait <= 0 {
		return nil
	}
	b.logf("  waiting %.0fs: an earlier run deleted many files here %.0fs ago, and ext4 without a journal slows the making of new ones for up to %v after",
		wait.Seconds(), time.Since(b.deletedAt).Seconds(), deletedWindow.Round(time.Minute))
	select {
	case <-time.After(wait):
		b.deletedAt = time.Time{}
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// lanshareWay sends ds from snd to a fresh agent at rcv, by HOST:PORT.
func (b *bench) lanshareWay(name string, snd, rcv place, ds dataset) way {
	return way{name: name, run: func(ctx context.Context, out string) (sample, error) {
		s, err := b.runLanshare(ctx, snd, rcv, out, ds.path)
		if err == nil {
			// The agent also keeps its staging folder, .lanshare, in out.
			err = checkOutput(filepath.Join(out, filepath.Base(ds.path)), ds)
		}
		return s, err
	}}
}

// runLanshare starts "lanshare serve" at rcv receiving into out, runs
// "lanshare send" at snd with paths to it, stops the agent with SIGTERM,
// and returns the measures.
func (b *bench) runLanshare(ctx context.Context, snd, rcv place, out string, paths ...string) (sample, error) {
	serve, addr, err := b.startServe(ctx, rcv, out)
	if err != nil {
		return sample{}, err
	}
	defer serve.stop()
	send, err := b.runSend(ctx, snd, addr, paths...)
	if err != nil {
		return sample{}, err
	}
	if err := serve.terminate(); err != nil {
		return sample{}, err
	}
	return sample{seconds: send.elapsed().Seconds(), snd: send.usage(), rcv: serve.usage()}, nil
}

// startServe starts "lanshare serve" at rcv receiving into out, and
// returns it once it listens, with the address it printed. The caller
// must stop it.
func (b *bench) startServe(ctx context.Context, rcv place, out string) (*child, string, error) {
	return b.startServeWatching(ctx, rcv, out, nil)
}

// startServeWatching is startServe with env added to the agent's
// environment, and watch (if not nil) called with every line it prints.
func (b *bench) startServeWatching(ctx context.Context, rcv place, out string, watch func(string), env ...string) (*child, string, error) {
	serve, err := startChildWatching("lanshare serve", rcv.command(ctx, b.lanshare, "serve", "--dir", out, "--config", b.recvCfg,
		"--listen", net.JoinHostPort(rcv.addr, "0"), "--name", "bench-receiver",
		// The bench sends many GiB a day as a stranger: it measures the
		// transfer, not the strangers' budget.
		"--stranger-budget", "off"), watch, env...)
	if err != nil {
		return nil, "", err
	}
	line, err := serve.firstLine(ctx, 30*time.Second)
	if err != nil {
		serve.stop()
		return nil, "", err
	}
	addr, ok := strings.CutPrefix(line, "listening on ")
	if !ok {
		serve.stop()
		return nil, "", fmt.Errorf("lanshare serve printed %q first, want listening on ADDR", line)
	}
	return serve, addr, nil
}

// runSend runs "lanshare send" at snd with paths to target, and returns
// it once it has exited successfully.
func (b *bench) runSend(ctx context.Context, snd place, target string, paths ...string) (*child, error) {
	args := append([]string{"send", "--quiet", "--config", b.sendCfg, target}, paths...)
	send, err := startChild("lanshare send", snd.command(ctx, b.lanshare, args...))
	if err != nil {
		return nil, err
	}
	defer send.stop()
	if err := send.wait(); err != nil {
		return nil, err
	}
	return send, nil
}

// baselineWay copies ds from snd to rcv with helpers in mode tcp, tls
// (ds a file) or tar (ds a folder).
func (b *bench) baselineWay(name, mode string, snd, rcv place, ds dataset) way {
	return way{name: name, run: func(ctx context.Context, out string) (sample, error) {
		s, err := b.runBaseline(ctx, mode, snd, rcv, ds.path, out)
		if err == nil {
			want := out
			if mode == "tar" || mode == "tar-socat" {
				want = filepath.Join(out, filepath.Base(ds.path))
			}
			err = checkOutput(want, ds)
		}
		return s, err
	}}
}

func (b *bench) runBaseline(ctx context.Context, mode string, snd, rcv place, src, out string) (sample, error) {
	recv, err := startChild(mode+" receiver", rcv.command(ctx, b.self, "-mode", mode, "-out", out,
		"-listen", net.JoinHostPort(rcv.addr, "0")), envHelper+"=receive")
	if err != nil {
		return sample{}, err
	}
	defer recv.stop()
	line, err := recv.firstLine(ctx, 30*time.Second)
	if err != nil {
		return sample{}, err
	}
	addr, ok := strings.CutPrefix(line, "listening on ")
	if !ok {
		return sample{}, fmt.Errorf("%s receiver printed %q first", mode, line)
	}
	send, err := startChild(mode+" sender", snd.command(ctx, b.self, "-mode", mode, "-to", addr, "-src", src), envHelper+"=send")
	if err != nil {
		return sample{}, err
	}
	defer send.stop()
	if err := send.wait(); err != nil {
		return sample{}, err
	}
	if err := recv.wait(); err != nil {
		return sample{}, err
	}
	var res receiveResult
	if err := json.Unmarshal([]byte(recv.out.lastLine()), &res); err != nil {
		return sample{}, fmt.Errorf("%s receiver's result %q: %w", mode, recv.out.lastLine(), err)
	}
	return sample{seconds: send.elapsed().Seconds(), snd: send.usage(), rcv: recv.usage(), network: res.ReceiveSeconds}, nil
}

// noJournal reports whether dir is on ext4 without a journal, as the
// root file system of the machines this bench ran on is: ext4 keeps a
// journal's state under /proc/fs/jbd2, by device name.
func noJournal(dir string) bool {
	var sfs unix.Statfs_t
	var st unix.Stat_t
	if unix.Statfs(dir, &sfs) != nil || sfs.Type != unix.EXT4_SUPER_MAGIC || unix.Stat(dir, &st) != nil {
		return false
	}
	uevent, err := os.ReadFile(fmt.Sprintf("/sys/dev/block/%d:%d/uevent", unix.Major(st.Dev), unix.Minor(st.Dev)))
	if err != nil {
		return false
	}
	for line := range strings.Lines(string(uevent)) {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "DEVNAME="); ok {
			_, err := os.Stat(filepath.Join("/proc/fs/jbd2", name+"-8"))
			return os.IsNotExist(err)
		}
	}
	return false
}
