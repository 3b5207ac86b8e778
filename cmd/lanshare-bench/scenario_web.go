//go:build linux

package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"os"
	"path/filepath"
	"strings"
	"time"

	cdpbrowser "github.com/chromedp/cdproto/browser"
	"github.com/chromedp/chromedp"
)

// Scenarios 10 and 11: the drop page and share links of issue 16, in a
// real browser (headless chromium, driven with chromedp, in the
// benchmark's namespace like everything else it starts).
//
// Scenario 10: the big file uploaded from the browser to the drop page
// of a fresh "lanshare serve", picked with the page's file input, next to
// "lanshare send" of the same file over the lanshare protocol in the same
// rounds (issue 16 asks for at least 0.5 of it). The browser's time runs
// from the file input's change event to the page's "Sent 1 of 1 file.",
// which it shows once the agent has answered the upload, after the file
// was synced and named; the PIN is entered before, untimed, as a user
// has the page open already. The uploaded file is compared byte for byte
// with the source after each run, untimed (the page sends no digest for
// a file that big). chromium's CPU is that of all its processes over the
// run; its memory is not measured (it is many processes).
//
// Scenario 11: the big file downloaded through a share link ("lanshare
// share FILE" on a fresh "lanshare serve"), next to a bare HTTPS file
// server in Go (http.ServeContent over TLS 1.3, HTTP/1.1, an RSA 2048
// self-signed certificate like the agent's; helper_web.go), both
// downloaded by the same client in the same rounds: a Go client (a
// helper process, which times the request to the body's end and throws
// the bytes away, so that its figure is the server's and the
// connection's, not a disk's) and chromium's download manager, as a user
// clicking the link (the file saved into the work directory, timed from
// the click to chromium's report that it completed). Issue 16 asks for
// at least 0.8 of the bare server.

// benchPIN is the drop page's PIN in scenario 10.
const benchPIN = "482193"

// Scenario 10.
func (b *bench) browserUpload(ctx context.Context) ([]row, error) {
	big, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	tiny, err := b.dataset("tiny")
	if err != nil {
		return nil, err
	}
	br, err := b.startBrowser()
	if err != nil {
		return nil, err
	}
	defer br.close()
	// One upload untimed: chromium's network service and the page's
	// first load are warm before the first timed run.
	if _, err := b.runDropPage(ctx, br, filepath.Join(b.work, "out", "web-warm"), tiny); err != nil {
		return nil, fmt.Errorf("warming up the drop page: %w", err)
	}
	lo := b.loopback
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		{name: "chromium → drop page", run: func(ctx context.Context, out string) (sample, error) {
			return b.runDropPage(ctx, br, out, big)
		}},
		b.lanshareWay("lanshare send, lanshare protocol", lo, lo, big),
	})
	if err != nil {
		return nil, err
	}
	m := rate(big.bytes)
	b.note("scenario 10: RATIO is the browser's upload over lanshare send's, round by round; the browser is timed from its file input's change to the page's \"Sent\", lanshare send from its start to its exit; SND of the browser's row is chromium's CPU (all its processes), its RSS is not measured")
	return []row{
		subjectRow(fmt.Sprintf("10 one %s file, browser upload, loopback", formatBytes(big.bytes)), "chromium → drop page (HTTPS)", m, s[0], big.bytes),
		baselineRow("lanshare send (lanshare protocol)", m, s[1], s[0], big.bytes, &target{v: 0.5}),
	}, nil
}

// runDropPage starts "lanshare serve" receiving into out, opens its drop
// page in br, enters the PIN, uploads ds (a file) with the file input,
// stops the agent with SIGTERM, checks the file landed byte-identical,
// and returns the measures.
func (b *bench) runDropPage(ctx context.Context, br *browser, out string, ds dataset) (sample, error) {
	serve, url, err := b.startWebServe(ctx, out, "--web-pin", benchPIN)
	if err != nil {
		return sample{}, err
	}
	defer serve.stop()
	tab, cancel := br.ctx(ctx)
	defer cancel()
	if err := chromedp.Do(tab,
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("pin")),
		chromedp.SendKeys(chromedp.ID("pin"), benchPIN+"\n"),
		chromedp.WaitVisible(chromedp.ID("upload")),
		// The page's own clock: from the file input's change to the
		// status that ends the batch.
		chromedp.Evaluate[chromedp.Void](`(() => {
			const st = document.getElementById('status');
			window.benchDone = new Promise((resolve) => {
				let start = 0;
				document.getElementById('files').addEventListener('change', () => { start = performance.now(); }, {once: true});
				new MutationObserver(() => {
					const t = st.textContent;
					if (/^(Sent |Refused|Error|The receiver)/.test(t)) resolve({start, end: performance.now(), status: t});
				}).observe(st, {childList: true, characterData: true, subtree: true});
			});
		})()`),
	); err != nil {
		return sample{}, fmt.Errorf("opening the drop page %s: %w", url, err)
	}
	cpu0 := br.cpu()
	if err := chromedp.Do(tab, chromedp.SetUploadFiles(chromedp.ID("files"), []string{ds.path})); err != nil {
		return sample{}, err
	}
	type result struct {
		Start, End float64
		Status     string
	}
	res, err := chromedp.Run(tab, chromedp.Evaluate[result](`window.benchDone`, chromedp.EvalAwaitPromise))
	if err != nil {
		return sample{}, fmt.Errorf("waiting for the upload: %w", err)
	}
	cpu := br.cpu() - cpu0
	if res.Status != "Sent 1 of 1 file." {
		return sample{}, fmt.Errorf("the drop page says %q", res.Status)
	}
	if err := serve.terminate(); err != nil {
		return sample{}, err
	}
	recv, err := receivedSeconds(serve.out.String())
	if err != nil {
		return sample{}, err
	}
	if err := sameFile(filepath.Join(out, filepath.Base(ds.path)), ds.path); err != nil {
		return sample{}, err
	}
	return sample{seconds: (res.End - res.Start) / 1e3, snd: usage{cpu: cpu}, rcv: serve.usage(), received: recv}, nil
}

// startWebServe starts "lanshare serve" receiving into out, its LocalSend
// server (and so its drop page) on a free port, with args added, and
// returns it once the drop page is served, with the page's address. The
// caller must stop it.
func (b *bench) startWebServe(ctx context.Context, out string, args ...string) (*child, string, error) {
	got := make(chan string, 1)
	watch := func(line string) {
		// "drop page https://127.0.0.1:PORT/  PIN 482193"
		if _, rest, ok := strings.Cut(line, " drop page "); ok {
			url, _, _ := strings.Cut(rest, " ")
			select {
			case got <- url:
			default:
			}
		}
	}
	rcv := b.loopback
	serve, err := startChildWatching("lanshare serve", rcv.command(ctx, b.lanshare, append([]string{"serve", "--dir", out, "--config", b.recvCfg,
		"--listen", net.JoinHostPort(rcv.addr, "0"), "--name", "bench-receiver", "--stranger-budget", "off",
		"--localsend", "--localsend-port", "0"}, args...)...), watch)
	if err != nil {
		return nil, "", err
	}
	t := time.NewTimer(30 * time.Second)
	defer t.Stop()
	select {
	case url := <-got:
		return serve, url, nil
	case <-serve.done:
		err = fmt.Errorf("lanshare serve exited (%v) before its drop page was served: %s", serve.err, serve.out)
	case <-ctx.Done():
		err = ctx.Err()
	case <-t.C:
		err = fmt.Errorf("lanshare serve gave no drop page address within 30s: %s", serve.out)
	}
	serve.stop()
	return nil, "", err
}

// sameFile fails unless the files at a and b hold the same bytes.
func sameFile(a, b string) error {
	fa, err := os.Open(a)
	if err != nil {
		return err
	}
	defer fa.Close()
	fb, err := os.Open(b)
	if err != nil {
		return err
	}
	defer fb.Close()
	ba, bb := make([]byte, 1<<20), make([]byte, 1<<20)
	for off := int64(0); ; {
		na, erra := io.ReadFull(fa, ba)
		nb, errb := io.ReadFull(fb, bb)
		if na != nb || !bytes.Equal(ba[:na], bb[:nb]) {
			return fmt.Errorf("%s differs from %s after byte %d", a, b, off)
		}
		off += int64(na)
		if erra != nil || errb != nil {
			if (erra == io.EOF || erra == io.ErrUnexpectedEOF) && (errb == io.EOF || errb == io.ErrUnexpectedEOF) {
				return nil
			}
			return fmt.Errorf("comparing %s with %s: %v, %v", a, b, erra, errb)
		}
	}
}

// Scenario 11.
func (b *bench) shareDownload(ctx context.Context) ([]row, error) {
	big, err := b.dataset("big")
	if err != nil {
		return nil, err
	}
	certFile, keyFile := filepath.Join(b.work, "bare-cert.pem"), filepath.Join(b.work, "bare-key.pem")
	if err := writeRSACert(certFile, keyFile); err != nil {
		return nil, err
	}
	br, err := b.startBrowser()
	if err != nil {
		return nil, err
	}
	defer br.close()
	goClient := func(ctx context.Context, url string) (sample, error) { return b.goGet(ctx, url, big.bytes) }
	downloads := filepath.Join(b.work, "downloads")
	chromium := func(ctx context.Context, url string) (sample, error) {
		return br.download(ctx, downloads, url, big.bytes)
	}
	s, err := b.runRounds(ctx, b.cfg.runs, []way{
		b.shareWay("share link, Go client", big, goClient),
		b.bareWay("bare HTTPS server, Go client", big, certFile, keyFile, goClient),
		b.shareWay("share link, chromium", big, chromium),
		b.bareWay("bare HTTPS server, chromium", big, certFile, keyFile, chromium),
	})
	if err != nil {
		return nil, err
	}
	m := rate(big.bytes)
	b.note("scenario 11: RATIO is the share link's figure over the bare server's with the same client, round by round; SND is the server (lanshare serve, or the bare server), RCV the client (chromium: CPU of all its processes, RSS not measured); the Go client times the request to the body's end and throws the bytes away, chromium's download manager saves the file (timed from the click to its report that the download completed)")
	title := fmt.Sprintf("11 one %s file, share link download, loopback", formatBytes(big.bytes))
	return []row{
		subjectRow(title, "share link ← Go client", m, s[0], big.bytes),
		baselineRow("bare Go HTTPS server ← Go client", m, s[1], s[0], big.bytes, &target{v: 0.8}),
		subjectRow(title+", chromium", "share link ← chromium", m, s[2], big.bytes),
		baselineRow("bare Go HTTPS server ← chromium", m, s[3], s[2], big.bytes, &target{v: 0.8}),
	}, nil
}

// shareWay downloads ds through a share link of a fresh agent with
// client: "lanshare serve", then "lanshare share FILE", then the GET.
func (b *bench) shareWay(name string, ds dataset, client func(context.Context, string) (sample, error)) way {
	return way{name: name, run: func(ctx context.Context, out string) (sample, error) {
		serve, _, err := b.startWebServe(ctx, out)
		if err != nil {
			return sample{}, err
		}
		defer serve.stop()
		link := make(chan string, 1)
		sh, err := startChildWatching("lanshare share", b.loopback.command(ctx, b.lanshare, "share", "--config", b.recvCfg, "--for", "1h", ds.path),
			func(line string) {
				// "share ID LINK  until 15:04 (Ctrl-C ends it)"
				if f := strings.Fields(line); len(f) >= 3 && f[0] == "share" && strings.HasPrefix(f[2], "https://") {
					select {
					case link <- f[2]:
					default:
					}
				}
			})
		if err != nil {
			return sample{}, err
		}
		defer sh.stop()
		var url string
		select {
		case url = <-link:
		case <-sh.done:
			return sample{}, fmt.Errorf("lanshare share exited (%v) without a link: %s", sh.err, sh.out)
		case <-ctx.Done():
			return sample{}, ctx.Err()
		case <-time.After(30 * time.Second):
			return sample{}, fmt.Errorf("lanshare share printed no link within 30s: %s", sh.out)
		}
		s, err := client(ctx, url+"0")
		if err != nil {
			return sample{}, err
		}
		if err := sh.terminate(); err != nil {
			return sample{}, err
		}
		if err := serve.terminate(); err != nil {
			return sample{}, err
		}
		s.snd = serve.usage()
		return s, nil
	}}
}

// bareWay downloads ds from a fresh bare HTTPS file server with client.
func (b *bench) bareWay(name string, ds dataset, certFile, keyFile string, client func(context.Context, string) (sample, error)) way {
	return way{name: name, run: func(ctx context.Context, out string) (sample, error) {
		srv, err := startChild("bare HTTPS server", b.loopback.command(ctx, b.self, "-listen", "127.0.0.1:0", "-src", ds.path,
			"-cert", certFile, "-key", keyFile), envHelper+"=serve-file")
		if err != nil {
			return sample{}, err
		}
		defer srv.stop()
		line, err := srv.firstLine(ctx, 30*time.Second)
		if err != nil {
			return sample{}, err
		}
		addr, ok := strings.CutPrefix(line, "listening on ")
		if !ok {
			return sample{}, fmt.Errorf("the bare server printed %q first", line)
		}
		s, err := client(ctx, "https://"+addr+"/file")
		if err != nil {
			return sample{}, err
		}
		if err := srv.terminate(); err != nil {
			return sample{}, err
		}
		s.snd = srv.usage()
		return s, nil
	}}
}

// goGet downloads url with the Go client helper, which must get size
// bytes; its time is the helper's own, its usage the receiver's.
func (b *bench) goGet(ctx context.Context, url string, size int64) (sample, error) {
	c, err := startChild("Go client", b.loopback.command(ctx, b.self, "-to", url, "-size", fmt.Sprint(size)), envHelper+"=get")
	if err != nil {
		return sample{}, err
	}
	defer c.stop()
	if err := c.wait(); err != nil {
		return sample{}, err
	}
	var res getResult
	if err := json.Unmarshal([]byte(c.out.lastLine()), &res); err != nil {
		return sample{}, fmt.Errorf("the Go client's result %q: %w", c.out.lastLine(), err)
	}
	return sample{seconds: res.Seconds, rcv: c.usage()}, nil
}

// download downloads url with the browser's own download manager, as a
// user clicking the link does, into a folder of the work directory: it
// opens the page at url's folder (the share's page, or the bare
// server's), clicks a link to url, and waits for the download to
// complete, which must give size bytes. The time runs from the click to
// the browser's report that the download completed; the file is then
// deleted.
func (br *browser) download(ctx context.Context, dir, url string, size int64) (sample, error) {
	tab, cancel := br.ctx(ctx)
	defer cancel()
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return sample{}, err
	}
	page := url[:strings.LastIndexByte(url, '/')+1]
	if _, err := chromedp.Call(tab, cdpbrowser.SetDownloadBehavior, cdpbrowser.SetDownloadBehaviorParams{
		Behavior: cdpbrowser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &[]bool{true}[0]}); err != nil {
		return sample{}, fmt.Errorf("setting chromium's download folder: %w", err)
	}
	if err := chromedp.Do(tab, chromedp.Navigate(page)); err != nil {
		return sample{}, fmt.Errorf("opening %s: %w", page, err)
	}
	progress := chromedp.Events(tab, cdpbrowser.DownloadProgress)
	cpu0 := br.cpu()
	start := time.Now()
	if err := chromedp.Do(tab, chromedp.Evaluate[chromedp.Void](fmt.Sprintf(`(() => {
		const a = document.createElement('a');
		a.href = %q;
		a.download = '';
		document.body.append(a);
		a.click();
	})()`, url))); err != nil {
		return sample{}, fmt.Errorf("clicking a link to %s: %w", url, err)
	}
	for ev, err := range progress {
		if err != nil {
			return sample{}, fmt.Errorf("downloading %s: %w", url, err)
		}
		switch ev.State {
		case cdpbrowser.DownloadProgressStateInProgress:
			continue
		case cdpbrowser.DownloadProgressStateCompleted:
		default:
			return sample{}, fmt.Errorf("downloading %s: %s after %d bytes", url, ev.State, int64(ev.ReceivedBytes))
		}
		took := time.Since(start)
		cpu := br.cpu() - cpu0
		path := filepath.Join(dir, ev.GUID)
		st, err := os.Stat(path)
		if err != nil {
			return sample{}, fmt.Errorf("the download of %s: %w", url, err)
		}
		if err := os.Remove(path); err != nil {
			return sample{}, err
		}
		if st.Size() != size {
			return sample{}, fmt.Errorf("the download of %s has %d bytes, want %d", url, st.Size(), size)
		}
		return sample{seconds: took.Seconds(), rcv: usage{cpu: cpu}}, nil
	}
	return sample{}, fmt.Errorf("downloading %s: %w", url, context.Cause(tab))
}
