//go:build linux

package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/chromedp/chromedp"
)

// browser is a headless chromium that scenarios 10 and 11 drive with
// chromedp, through a pipe (no debugging port). It runs in the
// benchmark's namespace, as everything the benchmark starts does, and
// takes the agents' self-signed certificates.
type browser struct {
	tab   context.Context // one tab, for the whole scenario
	close func()
}

// errNoChromium is returned when no chromium is installed.
var errNoChromium = errors.New("no chromium on PATH: scenarios 10 and 11 drive a real browser (apt-get install chromium)")

// startBrowser starts chromium with its profile under the work directory
// and opens a blank tab. The caller must call close.
func (b *bench) startBrowser() (*browser, error) {
	path := ""
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			path = p
			break
		}
	}
	if path == "" {
		return nil, errNoChromium
	}
	profile, err := os.MkdirTemp(b.work, "chromium-")
	if err != nil {
		return nil, err
	}
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(path),
		chromedp.UserDataDir(profile),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.WindowSize(1280, 800),
	)
	if os.Geteuid() == 0 {
		opts = append(opts, chromedp.NoSandbox) // chromium's sandbox refuses to start as root
	}
	// Not the run's context: the browser lives for the scenario, and
	// close ends it.
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	tab, cancelTab := chromedp.NewContext(alloc)
	br := &browser{tab: tab, close: func() {
		cancelTab()
		cancelAlloc()
		_ = os.RemoveAll(profile)
	}}
	if err := chromedp.Do(tab, chromedp.Navigate("about:blank")); err != nil {
		br.close()
		return nil, fmt.Errorf("starting chromium: %w", err)
	}
	return br, nil
}

// ctx returns a context for the tab that ends with ctx.
func (br *browser) ctx(ctx context.Context) (context.Context, context.CancelFunc) {
	tctx, cancel := context.WithCancel(br.tab)
	stop := context.AfterFunc(ctx, cancel)
	return tctx, func() {
		stop()
		cancel()
	}
}

// cpu returns the CPU seconds (user and system) that chromium's processes
// have used so far: the browser process and every process under it, with
// the children they have waited for.
func (br *browser) cpu() float64 {
	c := chromedp.FromContext(br.tab)
	if c == nil || c.Browser == nil || c.Browser.Process() == nil {
		return 0
	}
	return treeCPU(c.Browser.Process().Pid)
}

// treeCPU sums utime, stime, cutime and cstime of pid and of every
// process under it, from /proc, in seconds.
func treeCPU(pid int) float64 {
	ents, err := os.ReadDir("/proc")
	if err != nil {
		return 0
	}
	parent := map[int]int{}
	ticks := map[int]float64{}
	for _, e := range ents {
		p, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		raw, err := os.ReadFile(filepath.Join("/proc", e.Name(), "stat"))
		if err != nil {
			continue
		}
		// The command, in parentheses, may hold spaces: fields count
		// from after its closing one.
		s := string(raw)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 15 {
			continue
		}
		parent[p], _ = strconv.Atoi(f[1])
		var t float64
		for _, v := range f[11:15] {
			n, _ := strconv.ParseFloat(v, 64)
			t += n
		}
		ticks[p] = t
	}
	var sum float64
	for p, t := range ticks {
		for q := p; q > 1; q = parent[q] {
			if q == pid {
				sum += t
				break
			}
		}
	}
	return sum / clockTicks
}

// clockTicks is USER_HZ, the unit of /proc/PID/stat's times: 100 on
// every Linux architecture Go supports.
const clockTicks = 100
