package peer

import (
	"archive/zip"
	"bytes"
	"errors"
	"io"
	"net/http"
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

	l, err := ta.Share([]string{filepath.Join(tmp, "report.pdf"), album}, time.Now().Add(time.Hour))
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

	old, err := ta.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now())
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
	if _, err := off.Share([]string{filepath.Join(tmp, "report.pdf")}, time.Now().Add(time.Hour)); !errors.Is(err, ErrNoWeb) {
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
