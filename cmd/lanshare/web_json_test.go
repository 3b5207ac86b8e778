package main

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"
)

// TestServeJSONWebEvents: `serve --json` reports the drop page (event
// web, with its address and PIN), a file uploaded from it (file-saved and
// transfer-done, via web), and each download of a share link (event
// download: who, what, how many bytes, the share's id), also one cut
// short (with the reason). The browser is played by a Go client sending
// what the page's script sends.
func TestServeJSONWebEvents(t *testing.T) {
	tmp := t.TempDir()
	config := filepath.Join(tmp, "config")
	srv := startLanshare(t, exec.CommandContext, tmp, nil, "serve", "--json", "--dir", filepath.Join(tmp, "share"), "--config", config,
		"--name", "bob", "--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0", "--web-pin", "482193")
	type event struct {
		Event, Addr, Path, Remote, Reason, Via, PIN, Share string
		SavedAs                                            string `json:"saved_as"`
		Size                                               *uint64
		Bytes                                              uint64
		Files                                              int
	}
	events := func() []event {
		var evs []event
		for _, l := range srv.out.Lines() {
			var ev event
			if err := json.Unmarshal([]byte(l), &ev); err != nil {
				t.Fatalf("serve --json printed a line that is not JSON: %q", l)
			}
			evs = append(evs, ev)
		}
		return evs
	}
	find := func(what string, match func(event) bool) event {
		t.Helper()
		var got event
		srv.out.waitFor(t, what, func([]string) bool {
			i := slices.IndexFunc(events(), match)
			if i >= 0 {
				got = events()[i]
			}
			return i >= 0
		})
		return got
	}
	web := find("the web event", func(e event) bool { return e.Event == "web" })
	if !strings.HasPrefix(web.Addr, "https://127.0.0.1:") || web.PIN != "482193" {
		t.Fatalf("web event %+v", web)
	}

	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar, Timeout: failAfter, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	t.Cleanup(hc.CloseIdleConnections)
	base := strings.TrimSuffix(web.Addr, "/")
	post := func(path, body string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest("POST", base+path, strings.NewReader(body))
		req.Header.Set("Origin", base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		resp, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		return resp
	}
	if resp := post("/web/api/login", `{"pin":"482193"}`); resp.StatusCode != http.StatusNoContent {
		t.Fatalf("login: %s", resp.Status)
	}
	content := "from a browser\n"
	resp := post("/web/api/offer", fmt.Sprintf(`{"info":{"alias":"Browser","version":"2.2","deviceType":"web","protocol":"https"},"files":{"0":{"id":"0","fileName":"note.txt","size":%d,"fileType":"text/plain"}}}`, len(content)))
	var reply struct {
		SessionID string            `json:"sessionId"`
		Files     map[string]string `json:"files"`
	}
	if err := json.NewDecoder(resp.Body).Decode(&reply); err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("offer: %s %v", resp.Status, err)
	}
	resp.Body.Close()
	q := url.Values{"sessionId": {reply.SessionID}, "fileId": {"0"}, "token": {reply.Files["0"]}}
	if resp := post("/web/api/upload?"+q.Encode(), content); resp.StatusCode != http.StatusOK {
		t.Fatalf("upload: %s", resp.Status)
	}
	saved := find("file-saved", func(e event) bool { return e.Event == "file-saved" })
	if saved.Path != "note.txt" || saved.Via != "web" || saved.Size == nil || *saved.Size != uint64(len(content)) {
		t.Errorf("file-saved %+v", saved)
	}
	if done := find("transfer-done", func(e event) bool { return e.Event == "transfer-done" }); done.Via != "web" || done.Files != 1 {
		t.Errorf("transfer-done %+v", done)
	}

	big := bytes.Repeat([]byte("0123456789abcdef"), 1<<16) // 1 MiB
	writeFile(t, filepath.Join(tmp, "src", "big.bin"), big, 0o644, time.Now())
	// More than the sockets of both ends hold, so that a download cut
	// early fails on the server's side.
	huge := bytes.Repeat(big, 64)
	writeFile(t, filepath.Join(tmp, "src", "huge.bin"), huge, 0o644, time.Now())
	sh := startLanshare(t, exec.CommandContext, tmp, nil, "share", "--config", config, filepath.Join(tmp, "src", "big.bin"), filepath.Join(tmp, "src", "huge.bin"))
	id, link := waitShare(t, sh)
	get, err := hc.Get(link + "0")
	if err != nil {
		t.Fatal(err)
	}
	n, _ := io.Copy(io.Discard, get.Body)
	get.Body.Close()
	if n != int64(len(big)) {
		t.Fatalf("download: %d bytes", n)
	}
	dl := find("a download event", func(e event) bool { return e.Event == "download" })
	if dl.Path != "big.bin" || dl.Bytes != uint64(len(big)) || dl.Remote != "127.0.0.1" || dl.Share != id || dl.Reason != "" {
		t.Errorf("download event %+v", dl)
	}
	// A download cut after its first bytes: reported with what was sent.
	get, err = hc.Get(link + "1")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := io.ReadFull(get.Body, make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	hc.CloseIdleConnections()
	get.Body.Close() // before the end: the connection is closed
	cut := find("a cut download's event", func(e event) bool { return e.Event == "download" && e.Reason != "" })
	if cut.Path != "huge.bin" || cut.Bytes >= uint64(len(huge)) || cut.Share != id {
		t.Errorf("cut download event %+v", cut)
	}
	srv.stopClean(t)
}
