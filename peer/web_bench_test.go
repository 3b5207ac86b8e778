package peer

import (
	"bytes"
	"crypto/tls"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto/localsend"
)

// BenchmarkWebUpload uploads a 1 GiB file through the drop page's
// endpoints (login, offer, one upload request whose body is the file, as
// the page sends a file too big to hash) from a Go client, next to the
// lanshare protocol (Sender into the same agent, TLS 1.3), interleaved:
// ratio-lanshare is the lanshare protocol's time over the drop page's,
// the page's rate as a share of the protocol's. It is the agent's side of
// scenario 10 of lanshare-bench, which uploads from chromium; run it
// with -cpuprofile to see where the agent spends its time.
//
//	go test -run '^$' -bench '^BenchmarkWebUpload$' -benchtime 3x -count 2 ./peer/
func BenchmarkWebUpload(b *testing.B) {
	const size = 1 << 30
	src := largeSource(b, size)
	items := collect(b, src)
	ta := startWebAgent(b, "482193", func(c *Config) { c.SpaceMargin = 0 })
	id, err := LoadIdentity(b.TempDir())
	must(b, err)
	sender := &Sender{Identity: id}
	hc := newBenchWebClient()
	b.Cleanup(hc.CloseIdleConnections)
	base := "https://" + ta.LocalSendAddr().String()
	compare(b, size, 1,
		way{name: "web", dst: ta.dir, run: func(string) error { return webUpload(hc, base, "482193", src) }},
		way{name: "lanshare", dst: ta.dir, run: func(string) error { return sendTLS(sender, ta.Agent, items) }})
}

// webUpload logs in to the drop page at base with pin, offers the file
// at path and uploads it, as the page's script does.
func webUpload(hc *http.Client, base, pin, path string) error {
	post := func(u string, body []byte, ctype string) (*http.Response, error) {
		req, err := http.NewRequest("POST", base+u, bytes.NewReader(body))
		if err != nil {
			return nil, err
		}
		req.Header.Set("Content-Type", ctype)
		req.Header.Set("Origin", base)
		req.Header.Set("Sec-Fetch-Site", "same-origin")
		return hc.Do(req)
	}
	login, _ := json.Marshal(map[string]string{"pin": pin})
	resp, err := post("/web/api/login", login, "application/json")
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		return fmt.Errorf("login: %s", resp.Status)
	}
	st, err := os.Stat(path)
	if err != nil {
		return err
	}
	offer, _ := json.Marshal(localsend.PrepareUpload{Info: localsend.Info{Alias: "Browser", Version: "2.2", DeviceType: "web", Protocol: "https"},
		Files: map[string]localsend.File{"0": {ID: "0", FileName: filepath.Base(path), Size: st.Size(), FileType: "application/octet-stream"}}})
	resp, err = post("/web/api/offer", offer, "application/json")
	if err != nil {
		return err
	}
	var reply localsend.PrepareUploadReply
	err = json.NewDecoder(resp.Body).Decode(&reply)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || err != nil {
		return fmt.Errorf("offer: %s %v", resp.Status, err)
	}
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	q := url.Values{"sessionId": {reply.SessionID}, "fileId": {"0"}, "token": {reply.Files["0"]}}
	req, err := http.NewRequest("POST", base+"/web/api/upload?"+q.Encode(), f)
	if err != nil {
		return err
	}
	req.ContentLength = st.Size()
	req.Header.Set("Content-Type", "application/octet-stream")
	req.Header.Set("Origin", base)
	req.Header.Set("Sec-Fetch-Site", "same-origin")
	resp, err = hc.Do(req)
	if err != nil {
		return err
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("upload: %s", resp.Status)
	}
	return nil
}

func newBenchWebClient() *http.Client {
	jar, _ := cookiejar.New(nil)
	return &http.Client{Jar: jar, Timeout: 5 * time.Minute, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
}
