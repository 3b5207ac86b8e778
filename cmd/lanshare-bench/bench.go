//go:build linux

package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"golang.org/x/sys/unix"
)

// bench holds what the scenarios share: the work directory, the lanshare
// binary, both agents' config directories and the data sets.
type bench struct {
	cfg        config
	sizes      sizes
	start      time.Time
	work       string
	lanshare   string // the binary, built for this run
	self       string // this program, for helpers
	sendCfg    string
	recvCfg    string
	recvID     string // the receiver's whole id
	loopback   place  // the benchmark's own namespace
	sets       map[string]dataset
	rounds     int       // rounds run so far, naming their folders
	deletedAt  time.Time // when runRounds last deleted many files
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

func (b *bench) close() {
	if err := os.RemoveAll(b.work); err != nil {
		fmt.Fprintf(os.Stderr, "lanshare-bench: removing %s: %v\n", b.work, err)
	}
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
// Every run writes into a folder of its own that no earlier run used, and
// a round's outputs stay until the last round has run, but for their
// files of bigOutput bytes or more, deleted after their round (few
// inodes, most of the bytes): no run creates its files just after many
// were deleted. ext4 without a journal does not reuse an inode freed
// within the last 30 s (recently_deleted), and scans past every such
// inode for each new file, a tax that grew round by round and hid the
// ways' own costs. After the last round the outputs are deleted and the
// file system synced, and the next runRounds waits until that deletion is
// deletionSettle old before its first run.
func (b *bench) runRounds(ctx context.Context, runs int, ways []way) ([][]sample, error) {
	if err := b.settle(ctx); err != nil {
		return nil, err
	}
	got := make([][]sample, len(ways))
	var kept []string
	defer func() {
		// Only on an error: the work directory's removal takes what is left.
		_ = b.deleteOutputs(kept)
	}()
	for r := range runs {
		b.rounds++
		dir := filepath.Join(b.work, "out", "round"+strconv.Itoa(b.rounds))
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return nil, err
		}
		kept = append(kept, dir)
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
	dirs := kept
	kept = nil
	if err := b.deleteOutputs(dirs); err != nil {
		return nil, err
	}
	return got, nil
}

const (
	// bigOutput is the size from which an output file is deleted after its
	// round: a 1 GiB file is not kept five times over, and the many small
	// files of scenarios 2 to 5 are kept until the last round.
	bigOutput = 1 << 20
	// deletionSettle is how long after deleting many files runRounds waits
	// before its first run: past ext4's 30 s (dtime in whole seconds).
	deletionSettle = 32 * time.Second
	// manyDeleted is how many deleted files make runRounds wait.
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

// deleteOutputs deletes the rounds' folders dirs, syncs the file system,
// and notes when, if they held many files, for settle.
func (b *bench) deleteOutputs(dirs []string) error {
	if len(dirs) == 0 {
		return nil
	}
	files := 0
	for _, dir := range dirs {
		n, _, err := measureTree(dir)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return err
		}
		files += n
		if err := os.RemoveAll(dir); err != nil {
			return fmt.Errorf("deleting a round's outputs: %w", err)
		}
	}
	if err := syncFS(b.work); err != nil {
		return err
	}
	if files >= manyDeleted {
		b.deletedAt = time.Now()
	}
	return nil
}

// settle waits until the last deletion of many files is deletionSettle
// old.
func (b *bench) settle(ctx context.Context) error {
	wait := time.Until(b.deletedAt.Add(deletionSettle))
	if b.deletedAt.IsZero() || wait <= 0 {
		return nil
	}
	b.logf("  waiting %.0fs: files deleted within the last %v slow the creation of new ones", wait.Seconds(), deletionSettle)
	select {
	case <-time.After(wait):
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
