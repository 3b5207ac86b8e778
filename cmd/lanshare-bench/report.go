//go:build linux

package main

import (
	"bufio"
	"bytes"
	"fmt"
	"io"
	"os"
	"runtime"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"golang.org/x/sys/unix"
)

// rssTarget is issue 6's cap on the peak RSS of lanshare's sender and
// receiver.
const rssTarget = 64 << 20

// metric turns a sample into a scenario's figure.
type metric struct {
	unit string
	of   func(sample) float64
	// time is true for figures where less is better (s, ms); the ratio
	// is lanshare's figure over the other way's either way.
	time bool
}

// rate is MB/s (10^6 bytes a second) for moving bytes.
func rate(bytes int64) metric {
	return metric{unit: "MB/s", of: func(s sample) float64 { return float64(bytes) / 1e6 / s.seconds }}
}

// filesRate is files a second for moving n files.
func filesRate(n int) metric {
	return metric{unit: "files/s", of: func(s sample) float64 { return float64(n) / s.seconds }}
}

var (
	wallTime  = metric{unit: "s", of: func(s sample) float64 { return s.seconds }, time: true}
	firstByte = metric{unit: "ms", of: func(s sample) float64 { return s.seconds * 1e3 }, time: true}
)

// target is a bound on a ratio, or with a unit on the row's own figure:
// at least v, or at most v.
type target struct {
	v      float64
	atMost bool
	unit   string // "": a ratio
}

func (t target) String() string {
	if t.unit != "" {
		op := "≥"
		if t.atMost {
			op = "≤"
		}
		return fmt.Sprintf("%s%s %s", op, formatFigure(t.v, t.unit), t.unit)
	}
	if t.atMost {
		return fmt.Sprintf("≤%.2f", t.v)
	}
	return fmt.Sprintf("≥%.2f", t.v)
}

// verdict says whether r meets its target, if it has one that can be
// judged.
func (r row) verdict() (met, ok bool) {
	switch {
	case r.target == nil:
		return false, false
	case r.target.unit != "" && len(r.values) > 0:
		// A cap on the figure holds in every round.
		worst := slices.Max(r.values)
		if !r.target.atMost {
			worst = slices.Min(r.values)
		}
		return r.target.met(worst), true
	case r.target.unit == "" && len(r.ratios) > 0:
		return r.target.met(median(r.ratios)), true
	}
	return false, false
}

func (t target) met(ratio float64) bool {
	if t.atMost {
		return ratio <= t.v
	}
	return ratio >= t.v
}

// row is one line of the table: one way of one scenario.
type row struct {
	scenario string // on a scenario's first row only
	way      string
	m        metric
	values   []float64 // one per round
	ratios   []float64 // lanshare's figure over this row's, one per round; nil on lanshare's rows
	target   *target
	lanshare bool // the row of lanshare itself (RSS target applies)
	// Peak RSS over the rounds, bytes (0: not measured), and median CPU
	// seconds per GB moved (negative: not measured).
	sndRSS, rcvRSS int64
	sndCPU, rcvCPU float64
}

// usageColumns fills the RSS and CPU columns of r from s, bytes moved per
// run (0: no CPU per GB).
func (r *row) usageColumns(s []sample, bytes int64) {
	r.sndCPU, r.rcvCPU = -1, -1
	var snd, rcv []float64
	for _, x := range s {
		r.sndRSS = max(r.sndRSS, x.snd.maxRSS)
		r.rcvRSS = max(r.rcvRSS, x.rcv.maxRSS)
		if bytes > 0 {
			snd = append(snd, x.snd.cpu/(float64(bytes)/1e9))
			rcv = append(rcv, x.rcv.cpu/(float64(bytes)/1e9))
		}
	}
	if bytes > 0 {
		r.sndCPU, r.rcvCPU = median(snd), median(rcv)
	}
}

// subjectRow is lanshare's row of a scenario.
func subjectRow(scenario, way string, m metric, s []sample, bytes int64) row {
	r := row{scenario: scenario, way: way, m: m, lanshare: true}
	for _, x := range s {
		r.values = append(r.values, m.of(x))
	}
	r.usageColumns(s, bytes)
	return r
}

// baselineRow is the row of a way lanshare is compared with: its samples
// s, and lanshare's of the same rounds.
func baselineRow(way string, m metric, s, lanshare []sample, bytes int64, t *target) row {
	r := row{way: way, m: m, target: t}
	for i, x := range s {
		r.values = append(r.values, m.of(x))
		r.ratios = append(r.ratios, m.of(lanshare[i])/m.of(x))
	}
	r.usageColumns(s, bytes)
	return r
}

// fixedRow is a reference figure that is not measured (a link's rate).
func fixedRow(way string, m metric, v float64, lanshare []sample, t *target) row {
	r := row{way: way, m: m, values: []float64{v}, target: t, sndCPU: -1, rcvCPU: -1}
	for _, x := range lanshare {
		r.ratios = append(r.ratios, m.of(x)/v)
	}
	return r
}

func median(v []float64) float64 {
	if len(v) == 0 {
		return 0
	}
	s := slices.Sorted(slices.Values(v))
	if len(s)%2 == 1 {
		return s[len(s)/2]
	}
	return (s[len(s)/2-1] + s[len(s)/2]) / 2
}

// formatFigure formats v in unit with as many digits as are worth
// reading.
func formatFigure(v float64, unit string) string {
	switch {
	case unit == "files/s" || unit == "conns" || v >= 100:
		return fmt.Sprintf("%.0f", v)
	case unit == "s" || v < 10:
		return fmt.Sprintf("%.2f", v)
	default:
		return fmt.Sprintf("%.1f", v)
	}
}

// formatSpread is "median (min–max)", or the value alone when there is
// one.
func formatSpread(v []float64, unit string) string {
	if len(v) == 0 {
		return "—"
	}
	med := formatFigure(median(v), unit)
	if len(v) == 1 {
		return med
	}
	return fmt.Sprintf("%s (%s–%s)", med, formatFigure(slices.Min(v), unit), formatFigure(slices.Max(v), unit))
}

func formatRatios(v []float64) string {
	if len(v) == 0 {
		return ""
	}
	return fmt.Sprintf("%.3f (%.3f–%.3f)", median(v), slices.Min(v), slices.Max(v))
}

func formatMiB(b int64) string {
	if b == 0 {
		return "—"
	}
	return fmt.Sprintf("%.0f", float64(b)/(1<<20))
}

func formatBytes(b int64) string {
	switch {
	case b >= 1<<30 && b%(1<<30) == 0:
		return fmt.Sprintf("%d GiB", b>>30)
	case b >= 1<<20 && b%(1<<20) == 0:
		return fmt.Sprintf("%d MiB", b>>20)
	case b >= 1<<10 && b%(1<<10) == 0 && b < 1<<20:
		return fmt.Sprintf("%d KiB", b>>10)
	default:
		return fmt.Sprintf("%.0f MB", float64(b)/1e6)
	}
}

// printReport prints the machine, the table, the targets and the notes.
func printReport(w io.Writer, b *bench, rows []row, wall time.Duration) {
	size := "full sizes"
	if b.cfg.quick {
		size = "-quick sizes"
	}
	fmt.Fprintf(w, "lanshare-bench: %s, %d rounds, %s wall time\n", size, b.cfg.runs, wall.Round(time.Second))
	fmt.Fprintf(w, "machine: %s\n\n", machine(b.work))
	var table bytes.Buffer
	tw := tabwriter.NewWriter(&table, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tWAY\tMEDIAN (MIN–MAX)\tUNIT\tRATIO (MIN–MAX)\tTARGET\tPEAK RSS MiB SND/RCV\tCPU s/GB SND+RCV")
	for _, r := range rows {
		if r.scenario != "" {
			fmt.Fprintln(tw, "\t\t\t\t\t\t\t")
		}
		tgt := ""
		if met, ok := r.verdict(); ok {
			verdict := "missed"
			if met {
				verdict = "met"
			}
			tgt = r.target.String() + " " + verdict
		}
		rss := ""
		if r.sndRSS > 0 || r.rcvRSS > 0 {
			rss = formatMiB(r.sndRSS) + "/" + formatMiB(r.rcvRSS)
		}
		cpu := ""
		if r.sndCPU >= 0 {
			cpu = fmt.Sprintf("%.2f+%.2f", r.sndCPU, r.rcvCPU)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.scenario, r.way, formatSpread(r.values, r.m.unit), r.m.unit,
			formatRatios(r.ratios), tgt, rss, cpu)
	}
	tw.Flush()
	for _, line := range strings.Split(strings.TrimRight(table.String(), "\n"), "\n") {
		fmt.Fprintln(w, strings.TrimRight(line, " "))
	}
	fmt.Fprintln(w, "\nRATIO is lanshare's figure over the row's, round by round: for MB/s and files/s")
	fmt.Fprintln(w, "higher is better, for s and ms lower is. RSS is the peak over the rounds (rusage")
	fmt.Fprintln(w, "Maxrss of the sending and receiving processes); CPU is user+system time per 10^9")
	fmt.Fprintln(w, "bytes moved, median over the rounds. MB = 10^6 bytes.")
	var peakSnd, peakRcv int64
	for _, r := range rows {
		if r.lanshare {
			peakSnd, peakRcv = max(peakSnd, r.sndRSS), max(peakRcv, r.rcvRSS)
		}
	}
	if peakSnd > 0 {
		verdict := "met"
		if peakSnd > rssTarget || peakRcv > rssTarget {
			verdict = "missed"
		}
		fmt.Fprintf(w, "lanshare's peak RSS: sender %s MiB, receiver %s MiB (target ≤%d MiB each: %s)\n",
			formatMiB(peakSnd), formatMiB(peakRcv), rssTarget>>20, verdict)
	}
	for _, n := range b.notes {
		fmt.Fprintln(w, n)
	}
}

// machine describes the CPU, memory, kernel and the work directory's file
// system.
func machine(dir string) string {
	cpu := "unknown CPU"
	if f, err := os.Open("/proc/cpuinfo"); err == nil {
		sc := bufio.NewScanner(f)
		for sc.Scan() {
			if k, v, ok := strings.Cut(sc.Text(), ":"); ok && strings.TrimSpace(k) == "model name" {
				cpu = strings.TrimSpace(v)
				break
			}
		}
		f.Close()
	}
	var si unix.Sysinfo_t
	mem := ""
	if unix.Sysinfo(&si) == nil {
		mem = fmt.Sprintf(", %.0f GiB RAM", float64(si.Totalram)*float64(si.Unit)/(1<<30))
	}
	kernel := ""
	var u unix.Utsname
	if unix.Uname(&u) == nil {
		kernel = ", Linux " + unix.ByteSliceToString(u.Release[:])
	}
	fsType := "unknown file system"
	var st unix.Statfs_t
	if unix.Statfs(dir, &st) == nil {
		switch st.Type {
		case unix.EXT4_SUPER_MAGIC:
			fsType = "ext4"
		case unix.TMPFS_MAGIC:
			fsType = "tmpfs"
		case unix.XFS_SUPER_MAGIC:
			fsType = "xfs"
		case unix.BTRFS_SUPER_MAGIC:
			fsType = "btrfs"
		default:
			fsType = fmt.Sprintf("file system 0x%x", st.Type)
		}
	}
	return fmt.Sprintf("%s × %d%s%s, %s, work directory on %s", cpu, runtime.NumCPU(), mem, kernel, runtime.Version(), fsType)
}
