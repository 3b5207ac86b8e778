package peer

import (
	"errors"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestWebInsecureHTTP: with WebInsecureHTTP the drop page and share links
// are served over plain HTTP too, their pages saying that nothing there
// is private; a browser logs in (its cookie not Secure, which a browser
// would drop over HTTP), offers and uploads, and the file lands; a share
// downloads; LocalSend's API is not there; the HTTPS page keeps its
// certificate line and no warning. Without it there is no such server.
func TestWebInsecureHTTP(t *testing.T) {
	ta := startWebAgent(t, "482193", func(c *Config) { c.WebInsecureHTTP = "127.0.0.1:0" })
	addr := ta.WebInsecureHTTPAddr()
	if addr == nil {
		t.Fatal("no plain-HTTP address")
	}
	c := newWebClient(t, ta, "")
	c.base = "http://" + addr.String()
	c.headers["Origin"] = c.base
	code, _, page := c.do("GET", "/", nil)
	if code != http.StatusOK || !strings.Contains(page, "Not private") || strings.Contains(page, "id=\"fingerprint\"") {
		t.Errorf("GET / over HTTP: %d\n%s", code, page)
	}
	code, h, body := c.login("482193")
	if code != http.StatusNoContent {
		t.Fatalf("login over HTTP: %d %s", code, body)
	}
	if ck := h.Get("Set-Cookie"); strings.Contains(ck, "Secure") || !strings.Contains(ck, "HttpOnly") || !strings.Contains(ck, "SameSite=Strict") {
		t.Errorf("session cookie over HTTP: %q", ck)
	}
	code, reply, body := c.offer([]webFile{{name: "plain.txt", content: "over http", hash: true}})
	if code != http.StatusOK {
		t.Fatalf("offer over HTTP: %d %s", code, body)
	}
	if got := c.upload(reply.SessionID, "0", reply.Files["0"], "over http"); got != http.StatusOK {
		t.Fatalf("upload over HTTP: %d", got)
	}
	ta.next(t)
	if data, err := os.ReadFile(filepath.Join(ta.dir, "plain.txt")); err != nil || string(data) != "over http" {
		t.Errorf("plain.txt: %q, %v", data, err)
	}

	src := filepath.Join(t.TempDir(), "report.pdf")
	if err := os.WriteFile(src, []byte("report"), 0o644); err != nil {
		t.Fatal(err)
	}
	l, err := ta.Share([]string{src}, time.Now().Add(time.Hour), "")
	if err != nil {
		t.Fatal(err)
	}
	if code, _, page := c.do("GET", l.Path, nil); code != http.StatusOK || !strings.Contains(page, "Not private") {
		t.Errorf("share page over HTTP: %d\n%s", code, page)
	}
	if code, _, body := c.do("GET", l.Path+"0", nil); code != http.StatusOK || body != "report" {
		t.Errorf("share download over HTTP: %d %q", code, body)
	}
	for _, p := range []string{"/api/localsend/v2/info", "/api/localsend/v2/prepare-upload"} {
		if code, _, _ := c.do("GET", p, nil); code != http.StatusNotFound {
			t.Errorf("GET %s over HTTP: %d, want 404", p, code)
		}
	}

	s := newWebClient(t, ta, "")
	if code, _, page := s.do("GET", "/", nil); code != http.StatusOK || strings.Contains(page, "Not private") || !strings.Contains(page, "id=\"fingerprint\"") {
		t.Errorf("GET / over HTTPS: %d\n%s", code, page)
	}
	// The HTTPS server's cookie is Secure: a browser does not send it
	// over plain HTTP to a LAN address (it does to loopback, a secure
	// context, as Go's cookie jar does: not checked here for that).
	code, h, _ = s.login("482193")
	if ck := h.Get("Set-Cookie"); code != http.StatusNoContent || !strings.Contains(ck, "Secure") {
		t.Errorf("login over HTTPS: %d, cookie %q", code, ck)
	}

	if off := startWebAgent(t, "482193", nil); off.WebInsecureHTTPAddr() != nil {
		t.Error("a plain-HTTP server without WebInsecureHTTP")
	}
}

// The HTTP servers' close may come before or while their serve starts (an
// agent stopped at once, its serve goroutine not yet run): both return,
// and close's wait is ordered after every goroutine serve starts. Before,
// serve added to the WaitGroup close waited on without any lock between
// them, which the race detector caught in CI.
func TestHTTPServersClosedWhileStarting(t *testing.T) {
	for i := 0; i < 50; i++ {
		cfg := webConfig(t)
		a, err := New(cfg)
		if err != nil {
			t.Fatal(err)
		}
		start, served := make(chan struct{}), make(chan struct{})
		go func() {
			defer close(served)
			<-start
			a.ls.serve()
		}()
		close(start)
		a.ls.close()
		select {
		case <-served:
		case <-time.After(10 * time.Second):
			t.Fatal("serve still running 10 s after close")
		}
		a.Close()
	}
}

// TestWebInsecureHTTPPortTaken: a plain-HTTP port asked for but taken
// stops New with an error that names it; it was taken for LocalSend's
// port being in use, and the agent served without LocalSend at all.
func TestWebInsecureHTTPPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer taken.Close()
	cfg := webConfig(t)
	cfg.WebInsecureHTTP = taken.Addr().String()
	a, err := New(cfg)
	if err == nil {
		a.Close()
		t.Fatalf("New served with the plain-HTTP port taken (LocalSend unavailable: %v)", a.LocalSendUnavailable())
	}
	if !errors.Is(err, syscall.EADDRINUSE) || !strings.Contains(err.Error(), "plain HTTP on "+taken.Addr().String()) {
		t.Errorf("New: %v, want the plain-HTTP port named as in use", err)
	}
}

// TestWebOffWithLocalSendPortTaken: with LocalSend's port taken the agent
// serves without LocalSend, and so without the drop page and its
// plain-HTTP port, which live on LocalSend's server: the warning names
// them, where it named LocalSend alone.
func TestWebOffWithLocalSendPortTaken(t *testing.T) {
	taken, err := net.Listen("tcp", "127.0.0.1:0")
	must(t, err)
	defer taken.Close()
	cfg := webConfig(t)
	cfg.LocalSendListen = taken.Addr().String()
	a, err := New(cfg)
	must(t, err)
	defer a.Close()
	if a.WebInsecureHTTPAddr() != nil || a.LocalSendAddr() != nil {
		t.Errorf("serving the drop page with LocalSend's port taken")
	}
	if err := a.LocalSendUnavailable(); err == nil || !strings.Contains(err.Error(), "serving without LocalSend, the drop page and its plain-HTTP port") {
		t.Errorf("LocalSendUnavailable: %v", err)
	}
}

// webConfig is the config of an agent made with New and not started, on
// loopback, with LocalSend, the drop page and its plain-HTTP port on.
func webConfig(t testing.TB) Config {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.LocalSend, cfg.LocalSendListen = true, "127.0.0.1:0"
	cfg.Web, cfg.WebPIN, cfg.WebInsecureHTTP = true, "482193", "127.0.0.1:0"
	return cfg
}
