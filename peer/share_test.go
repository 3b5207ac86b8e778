package peer

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// TestShareDownload: a shared file downloads byte-identical, and in
// part with a Range (a browser's resume); a shared folder downloads as a
// zip of exactly its files and folders, a symbolic link that leads out of
// it left out; the share's page lists both with sizes; after Unshare,
// and for a share whose time is up, the link is gone.
func TestShareDownload(t *testing.T) {
	downloads := make(chan Download, 16)
	ta := startWebAgent(t, "482193", func(c *Config) { c.OnDownload = func(d Download) { downloads <- d } })
	c := newWebClient(t, ta, "")
	tmp := t.TempDir()
	report := randomBytes(t, 1<<20+5)
	if err := os.WriteFile(filepath.Join(tmp, "report.pdf"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	album := filepath.Join(tmp, "album")
	files := map[string]string{"a.jpg": randomBytes(t, 70_000), "2024/b.txt": "bee", "empty/.keep": ""}
	for p, data := range files {
		os.MkdirAll(filepath.Join(album, filepath.Dir(p)), 0o755)
		if err := os.WriteFile(filepath.Join(album, p), []byte(data), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmp, "secret"), []byte("outside"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := os.Symlink(filepath.Join(tmp, "secret"), filepath.Join(album, "link")); err != nil {
		t.Fatal(err)
	}

	l, err := ta.Share([]string{filepath.Join(tmp, "report.pdf"), album}, time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	code, _, page := c.do("GET", l.Path, nil)
	if code != http.StatusOK || !strings.Contains(page, ">report.pdf</a>") || !strings.Contains(page, ">album.zip</a>") || !strings.Contains(page, "1.0 MB") {
		t.Errorf("share page: %d\n%s", code, page)
	}
	if code, _, body := c.do("GET", l.Path+"0", nil); code != http.StatusOK || body != report {
		t.Errorf("file: %d, %d bytes, want %d", code, len(body), len(report))
	}
	select {
	case d := <-downloads:
		if d.Name != "report.pdf" || d.Bytes != int64(len(report)) || d.Err != nil || d.Share != l.ID || d.Remote == nil {
			t.Errorf("download reported as %+v", d)
		}
	case <-time.After(10 * time.Second):
		t.Error("the download was not reported")
	}
	c.headers["Range"] = "bytes=1000-1999"
	if code, h, body := c.do("GET", l.Path+"0", nil); code != http.StatusPartialContent || body != report[1000:2000] || h.Get("Content-Range") != "bytes 1000-1999/1048581" {
		t.Errorf("range: %d %q, %d bytes", code, h.Get("Content-Range"), len(body))
	}
	delete(c.headers, "Range")

	code, h, body := c.do("GET", l.Path+"1", nil)
	if code != http.StatusOK || h.Get("Content-Type") != "application/zip" {
		t.Fatalf("folder: %d %q", code, h.Get("Content-Type"))
	}
	zr, err := zip.NewReader(bytes.NewReader([]byte(body)), int64(len(body)))
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]string{}
	for _, f := range zr.File {
		rc, err := f.Open()
		if err != nil {
			t.Fatal(err)
		}
		data, _ := io.ReadAll(rc)
		rc.Close()
		got[f.Name] = string(data)
	}
	want := map[string]string{"album/": "", "album/2024/": "", "album/empty/": "", "album/a.jpg": files["a.jpg"], "album/2024/b.txt": "bee", "album/empty/.keep": ""}
	if len(got) != len(want) {
		t.Errorf("zip holds %d entries, want %d: %q", len(got), len(want), keys(got))
	}
	for name, data := range want {
		if g, ok := got[name]; !ok || g != data {
			t.Errorf("zip entry %s: present %v, %d bytes, want %d", name, ok, len(g), len(data))
		}
	}

	for _, p := range []string{l.Path + "2", l.Path + "-1", l.Path + "01", l.Path + "0/", "/s/" + randomToken() + "/0", l.Path + "..%2f..%2fsecret", l.Path + "%2e%2e"} {
		if code, _, body := c.do("GET", p, nil); code == http.StatusOK || strings.Contains(body, "outside") {
			t.Errorf("GET %s: %d", p, code)
		}
	}
	if !ta.Unshare(l.ID) {
		t.Error("Unshare found no share")
	}
	if code, _, _ := c.do("GET", l.Path+"0", nil); code != http.StatusNotFound {
		t.Errorf("after Unshare: %d, want 404", code)
	}

	old, err := ta.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now(), "")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{old.Path, old.Path + "0"} {
		if code, _, _ := c.do("GET", p, nil); code != http.StatusNotFound {
			t.Errorf("expired share %s: %d, want 404", p, code)
		}
	}
	if n := len(ta.Shares()); n != 0 {
		t.Errorf("%d shares listed after they ended", n)
	}

	off := startLocalSendAgent(t, nil)
	if _, err := off.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now().Add(time.Hour), ""); !errors.Is(err, ErrNoWeb) {
		t.Errorf("Share without the drop page: %v, want ErrNoWeb", err)
	}
}

func keys(m map[string]string) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	return out
}

// TestSharePIN: a share with a PIN shows only its PIN form (no names,
// no bytes) until the PIN is given; wrong PINs are counted per address
// and share and lock the address out (429), without touching the drop
// page's tries or another share's; the right PIN, from another address,
// opens the share's page and files through a cookie scoped to the
// share's path, which opens neither another share with a PIN nor the
// drop page; a forged cookie, an oversized login, a login to no share and
// one from another site are refused.
func TestSharePIN(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	tmp := t.TempDir()
	report := randomBytes(t, 70_000)
	if err := os.WriteFile(filepath.Join(tmp, "report.pdf"), []byte(report), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ta.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now().Add(time.Hour), "7391")
	if err != nil {
		t.Fatal(err)
	}
	if !l.PIN {
		t.Error("the share does not say it has a PIN")
	}
	other, err := ta.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now().Add(time.Hour), "5555")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := ta.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now().Add(time.Hour), "123"); err == nil {
		t.Error("a 3-character PIN was taken")
	}
	sharePIN := func(c *webClient, id, pin string) (int, string) {
		t.Helper()
		code, _, body := c.do("POST", "/s/"+id+"/login", strings.NewReader(url.Values{"pin": {pin}}.Encode()))
		return code, body
	}

	c := newWebClient(t, ta, "127.0.0.1")
	c.headers["Content-Type"] = "application/x-www-form-urlencoded"
	code, _, page := c.do("GET", l.Path, nil)
	if code != http.StatusUnauthorized || !strings.Contains(page, `name="pin"`) || strings.Contains(page, "report.pdf") {
		t.Errorf("the page before the PIN: %d\n%s", code, page)
	}
	if code, _, body := c.do("GET", l.Path+"0", nil); code != http.StatusUnauthorized || strings.Contains(body, report[:100]) {
		t.Errorf("the file before the PIN: %d", code)
	}
	for i := 1; i < webPINTries; i++ {
		if code, body := sharePIN(c, l.ID, "0000"); code != http.StatusUnauthorized || !strings.Contains(body, "wrong PIN") {
			t.Fatalf("wrong PIN %d: %d\n%s", i, code, body)
		}
	}
	if code, body := sharePIN(c, l.ID, "0000"); code != http.StatusUnauthorized || !strings.Contains(body, "wrong PIN") {
		t.Fatalf("wrong PIN %d: %d\n%s", webPINTries, code, body)
	}
	if code, body := sharePIN(c, l.ID, "7391"); code != http.StatusTooManyRequests || !strings.Contains(body, "too many wrong PINs") {
		t.Errorf("the right PIN while locked out: %d, want 429\n%s", code, body)
	}
	// Each gate counts its own tries.
	if code, _, body := c.login("482193"); code != http.StatusNoContent {
		t.Errorf("the drop page's PIN after a share's lock-out: %d %s", code, body)
	}
	if code, _, _ := c.do("GET", l.Path+"0", nil); code != http.StatusUnauthorized {
		t.Errorf("the drop page's session opened the share: %d", code)
	}

	d := newWebClient(t, ta, "127.0.0.2")
	d.headers["Content-Type"] = "application/x-www-form-urlencoded"
	if code, page := sharePIN(d, l.ID, "7391"); code != http.StatusOK || !strings.Contains(page, ">report.pdf</a>") {
		t.Fatalf("the right PIN (after its redirect): %d\n%s", code, page)
	}
	base, _ := url.Parse(d.base + l.Path)
	var ck *http.Cookie
	for _, k := range d.hc.Jar.Cookies(base) {
		if strings.HasPrefix(k.Name, "lanshare_share_") {
			ck = k
		}
	}
	if ck == nil {
		t.Fatal("no share cookie after the right PIN")
	}
	if code, _, body := d.do("GET", l.Path+"0", nil); code != http.StatusOK || body != report {
		t.Errorf("the file with the PIN's cookie: %d, %d bytes", code, len(body))
	}
	if code, _, _ := d.do("GET", other.Path+"0", nil); code != http.StatusUnauthorized {
		t.Errorf("one share's cookie opened another: %d", code)
	}
	if code, _, _ := d.offer([]webFile{{name: "x", content: "x"}}); code != http.StatusUnauthorized {
		t.Errorf("a share's cookie opened the drop page: %d", code)
	}
	// Sent by hand to another share's path: still refused.
	e := newWebClient(t, ta, "127.0.0.3")
	e.headers["Cookie"] = ck.Name + "=" + ck.Value
	if code, _, _ := e.do("GET", other.Path+"0", nil); code != http.StatusUnauthorized {
		t.Errorf("a share's token sent to another share: %d", code)
	}
	e.headers["Cookie"] = ck.Name + "=" + randomToken()
	if code, _, _ := e.do("GET", l.Path+"0", nil); code != http.StatusUnauthorized {
		t.Errorf("a forged share token: %d", code)
	}
	delete(e.headers, "Cookie")
	// An oversized login body, and a login to no share.
	e.headers["Content-Type"] = "application/x-www-form-urlencoded"
	if code, _ := sharePIN(e, l.ID, strings.Repeat("1", 2*webMaxLogin)); code != http.StatusBadRequest {
		t.Errorf("an oversized share login: %d, want 400", code)
	}
	if code, _ := sharePIN(e, randomToken(), "7391"); code != http.StatusNotFound {
		t.Errorf("a login to no share: %d, want 404", code)
	}
	e.headers["Origin"], e.headers["Sec-Fetch-Site"] = "https://evil.example", "cross-site"
	if code, body := sharePIN(e, l.ID, "7391"); code != http.StatusForbidden {
		t.Errorf("a login from another site: %d, want 403\n%s", code, body)
	}
}

// TestShareRefusesLinksPutOnItsPath: whoever may write a folder on a
// shared path (another user of the machine, in a group folder) replaces,
// after the share, the file, a folder above it, or the shared folder with
// a symbolic link to the owner's private files of the same names. No
// download serves them: each answers that a link was put there, and the
// owner's log says so. A file rewritten in place of the shared one (an
// editor's save) is served as it is now, and a path that was a link when
// shared is served as its target.
func TestShareRefusesLinksPutOnItsPath(t *testing.T) {
	downloads := make(chan Download, 16)
	ta := startWebAgent(t, "482193", func(c *Config) { c.OnDownload = func(d Download) { downloads <- d } })
	c := newWebClient(t, ta, "")
	tmp := t.TempDir()
	write := func(p, data string) {
		t.Helper()
		must(t, os.MkdirAll(filepath.Dir(p), 0o755))
		must(t, os.WriteFile(p, []byte(data), 0o644))
	}
	group := filepath.Join(tmp, "group")        // where others may write
	private := filepath.Join(tmp, "home", "me") // the owner's own
	write(filepath.Join(group, "docs", "report.txt"), "the report")
	write(filepath.Join(group, "album", "a.txt"), "a photo")
	write(filepath.Join(group, "latest-target.txt"), "the target")
	must(t, os.Symlink(filepath.Join(group, "latest-target.txt"), filepath.Join(group, "latest.txt")))
	write(filepath.Join(private, "docs", "report.txt"), "PRIVATE report")
	write(filepath.Join(private, "report.txt"), "PRIVATE file")
	write(filepath.Join(private, "album", "a.txt"), "PRIVATE album")

	l, err := ta.Share([]string{filepath.Join(group, "docs", "report.txt"), filepath.Join(group, "album"), filepath.Join(group, "latest.txt")}, time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	get := func(n string) (int, string) {
		t.Helper()
		code, _, body := c.do("GET", l.Path+n, nil)
		return code, body
	}
	if code, body := get("2"); code != http.StatusOK || body != "the target" {
		t.Errorf("a link shared: %d %q, want its target", code, body)
	}
	if l.Items[2].Name != "latest.txt" {
		t.Errorf("a link shared is listed as %q, want its own name, latest.txt", l.Items[2].Name)
	}
	<-downloads

	// An editor's save: a new file renamed over the shared one.
	write(filepath.Join(group, "docs", "new"), "the report, edited")
	must(t, os.Rename(filepath.Join(group, "docs", "new"), filepath.Join(group, "docs", "report.txt")))
	if code, body := get("0"); code != http.StatusOK || body != "the report, edited" {
		t.Errorf("after an editor's save: %d %q", code, body)
	}
	<-downloads

	refused := func(what, n string) {
		t.Helper()
		code, body := get(n)
		if code == http.StatusOK || strings.Contains(body, "PRIVATE") || !strings.Contains(body, "replaced by a link") {
			t.Errorf("%s: %d %q, want a refusal that names the link", what, code, body)
		}
		select {
		case d := <-downloads:
			if !errors.Is(d.Err, errLinkedSinceShared) {
				t.Errorf("%s: download reported with error %v, want %v", what, d.Err, errLinkedSinceShared)
			}
		case <-time.After(10 * time.Second):
			t.Errorf("%s: the refused download was not reported", what)
		}
	}
	must(t, os.Rename(filepath.Join(group, "docs", "report.txt"), filepath.Join(group, "docs", "old")))
	must(t, os.Symlink(filepath.Join(private, "report.txt"), filepath.Join(group, "docs", "report.txt")))
	refused("the file swapped for a link", "0")

	must(t, os.Rename(filepath.Join(group, "docs"), filepath.Join(group, "docs-old")))
	must(t, os.Symlink(filepath.Join(private, "docs"), filepath.Join(group, "docs")))
	refused("a folder above it swapped for a link", "0")

	must(t, os.Rename(filepath.Join(group, "album"), filepath.Join(group, "album-old")))
	must(t, os.Symlink(filepath.Join(private, "album"), filepath.Join(group, "album")))
	refused("the shared folder swapped for a link", "1")
}
