package main

import (
	"bytes"
	"crypto/tls"
	"io"
	"net"
	"net/http"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lanshare/lanshare/peer"
)

// TestDropPageLine: serve's drop page line names an address a person can
// type (never 0.0.0.0 or ::), the port, and the PIN, or says there is
// none; on a terminal a QR code of the address follows.
func TestDropPageLine(t *testing.T) {
	for _, c := range []struct {
		addr      string
		pin, want string
	}{
		{"192.168.1.20:53317", "482193", "drop page https://192.168.1.20:53317/  PIN 482193"},
		{"[fd77::2]:53317", "482193", "drop page https://[fd77::2]:53317/  PIN 482193"},
		{"127.0.0.1:8443", "", "drop page https://127.0.0.1:8443/  no PIN: anyone on the network can send"},
	} {
		var out, qr bytes.Buffer
		tcp, err := net.ResolveTCPAddr("tcp", c.addr)
		if err != nil {
			t.Fatal(err)
		}
		logDropPage(newAgentLog(&out, false), peer.Config{WebPIN: c.pin}, tcp, &qr)
		if !strings.HasSuffix(strings.TrimSpace(out.String()), c.want) {
			t.Errorf("%s: logged %q, want it to end %q", c.addr, out.String(), c.want)
		}
		lines := strings.Split(strings.TrimRight(qr.String(), "\n"), "\n")
		if len(lines) < 10 || len([]rune(lines[0])) != len([]rune(lines[len(lines)-1])) || !strings.Contains(qr.String(), "█") {
			t.Errorf("%s: QR code %q", c.addr, qr.String())
		}
	}
	for _, a := range []string{"0.0.0.0:53317", "[::]:53317"} {
		tcp, _ := net.ResolveTCPAddr("tcp", a)
		if u := dropPageURL(tcp); strings.Contains(u, "0.0.0.0") || strings.Contains(u, "[::]") || !strings.HasSuffix(u, ":53317/") {
			t.Errorf("%s: drop page URL %q", a, u)
		}
	}
}

// TestDropPageFlags: by default serve makes a random six-digit PIN at
// each start; --web=false leaves the page out (GET / is 404 on the
// LocalSend port) and prints no drop page line; under --accept trusted
// the page is off, and asking for it is a usage error; with
// --web-insecure-http serve warns and gives the plain-HTTP address, which
// serves the page.
func TestDropPageFlags(t *testing.T) {
	tmp := t.TempDir()
	serveArgs := func(extra ...string) []string {
		dir := t.TempDir()
		return append([]string{"serve", "--dir", filepath.Join(dir, "share"), "--config", filepath.Join(dir, "config"),
			"--name", "bob", "--listen", "127.0.0.1:0", "--localsend", "--localsend-port", "0"}, extra...)
	}
	var pins []string
	for range 2 {
		srv := startLanshare(t, exec.CommandContext, tmp, nil, serveArgs()...)
		_, pin := waitDropPage(t, srv)
		if len(pin) != webPINDigits || strings.Trim(pin, "0123456789") != "" {
			t.Errorf("random PIN %q, want %d digits", pin, webPINDigits)
		}
		pins = append(pins, pin)
		_ = srv.cmd.Process.Kill()
	}
	if pins[0] == pins[1] {
		t.Errorf("two starts made the same PIN %s (one chance in a million)", pins[0])
	}

	srv := startLanshare(t, exec.CommandContext, tmp, nil, serveArgs("--web=false")...)
	var ls string
	srv.out.waitFor(t, "the LocalSend line", func(lines []string) bool {
		i := slices.IndexFunc(lines, func(l string) bool { return strings.Contains(l, "LocalSend apps can send here: https://") })
		if i >= 0 {
			_, ls, _ = strings.Cut(lines[i], "https://")
			ls, _, _ = strings.Cut(ls, ",")
		}
		return i >= 0
	})
	hc := &http.Client{Timeout: failAfter, Transport: &http.Transport{TLSClientConfig: &tls.Config{InsecureSkipVerify: true}}}
	resp, err := hc.Get("https://" + ls + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNotFound {
		t.Errorf("GET / with --web=false: %d, want 404", resp.StatusCode)
	}
	if slices.ContainsFunc(srv.out.Lines(), func(l string) bool { return strings.Contains(l, "drop page") }) {
		t.Errorf("--web=false printed a drop page line:\n%s", strings.Join(srv.out.Lines(), "\n"))
	}

	// --web-insecure-http: serve warns, with the plain address, which
	// serves the page; without the page it is a usage error.
	srv = startLanshare(t, exec.CommandContext, tmp, nil, serveArgs("--web-insecure-http", "0")...)
	var plain string
	srv.out.waitFor(t, "the plain-HTTP warning", func(lines []string) bool {
		i := slices.IndexFunc(lines, func(l string) bool {
			return strings.Contains(l, "warning: the drop page and share links are also served over plain HTTP at http://")
		})
		if i >= 0 {
			_, plain, _ = strings.Cut(lines[i], " at ")
			plain, _, _ = strings.Cut(plain, " ")
		}
		return i >= 0
	})
	if !strings.Contains(strings.Join(srv.out.Lines(), "\n"), "cross the network unencrypted") {
		t.Errorf("the warning does not say what is exposed:\n%s", strings.Join(srv.out.Lines(), "\n"))
	}
	resp, err = hc.Get(plain)
	if err != nil {
		t.Fatal(err)
	}
	page, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK || !strings.Contains(string(page), "Not private") {
		t.Errorf("GET %s: %d\n%s", plain, resp.StatusCode, page)
	}
	if r := runLanshareOn(t, exec.CommandContext, tmp, nil, serveArgs("--web=false", "--web-insecure-http", "0")...); r.code != exitUsage || !strings.Contains(r.stderr, "no drop page") {
		t.Errorf("--web-insecure-http with --web=false: exit %d, stderr %q", r.code, r.stderr)
	}

	for _, extra := range [][]string{{"--web-pin", ""}, {"--web"}} {
		r := runLanshareOn(t, exec.CommandContext, tmp, nil, serveArgs(append([]string{"--accept", "trusted"}, extra...)...)...)
		if r.code != exitUsage || !strings.Contains(r.stderr, "--accept everyone or ask") {
			t.Errorf("%q under --accept trusted: exit %d, stderr %q", extra, r.code, r.stderr)
		}
	}
}
