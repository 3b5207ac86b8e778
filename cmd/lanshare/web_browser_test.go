package main

// The drop page in a real browser: Debian's chromium, headless, driven
// with chromedp through a pipe (no debugging port). Like everything in
// this package it runs inside the private network namespace TestMain
// made (netlab.MainIsolated), and so does the agent: the browser never
// sees the machine's network.

import (
	"archive/zip"
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/chromedp"

	"github.com/lanshare/lanshare/internal/netlab"
)

// chromiumPath finds Debian's chromium (or another Chromium build), or
// skips t saying how to install it (fails it under
// LANSHARE_TEST_NEED_CHROMIUM=1, which .ci/run sets).
func chromiumPath(t testing.TB) string {
	t.Helper()
	for _, name := range []string{"chromium", "chromium-browser", "google-chrome", "google-chrome-stable"} {
		if p, err := exec.LookPath(name); err == nil {
			return p
		}
	}
	why := "no chromium on PATH: the real-browser tests need it (apt-get install chromium)"
	if os.Getenv("LANSHARE_TEST_NEED_CHROMIUM") != "" {
		t.Fatal(why) // CI installed it: a skip would hide that it is gone
	}
	t.Skip(why)
	return ""
}

// newBrowser starts a headless chromium that takes the agent's
// self-signed certificate, and returns a tab's context.
func newBrowser(t testing.TB) context.Context {
	t.Helper()
	netlab.SkipUnlessIsolated(t) // never a browser in the machine's own namespace
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(chromiumPath(t)),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("ignore-certificate-errors", true),
		chromedp.NoSandbox, // tests run as root, where chromium's sandbox refuses to start
		chromedp.WindowSize(1280, 800),
	)
	alloc, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	t.Cleanup(cancelAlloc)
	ctx, cancel := chromedp.NewContext(alloc)
	t.Cleanup(cancel)
	ctx, cancelTime := context.WithTimeout(ctx, 3*time.Minute)
	t.Cleanup(cancelTime)
	return ctx
}

// waitDropPage waits for serve's "drop page URL  PIN N" line and returns
// the URL and the PIN.
func waitDropPage(t testing.TB, s *server) (string, string) {
	t.Helper()
	var line string
	s.out.waitFor(t, `"drop page" line`, func(ls []string) bool {
		i := slices.IndexFunc(ls, func(l string) bool { return strings.Contains(l, " drop page https://") })
		if i >= 0 {
			line = ls[i]
		}
		return i >= 0
	})
	_, rest, _ := strings.Cut(line, " drop page ")
	url, pin, ok := strings.Cut(rest, "  PIN ")
	if !ok {
		t.Fatalf("drop page line %q has no PIN", line)
	}
	return url, pin
}

// screenshot saves the tab's viewport as name.png under
// $LANSHARE_ARTEFACTS, when it is set.
func screenshot(t testing.TB, ctx context.Context, name string) {
	t.Helper()
	dir := os.Getenv("LANSHARE_ARTEFACTS")
	if dir == "" {
		return
	}
	png, err := chromedp.Run(ctx, chromedp.CaptureScreenshot())
	if err != nil {
		t.Fatalf("screenshot %s: %v", name, err)
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		t.Fatal(err)
	}
}

// waitText waits until the element with id holds text containing want,
// and returns the text.
func waitText(t testing.TB, ctx context.Context, id, want string) string {
	t.Helper()
	js := fmt.Sprintf(`(() => { const e = document.getElementById(%q); return e && e.textContent.includes(%q) ? e.textContent : ""; })()`, id, want)
	got, err := chromedp.Run(ctx, chromedp.Poll[string](js, chromedp.WithPollingTimeout(failAfter*6)))
	if err != nil {
		now, _ := chromedp.Run(ctx, chromedp.Evaluate[string](fmt.Sprintf(`document.getElementById(%q).textContent`, id)))
		t.Fatalf("#%s never said %q; it says %q: %v", id, want, now, err)
	}
	return got
}

// TestDropPageInChromium: a browser opens the drop page, a wrong PIN is
// refused, the right one lets it upload two files (one too big for the
// page to hash) and a folder, which land byte-identical with the folder
// kept; the serve log shows them come via the web; five more wrong PINs
// lock the address out (429). Screenshots at a phone's and a desktop's
// size go to $LANSHARE_ARTEFACTS.
func TestDropPageInChromium(t *testing.T) {
	ctx := newBrowser(t)
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startLanshare(t, exec.CommandContext, tmp, nil, "serve", "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0", "--web-pin", "482193")
	url, pin := waitDropPage(t, srv)
	if pin != "482193" {
		t.Fatalf("serve shows PIN %q, want the --web-pin", pin)
	}

	src := filepath.Join(tmp, "src")
	want := map[string]entry{}
	for p, size := range map[string]int{"report.pdf": 20<<20 + 7, "notes.txt": 3000, "album/a.jpg": 70_000, "album/2024/b.txt": 11} {
		want[p] = entry{data: string(randomFile(t, filepath.Join(src, p), size))}
	}
	want["album"], want["album/2024"] = entry{dir: true}, entry{dir: true}

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("pin")),
	); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	screenshot(t, ctx, "drop-phone-pin")
	wantControls(t, ctx, [2]string{"textbox", "PIN shown by lanshare serve"}, [2]string{"button", "Unlock"})

	// A wrong PIN, then the right one.
	if err := chromedp.Do(ctx, chromedp.SendKeys(chromedp.ID("pin"), "000000\n")); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "pin-status", "wrong PIN")
	if err := chromedp.Do(ctx,
		chromedp.Evaluate[chromedp.Void](`document.getElementById("pin").value = ""`),
		chromedp.SendKeys(chromedp.ID("pin"), pin+"\n"),
		chromedp.WaitVisible(chromedp.ID("upload")),
	); err != nil {
		t.Fatalf("unlocking with the right PIN: %v", err)
	}
	// By keyboard: the focus lands on the upload section's title, and Tab
	// reaches the file pickers, drawn with a focus ring.
	if got := activeID(t, ctx); got != "upload-title" {
		t.Errorf("after the PIN the focus is on #%s, want #upload-title", got)
	}
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if got := activeID(t, ctx); got != "files" {
		t.Errorf("Tab after the PIN reaches #%s, want #files", got)
	}
	if ring, err := chromedp.Run(ctx, chromedp.Evaluate[string](`getComputedStyle(document.querySelector('label[for=files]')).outlineStyle`)); err != nil || ring != "solid" {
		t.Errorf("the focused file picker's label has outline %q (%v), want a solid ring", ring, err)
	}
	screenshot(t, ctx, "drop-phone-keyboard")
	if err := chromedp.Do(ctx, chromedp.KeyEvent("\t")); err != nil {
		t.Fatal(err)
	}
	if got := activeID(t, ctx); got != "folder" {
		t.Errorf("a second Tab reaches #%s, want #folder", got)
	}
	wantControls(t, ctx, [2]string{"button", "Choose files"}, [2]string{"button", "Choose a folder"})

	// Two files, then a folder.
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("files"),
		[]string{filepath.Join(src, "report.pdf"), filepath.Join(src, "notes.txt")})); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "status", "Sent 2 of 2 files.")
	if err := chromedp.Do(ctx, chromedp.SetUploadFiles(chromedp.ID("folder"), []string{filepath.Join(src, "album")})); err != nil {
		t.Fatal(err)
	}
	// The status counts every batch, as the list shows them all.
	waitText(t, ctx, "status", "Sent 4 of 4 files.")
	waitTree(t, share, want)

	// Drag and drop, as from a file manager: a file and a folder dropped
	// on the page's drop zone.
	for p, size := range map[string]int{"dropped.txt": 5000, "dragged/x.bin": 200_000, "dragged/deep/y.txt": 7} {
		want[p] = entry{data: string(randomFile(t, filepath.Join(src, p), size))}
	}
	want["dragged"], want["dragged/deep"] = entry{dir: true}, entry{dir: true}
	dropFiles(t, ctx, "drop", filepath.Join(src, "dropped.txt"), filepath.Join(src, "dragged"))
	waitText(t, ctx, "status", "Sent 7 of 7 files.")
	waitTree(t, share, want)
	srv.out.waitFor(t, "a transfer line via web", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, "via web done") })
	})
	screenshot(t, ctx, "drop-phone-sent")
	// Each row's progress bar is named after its file.
	wantControls(t, ctx, [2]string{"progressbar", "report.pdf"}, [2]string{"progressbar", "album/2024/b.txt"})

	// The desktop size, in dark mode.
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "drop-desktop-dark")
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "light"}}}); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "drop-desktop-light")

	// Guessing from the page's own origin: five wrong PINs, then 429.
	codes, err := chromedp.Run(ctx, chromedp.Evaluate[[]int](`(async () => {
		const codes = [];
		for (let i = 0; i < 6; i++) {
			const r = await fetch('/web/api/login', {method: 'POST', headers: {'Content-Type': 'application/json'}, body: JSON.stringify({pin: '11111' + i})});
			codes.push(r.status);
		}
		return codes;
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if !slices.Equal(codes, []int{401, 401, 401, 401, 401, 429}) {
		t.Errorf("six wrong PINs got %v, want five 401 and a 429", codes)
	}
	waitTree(t, share, want) // nothing else landed
}

// TestDropPageOverPlainHTTPInChromium: with --web-insecure-http the page
// at serve's plain-HTTP address says it is not private, takes the PIN and
// a file, which lands byte-identical.
func TestDropPageOverPlainHTTPInChromium(t *testing.T) {
	ctx := newBrowser(t)
	tmp := t.TempDir()
	share := filepath.Join(tmp, "share")
	srv := startLanshare(t, exec.CommandContext, tmp, nil, "serve", "--dir", share, "--config", filepath.Join(tmp, "config"),
		"--name", "bob", "--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0", "--web-pin", "482193", "--web-insecure-http", "0")
	var url string
	srv.out.waitFor(t, "the plain-HTTP warning", func(ls []string) bool {
		for _, l := range ls {
			if _, rest, ok := strings.Cut(l, "served over plain HTTP at "); ok {
				url, _, _ = strings.Cut(rest, " ")
				return true
			}
		}
		return false
	})
	want := map[string]entry{"plain.txt": {data: string(randomFile(t, filepath.Join(tmp, "src", "plain.txt"), 40_000))}}
	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(url),
		chromedp.WaitVisible(chromedp.ID("pin")),
	); err != nil {
		t.Fatalf("opening %s: %v", url, err)
	}
	screenshot(t, ctx, "drop-phone-plain-http")
	if text, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.querySelector('[role=alert]').textContent`)); err != nil || !strings.Contains(text, "Not private") {
		t.Errorf("the plain-HTTP page's warning: %q, %v", text, err)
	}
	if err := chromedp.Do(ctx,
		chromedp.SendKeys(chromedp.ID("pin"), "482193\n"),
		chromedp.WaitVisible(chromedp.ID("upload")),
		chromedp.SetUploadFiles(chromedp.ID("files"), []string{filepath.Join(tmp, "src", "plain.txt")}),
	); err != nil {
		t.Fatal(err)
	}
	waitText(t, ctx, "status", "Sent 1 of 1 file.")
	waitTree(t, share, want)
}

// TestShareLinkInChromium: `lanshare share FILE FOLDER` prints a link;
// a browser opens its page, downloads the file whole and in part (a
// Range, as a resume asks) and the folder as a zip, all byte-identical;
// --list shows the share; once `share` is interrupted (Ctrl-C) the link
// is gone; a link with a PIN shows only its form until the PIN is typed;
// and a share whose --for has passed is gone by itself.
func TestShareLinkInChromium(t *testing.T) {
	ctx := newBrowser(t)
	tmp := t.TempDir()
	config := filepath.Join(tmp, "config")
	srv := startLanshare(t, exec.CommandContext, tmp, nil, "serve", "--dir", filepath.Join(tmp, "share"), "--config", config,
		"--name", "bob", "--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0")
	waitDropPage(t, srv)

	src := filepath.Join(tmp, "src")
	report := randomFile(t, filepath.Join(src, "report.pdf"), 3<<20+1)
	album := map[string][]byte{"album/a.jpg": randomFile(t, filepath.Join(src, "album/a.jpg"), 50_000), "album/2024/b.txt": randomFile(t, filepath.Join(src, "album/2024/b.txt"), 11)}

	sh := startLanshare(t, exec.CommandContext, tmp, nil, "share", "--config", config, "--for", "1h", filepath.Join(src, "report.pdf"), filepath.Join(src, "album"))
	id, link := waitShare(t, sh)

	if err := chromedp.Do(ctx,
		chromedp.EmulateViewport(390, 844, chromedp.EmulateMobile, chromedp.EmulateScale(2)),
		chromedp.Navigate(link),
		chromedp.WaitVisible(chromedp.CSS("a[href='1']")),
	); err != nil {
		t.Fatalf("opening %s: %v", link, err)
	}
	screenshot(t, ctx, "share-phone")
	got, err := chromedp.Run(ctx, chromedp.Evaluate[map[string]string](`(async () => {
		const hex = (b) => Array.from(new Uint8Array(b), (x) => x.toString(16).padStart(2, '0')).join('');
		const file = await (await fetch('0')).arrayBuffer();
		const part = await fetch('0', {headers: {Range: 'bytes=1000-1999'}});
		const zip = new Uint8Array(await (await fetch('1')).arrayBuffer());
		let bin = '';
		for (const x of zip) bin += String.fromCharCode(x);
		return {
			file: hex(await crypto.subtle.digest('SHA-256', file)),
			partStatus: String(part.status),
			part: hex(await crypto.subtle.digest('SHA-256', await part.arrayBuffer())),
			zip: btoa(bin),
		};
	})()`, chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	if got["file"] != sha256hex(report) {
		t.Error("the downloaded file differs from report.pdf")
	}
	if got["partStatus"] != "206" || got["part"] != sha256hex(report[1000:2000]) {
		t.Errorf("range: status %s, bytes match %v", got["partStatus"], got["part"] == sha256hex(report[1000:2000]))
	}
	zipBytes, err := base64.StdEncoding.DecodeString(got["zip"])
	if err != nil {
		t.Fatal(err)
	}
	zr, err := zip.NewReader(bytes.NewReader(zipBytes), int64(len(zipBytes)))
	if err != nil {
		t.Fatalf("the folder's zip: %v", err)
	}
	files := 0
	for _, f := range zr.File {
		if strings.HasSuffix(f.Name, "/") {
			continue
		}
		files++
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		if want, ok := album[f.Name]; !ok || !bytes.Equal(data, want) {
			t.Errorf("zip entry %s: expected %v, bytes match %v", f.Name, ok, bytes.Equal(data, want))
		}
	}
	if files != len(album) {
		t.Errorf("the zip holds %d files, want %d", files, len(album))
	}

	srv.out.waitFor(t, "serve's line for the download", func(ls []string) bool {
		return slices.ContainsFunc(ls, func(l string) bool { return strings.Contains(l, "download of album.zip by 127.0.0.1: ") })
	})
	if r := runLanshareOn(t, exec.CommandContext, tmp, nil, "share", "--config", config, "--list"); r.code != 0 || !strings.Contains(r.stdout, id) {
		t.Errorf("share --list: exit %d\n%s%s", r.code, r.stdout, r.stderr)
	}
	if err := sh.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	sh.out.waitFor(t, "share's \"ended\" line", func(ls []string) bool {
		return slices.Contains(ls, "share "+id+" ended")
	})
	if code := fetchStatus(t, ctx, link+"0"); code != 404 {
		t.Errorf("after Ctrl-C: %d, want 404", code)
	}

	// A link with a PIN: its page shows only the form; a wrong PIN is
	// refused, the right one, typed, opens the list and the file.
	pinned := startLanshare(t, exec.CommandContext, tmp, nil, "share", "--config", config, "--pin-code", "7391", filepath.Join(src, "report.pdf"))
	_, plink := waitShare(t, pinned)
	if err := chromedp.Do(ctx, chromedp.Navigate(plink), chromedp.WaitVisible(chromedp.ID("pin"))); err != nil {
		t.Fatalf("opening %s: %v", plink, err)
	}
	screenshot(t, ctx, "share-phone-pin")
	wantControls(t, ctx, [2]string{"textbox", "PIN of this link"}, [2]string{"button", "Open"})
	if n, err := chromedp.Run(ctx, chromedp.Evaluate[int](`document.querySelectorAll('a[href="0"]').length`)); err != nil || n != 0 {
		t.Errorf("the PIN form shows %d links to the file (%v)", n, err)
	}
	if code := fetchStatus(t, ctx, plink+"0"); code != 401 {
		t.Errorf("the file before the PIN: %d, want 401", code)
	}
	// Each PIN is a form's POST: the browser navigates to its answer.
	if resp, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.ID("pin"), "0000\n")); err != nil || resp.Status != 401 {
		t.Fatalf("a wrong PIN: %v, %v", resp, err)
	}
	waitText(t, ctx, "pin-status", "wrong PIN (4 more tries")
	if resp, err := chromedp.RunResponse(ctx, chromedp.SendKeys(chromedp.ID("pin"), "7391\n")); err != nil || resp.Status != 200 {
		t.Fatalf("the right PIN: %v, %v", resp, err)
	}
	if err := chromedp.Do(ctx, chromedp.WaitVisible(chromedp.CSS(`a[href="0"]`))); err != nil {
		t.Fatalf("opening the link with its PIN: %v", err)
	}
	sum, err := chromedp.Run(ctx, chromedp.Evaluate[string](`(async () => {
		const b = await (await fetch('0')).arrayBuffer();
		return Array.from(new Uint8Array(await crypto.subtle.digest('SHA-256', b)), (x) => x.toString(16).padStart(2, '0')).join('');
	})()`, chromedp.EvalAwaitPromise))
	if err != nil || sum != sha256hex(report) {
		t.Errorf("the file through the PIN's link differs from report.pdf (%v)", err)
	}
	if _, err := chromedp.Call(ctx, emulation.SetEmulatedMedia, emulation.SetEmulatedMediaParams{
		Features: []*emulation.MediaFeature{{Name: "prefers-color-scheme", Value: "dark"}}}); err != nil {
		t.Fatal(err)
	}
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(1280, 800)); err != nil {
		t.Fatal(err)
	}
	screenshot(t, ctx, "share-desktop-dark")

	short := startLanshare(t, exec.CommandContext, tmp, nil, "share", "--config", config, "--for", "1s", filepath.Join(src, "report.pdf"))
	id, link = waitShare(t, short)
	short.out.waitFor(t, "the short share's \"ended\" line", func(ls []string) bool {
		return slices.Contains(ls, "share "+id+" ended")
	})
	if code := fetchStatus(t, ctx, link+"0"); code != 404 {
		t.Errorf("after --for passed: %d, want 404", code)
	}
}

// activeID is the id of the element that has the focus.
func activeID(t testing.TB, ctx context.Context) string {
	t.Helper()
	id, err := chromedp.Run(ctx, chromedp.Evaluate[string](`document.activeElement ? document.activeElement.id : ""`))
	if err != nil {
		t.Fatal(err)
	}
	return id
}

// wantControls checks the page's accessibility tree, as a screen reader
// reads it: every control (button, text box, link, progress bar) has a
// name, and want (role, name) are among them.
func wantControls(t testing.TB, ctx context.Context, want ...[2]string) {
	t.Helper()
	tree, err := chromedp.Call(ctx, accessibility.GetFullAXTree, accessibility.GetFullAXTreeParams{})
	if err != nil {
		t.Fatal(err)
	}
	str := func(v *accessibility.Value) string {
		var s string
		if v != nil {
			_ = json.Unmarshal(v.Value, &s)
		}
		return s
	}
	var got [][2]string
	for _, n := range tree.Nodes {
		role := str(n.Role)
		if n.Ignored || !slices.Contains([]string{"button", "textbox", "link", "progressbar", "checkbox", "combobox"}, role) {
			continue
		}
		name := strings.TrimSpace(str(n.Name))
		if name == "" {
			t.Errorf("a %s without a name in the accessibility tree", role)
		}
		got = append(got, [2]string{role, name})
	}
	for _, w := range want {
		if !slices.Contains(got, w) {
			t.Errorf("no %s named %q in the accessibility tree; it has %q", w[0], w[1], got)
		}
	}
}

// dropFiles drags paths (files and folders) over the element with id and
// drops them there, as a file manager does: chromium's own drag events
// (Input.dispatchDragEvent), carrying the files, at the element's centre.
func dropFiles(t testing.TB, ctx context.Context, id string, paths ...string) {
	t.Helper()
	at, err := chromedp.Run(ctx, chromedp.Evaluate[[]float64](fmt.Sprintf(`(() => {
		const r = document.getElementById(%q).getBoundingClientRect();
		return [r.left + r.width / 2, r.top + r.height / 2];
	})()`, id)))
	if err != nil {
		t.Fatal(err)
	}
	data := &input.DragData{Items: []*input.DragDataItem{}, Files: paths, DragOperationsMask: 1} // 1: copy
	for _, typ := range []input.DispatchDragEventType{input.DispatchDragEventTypeDragEnter, input.DispatchDragEventTypeDragOver, input.DispatchDragEventTypeDrop} {
		if _, err := chromedp.Call(ctx, input.DispatchDragEvent, input.DispatchDragEventParams{Type: typ, X: at[0], Y: at[1], Data: data}); err != nil {
			t.Fatalf("%s on #%s: %v", typ, id, err)
		}
	}
}

// waitShare waits for `share`'s "share ID LINK  until ..." line.
func waitShare(t testing.TB, s *server) (id, link string) {
	t.Helper()
	s.out.waitFor(t, `"share" line`, func(ls []string) bool {
		for _, l := range ls {
			if f := strings.Fields(l); len(f) >= 3 && f[0] == "share" && strings.HasPrefix(f[2], "https://") {
				id, link = f[1], f[2]
				return true
			}
		}
		return false
	})
	return id, link
}

// fetchStatus fetches url from the page and returns the status.
func fetchStatus(t testing.TB, ctx context.Context, url string) int {
	t.Helper()
	code, err := chromedp.Run(ctx, chromedp.Evaluate[int](fmt.Sprintf(`fetch(%q).then((r) => r.status)`, url), chromedp.EvalAwaitPromise))
	if err != nil {
		t.Fatal(err)
	}
	return code
}

func sha256hex(b []byte) string {
	h := sha256.Sum256(b)
	return hex.EncodeToString(h[:])
}
