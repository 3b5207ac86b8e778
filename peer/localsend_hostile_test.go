package peer

// Hostile LocalSend requests against the agent's LocalSend server: each
// is refused or bounded, nothing lands under a final name that should
// not, and the agent keeps serving real senders. Clients bind to other
// loopback addresses (127.0.0.0/8 is all loopback on Linux) to play other
// devices.

import (
	"bufio"
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"runtime"
	"runtime/metrics"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto/localsend"
)

// from returns a client with c's certificate whose connections come from
// ip (a loopback address): the same device seen at another address.
func (c *lsClient) from(t testing.TB, ip string) *lsClient {
	t.Helper()
	tr := c.hc.Transport.(*http.Transport).Clone()
	tr.DialContext = (&net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(ip)}}).DialContext
	o := *c
	o.t = t
	o.hc = &http.Client{Transport: tr, Timeout: c.hc.Timeout}
	t.Cleanup(tr.CloseIdleConnections)
	return &o
}

// newLSClientFrom is newLSClient for a device at ip, with a certificate
// of its own.
func newLSClientFrom(t testing.TB, ta *testAgent, ip string) *lsClient {
	t.Helper()
	return newLSClient(t, ta, true).from(t, ip)
}

// lsDial opens a TLS connection to the agent's LocalSend server from ip
// ("" for any), presenting a certificate, and closes it when the test
// ends.
func lsDial(t testing.TB, ta *testAgent, ip string) *tls.Conn {
	t.Helper()
	cert := selfSigned(t)
	d := &net.Dialer{Timeout: 5 * time.Second}
	if ip != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(ip)}
	}
	c, err := tls.DialWithDialer(d, "tcp", ta.LocalSendAddr().String(), &tls.Config{InsecureSkipVerify: true,
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) { return &cert, nil }})
	if err != nil {
		t.Fatalf("dialing the LocalSend server: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// waitFor polls cond until it holds, failing the test after d.
func lsEventually(t testing.TB, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within %v", what, d)
		}
		runtime.Gosched()
		time.Sleep(5 * time.Millisecond) // polling interval, not ordering
	}
}

// waitDropped reads from c until the server closes it, and fails the test
// if that takes longer than within. It returns what the server sent.
func waitDropped(t testing.TB, c net.Conn, within time.Duration, what string) string {
	t.Helper()
	start := time.Now()
	_ = c.SetReadDeadline(start.Add(within))
	got, err := io.ReadAll(io.LimitReader(c, 64<<10))
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("%s: the agent still held the connection after %v (it sent %q)", what, within, got)
	}
	return string(got)
}

// assertServes checks that the agent still takes a whole session from a
// fresh device at ip.
func assertServes(t testing.TB, ta *testAgent, ip, name string) {
	t.Helper()
	c := newLSClientFrom(t, ta, ip)
	code, reply, body := c.prepare([]lsUpload{{name: name, content: "still here"}}, "")
	if code != http.StatusOK {
		t.Fatalf("a real sender afterwards: prepare-upload %d %s", code, body)
	}
	if got := c.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("still here")); got != http.StatusOK {
		t.Fatalf("a real sender afterwards: upload %d", got)
	}
	lsEventually(t, 10*time.Second, name+" saved", func() bool {
		b, err := os.ReadFile(filepath.Join(ta.dir, name))
		return err == nil && string(b) == "still here"
	})
}

// TestLocalSendUploadFromAnotherAddress: a token is good only from the
// address that prepared the session. The same device (same certificate)
// at another address gets 403, nothing is written, and the token still
// works from the right address.
func TestLocalSendUploadFromAnotherAddress(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	c := newLSClient(t, ta, true)
	code, reply, body := c.prepare([]lsUpload{{name: "a.txt", content: "alpha"}}, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	other := c.from(t, "127.0.0.2")
	if got := other.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("evil!")); got != http.StatusForbidden {
		t.Fatalf("upload from another address: %d, want 403", got)
	}
	assertEmpty(t, ta.dir)
	if got := c.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("alpha")); got != http.StatusOK {
		t.Fatalf("upload from the preparing address afterwards: %d", got)
	}
	if in := ta.next(t); in.Err != nil {
		t.Fatalf("session reported %v", in.Err)
	}
	assertTree(t, ta.dir, map[string]string{"a.txt": "alpha"})
}

// TestLocalSendPrepareUploadThatNeverEnds: a prepare-upload whose body
// starts and then stalls (Content-Length or chunked) is dropped within the
// handshake timeout, gives back its share of the memory budget, and the
// agent keeps serving. (Fails until prepareUpload puts a deadline on its
// body: the server has no ReadTimeout, so nothing bounds that read, and a
// stranger holds a connection slot and up to 89 MiB of the budget with a
// few bytes.)
func TestLocalSendPrepareUploadThatNeverEnds(t *testing.T) {
	const handshake = time.Second
	for _, framing := range []string{"Content-Length: 100000\r\n", "Transfer-Encoding: chunked\r\n"} {
		name, _, _ := strings.Cut(framing, ":")
		t.Run(name, func(t *testing.T) {
			ta := startLocalSendAgent(t, func(c *Config) { c.HandshakeTimeout = handshake })
			conn := lsDial(t, ta, "127.0.0.2")
			head := "POST " + localsend.PathPrepareUpload + " HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n" + framing + "\r\n"
			start := `{"info":{"alias":"slow","version":"2.2","fingerprint":"x"},"files":{"a":{"id":"a","fileName":"a.txt"`
			if strings.HasPrefix(framing, "Transfer") {
				start = fmt.Sprintf("%x\r\n%s\r\n", len(start), start)
			}
			if _, err := io.WriteString(conn, head+start); err != nil {
				t.Fatal(err)
			}
			// The body's share is taken once the headers are in.
			lsEventually(t, 5*time.Second, "the prepare-upload's share of the memory budget taken", func() bool { return ta.inbox.mem.inUse() > 0 })
			t0 := time.Now()
			got := waitDropped(t, conn, handshake+5*time.Second, "a prepare-upload that never ends")
			t.Logf("dropped after %v, having sent %q", time.Since(t0).Round(time.Millisecond), firstLine(got))
			lsEventually(t, 5*time.Second, "the share of the memory budget given back", func() bool { return ta.inbox.mem.inUse() == 0 })
			assertServes(t, ta, "127.0.0.3", "after.txt")
		})
	}
}

func firstLine(s string) string {
	l, _, _ := strings.Cut(s, "\r\n")
	return l
}

// endlessOffer is a prepare-upload body of about n bytes, made as it is
// read: an info, then files of about 300 bytes each until n, then the end.
type endlessOffer struct {
	n, sent int64
	i       int
	pending []byte
}

func (e *endlessOffer) Read(p []byte) (int, error) {
	if len(e.pending) == 0 {
		switch {
		case e.sent == 0:
			e.pending = []byte(`{"info":{"alias":"big","version":"2.2","fingerprint":"x","deviceType":"mobile"},"files":{`)
		case e.sent >= e.n && e.i >= 0:
			e.pending, e.i = []byte("}}"), -1
		case e.i < 0:
			return 0, io.EOF
		default:
			sep := ","
			if e.i == 0 {
				sep = ""
			}
			e.pending = fmt.Appendf(nil, `%s"f%d":{"id":"f%d","fileName":"dir/%s-%d.bin","size":1,"fileType":"application/octet-stream"}`,
				sep, e.i, e.i, strings.Repeat("n", 200), e.i)
			e.i++
		}
	}
	k := copy(p, e.pending)
	e.pending = e.pending[k:]
	e.sent += int64(k)
	return k, nil
}

// heapObjects is the bytes of live and not yet swept heap objects.
func heapObjects() uint64 {
	s := []metrics.Sample{{Name: "/memory/classes/heap/objects:bytes"}}
	metrics.Read(s)
	return s[0].Value.Uint64()
}

// TestLocalSendOversizedPrepareUpload: a prepare-upload body over the
// 16 MiB cap, with its length said or chunked, is refused with 4xx; the
// agent's memory budget holds at most the capped body's share while it is
// read and gets it all back, the heap grows by no more than that share,
// and the agent keeps serving.
func TestLocalSendOversizedPrepareUpload(t *testing.T) {
	const size = 48 << 20 // three times the cap
	for _, chunked := range []bool{false, true} {
		t.Run(fmt.Sprintf("chunked=%v", chunked), func(t *testing.T) {
			// Memory is what this test is about: the whole body gets
			// time even under -race on a loaded machine (the handshake
			// deadline has its own test).
			ta := startLocalSendAgent(t, func(c *Config) { c.HandshakeTimeout = time.Minute })
			c := newLSClientFrom(t, ta, "127.0.0.2")
			runtime.GC()
			base := heapObjects()
			var peakBudget int64
			var peakHeap uint64
			stop := make(chan struct{})
			var watcher sync.WaitGroup
			watcher.Add(1)
			go func() {
				defer watcher.Done()
				tick := time.NewTicker(time.Millisecond)
				defer tick.Stop()
				for {
					peakBudget = max(peakBudget, ta.inbox.mem.inUse())
					peakHeap = max(peakHeap, heapObjects())
					select {
					case <-stop:
						return
					case <-tick.C:
					}
				}
			}()
			req, _ := http.NewRequest("POST", c.base+localsend.PathPrepareUpload, &endlessOffer{n: size})
			req.ContentLength = -1
			if !chunked {
				// Count what the generator makes, to say it right.
				n, _ := io.Copy(io.Discard, &endlessOffer{n: size})
				req.ContentLength = n
				req.Body = io.NopCloser(&endlessOffer{n: size})
			}
			resp, err := c.hc.Do(req)
			close(stop)
			watcher.Wait()
			if err != nil {
				t.Fatalf("oversized prepare-upload: no answer: %v", err)
			}
			msg, _ := io.ReadAll(io.LimitReader(resp.Body, 4<<10))
			resp.Body.Close()
			if resp.StatusCode != http.StatusBadRequest && resp.StatusCode != http.StatusRequestEntityTooLarge {
				t.Fatalf("oversized prepare-upload: %d %s, want 400 or 413", resp.StatusCode, msg)
			}
			share := prepareLimits(-1).Memory()
			t.Logf("answer %d %s; budget peak %d MiB (share %d MiB); heap objects %d → peak %d MiB",
				resp.StatusCode, strings.TrimSpace(string(msg)), peakBudget>>20, share>>20, base>>20, peakHeap>>20)
			if peakBudget > share {
				t.Errorf("memory budget in use peaked at %d bytes, over the capped body's share %d", peakBudget, share)
			}
			// What the budget accounts for bounds the heap the body made.
			if grew := int64(peakHeap) - int64(base); grew > share {
				t.Errorf("heap grew by %d MiB for a %d MiB body, over its budget share of %d MiB", grew>>20, size>>20, share>>20)
			}
			lsEventually(t, 5*time.Second, "the memory budget given back", func() bool { return ta.inbox.mem.inUse() == 0 })
			assertEmpty(t, ta.dir)
			assertServes(t, ta, "127.0.0.3", "after.txt")
		})
	}
}

// stallingReader gives head, then blocks until release is closed.
type stallingReader struct {
	head    *strings.Reader
	release <-chan struct{}
}

func (s *stallingReader) Read(p []byte) (int, error) {
	if s.head.Len() > 0 {
		return s.head.Read(p)
	}
	<-s.release
	return 0, io.ErrUnexpectedEOF
}

// TestLocalSendUploadStallsMidBody: an upload that stops sending in the
// middle of its body is dropped by the idle timeout; nothing lands under
// its final name or stays in staging, and the session's other file is
// still accepted.
func TestLocalSendUploadStallsMidBody(t *testing.T) {
	const idle = time.Second
	ta := startLocalSendAgent(t, func(c *Config) { c.IdleTimeout = idle })
	c := newLSClient(t, ta, true)
	big := strings.Repeat("s", 256<<10)
	code, reply, body := c.prepare([]lsUpload{{name: "stalled.bin", content: big}, {name: "ok.txt", content: "fine"}}, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	release := make(chan struct{})
	t.Cleanup(func() { close(release) })
	q := url.Values{"sessionId": {reply.SessionID}, "fileId": {"id0"}, "token": {reply.Files["id0"]}}
	req, _ := http.NewRequest("POST", c.base+localsend.PathUpload+"?"+q.Encode(), &stallingReader{head: strings.NewReader(big[:100<<10]), release: release})
	req.ContentLength = -1
	done := make(chan error, 1)
	go func() {
		resp, err := c.hc.Do(req)
		if err == nil {
			io.Copy(io.Discard, resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				err = errors.New("200 OK for a body that stalled")
			}
		}
		done <- err
	}()
	select {
	case err := <-done:
		t.Logf("the stalled upload ended: %v", err)
	case <-time.After(idle + 10*time.Second):
		t.Fatalf("an upload stalled mid-body was still held after %v (idle timeout %v)", idle+10*time.Second, idle)
	}
	if _, err := os.Stat(filepath.Join(ta.dir, "stalled.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stalled.bin under its final name: %v", err)
	}
	if got := c.upload(reply.SessionID, "id1", reply.Files["id1"], strings.NewReader("fine")); got != http.StatusOK {
		t.Fatalf("the session's other file after the stall: %d", got)
	}
	lsEventually(t, 10*time.Second, "ok.txt saved", func() bool {
		b, err := os.ReadFile(filepath.Join(ta.dir, "ok.txt"))
		return err == nil && string(b) == "fine"
	})
	if _, err := os.Stat(filepath.Join(ta.dir, "stalled.bin")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stalled.bin under its final name: %v", err)
	}
	// Ending the session (as the app does when a file failed) leaves no
	// temporary file behind.
	resp, err := c.hc.Post(c.base+localsend.PathCancel+"?sessionId="+reply.SessionID, "", nil)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	ta.next(t)
	assertTree(t, ta.dir, map[string]string{"ok.txt": "fine"})
}

// TestLocalSendSessionsFromManyAddresses: devices at different addresses
// each hold a session; beyond the cap the next gets 409, the sessions
// held still upload, and once one ends a new device gets in.
func TestLocalSendSessionsFromManyAddresses(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	type held struct {
		c     *lsClient
		reply localsend.PrepareUploadReply
	}
	var sessions []held
	for i := range lsMaxSessions {
		c := newLSClientFrom(t, ta, fmt.Sprintf("127.0.0.%d", 2+i))
		code, reply, body := c.prepare([]lsUpload{{name: fmt.Sprintf("s%d.txt", i), content: "x"}}, "")
		if code != http.StatusOK {
			t.Fatalf("session %d of %d: %d %s", i+1, lsMaxSessions, code, body)
		}
		sessions = append(sessions, held{c, reply})
	}
	late := newLSClientFrom(t, ta, fmt.Sprintf("127.0.0.%d", 2+lsMaxSessions))
	if code, _, body := late.prepare([]lsUpload{{name: "late.txt", content: "late"}}, ""); code != http.StatusConflict {
		t.Fatalf("session %d: %d %s, want 409", lsMaxSessions+1, code, body)
	}
	// The first session finishes; the others still hold theirs.
	s := sessions[0]
	if got := s.c.upload(s.reply.SessionID, "id0", s.reply.Files["id0"], strings.NewReader("x")); got != http.StatusOK {
		t.Fatalf("upload of a held session: %d", got)
	}
	ta.next(t)
	code, reply, body := late.prepare([]lsUpload{{name: "late.txt", content: "late"}}, "")
	if code != http.StatusOK {
		t.Fatalf("after a session ended: %d %s", code, body)
	}
	if got := late.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("late")); got != http.StatusOK {
		t.Fatalf("late upload: %d", got)
	}
	ta.next(t)
	for i, s := range sessions[1:] {
		if got := s.c.upload(s.reply.SessionID, "id0", s.reply.Files["id0"], strings.NewReader("x")); got != http.StatusOK {
			t.Errorf("upload of held session %d: %d", i+2, got)
		}
	}
}

// TestLocalSendConnectionFlood: connections that send nothing, from many
// addresses, hold at most the agent's slots (MaxConns, MaxConnsPerHost),
// and a real sender still gets through (a stranger's connection that has
// sent no offer gives way to a newcomer).
func TestLocalSendConnectionFlood(t *testing.T) {
	const maxConns, perHost, hosts = 8, 4, 5
	ta := startLocalSendAgent(t, func(c *Config) {
		c.MaxConns, c.MaxConnsPerHost = maxConns, perHost
		c.HandshakeTimeout = time.Minute // the flood is not dropped by a deadline during the test
	})
	var flood []net.Conn
	for h := range hosts {
		for range perHost + 1 {
			d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(fmt.Sprintf("127.0.0.%d", 2+h))}, Timeout: 5 * time.Second}
			c, err := d.Dial("tcp", ta.LocalSendAddr().String())
			if err != nil {
				t.Fatal(err)
			}
			flood = append(flood, c)
		}
	}
	t.Cleanup(func() {
		for _, c := range flood {
			c.Close()
		}
	})
	admitted := func() (open, all int) {
		ta.Agent.mu.Lock()
		defer ta.Agent.mu.Unlock()
		return ta.open, len(ta.conns)
	}
	// Every slot taken by the flood; the rest closed at once.
	lsEventually(t, 10*time.Second, "the flood filling the slots", func() bool { open, _ := admitted(); return open == maxConns })
	if open, all := admitted(); open > maxConns || all > maxConns+trustedReserve {
		t.Fatalf("%d connections admitted (%d in the slots), cap %d", all, open, maxConns)
	}
	// A real sender, retrying as its dials are refused until a flood
	// connection is old enough to give way.
	c := newLSClient(t, ta, true)
	c.hc.Timeout = 5 * time.Second
	deadline := time.Now().Add(15 * time.Second)
	for {
		req, _ := http.NewRequestWithContext(context.Background(), "POST", c.base+localsend.PathPrepareUpload,
			strings.NewReader(`{"info":{"alias":"real","version":"2.2","fingerprint":"`+c.fp+`"},"files":{"id0":{"id":"id0","fileName":"real.txt","size":4,"fileType":"text/x-real"}}}`))
		resp, err := c.hc.Do(req)
		if err == nil {
			var reply localsend.PrepareUploadReply
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusOK {
				t.Fatalf("real sender: %d %s", resp.StatusCode, raw)
			}
			if reply, err = localsend.DecodePrepareUploadReply(strings.NewReader(string(raw)), localsend.Limits{}); err != nil {
				t.Fatalf("real sender's reply %q: %v", raw, err)
			}
			if got := c.upload(reply.SessionID, "id0", reply.Files["id0"], strings.NewReader("real")); got != http.StatusOK {
				t.Fatalf("real sender's upload: %d", got)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("a real sender did not get through the flood: %v", err)
		}
	}
	if in := ta.next(t); in.Err != nil {
		t.Fatalf("real sender's session: %v", in.Err)
	}
	assertTree(t, ta.dir, map[string]string{"real.txt": "real"})
	if open, all := admitted(); open > maxConns || all > maxConns+trustedReserve {
		t.Errorf("after the real sender: %d connections admitted (%d in the slots), cap %d", all, open, maxConns)
	}
	// The flood connections the agent dropped are closed on its side.
	dropped := 0
	for _, fc := range flood {
		_ = fc.SetReadDeadline(time.Now().Add(10 * time.Millisecond))
		if _, err := bufio.NewReader(fc).ReadByte(); err != nil && !errors.Is(err, os.ErrDeadlineExceeded) {
			dropped++
		}
	}
	if dropped < len(flood)-maxConns {
		t.Errorf("the agent dropped %d of %d flood connections; at most %d may be held", dropped, len(flood), maxConns)
	}
}

// writeRequestHead writes a request's line and headers on c, with a
// Content-Length of n and extra header lines ("Name: value").
func writeRequestHead(t testing.TB, c net.Conn, method, target string, n int, extra ...string) {
	t.Helper()
	head := fmt.Sprintf("%s %s HTTP/1.1\r\nHost: x\r\nContent-Length: %d\r\n", method, target, n)
	for _, h := range extra {
		head += h + "\r\n"
	}
	if _, err := io.WriteString(c, head+"\r\n"); err != nil {
		t.Fatalf("writing the request's head: %v", err)
	}
}

// trickleUpload uploads session's file id (of size bytes) from ip as a
// trickle: its head, 100 bytes of body, then a byte every 20 ms until
// the agent answers. It returns the answer's status, or 0 when the
// agent closed the connection without one, and fails the test when the
// agent still held it after within.
func trickleUpload(t testing.TB, ta *testAgent, ip, session, id, token string, size int, within time.Duration) int {
	t.Helper()
	conn := lsDial(t, ta, ip)
	q := url.Values{"sessionId": {session}, "fileId": {id}, "token": {token}}
	writeRequestHead(t, conn, "POST", localsend.PathUpload+"?"+q.Encode(), size)
	if _, err := conn.Write(make([]byte, 100)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		tick := time.NewTicker(20 * time.Millisecond) // the trickle's pace
		defer tick.Stop()
		for {
			select {
			case <-stop:
				return
			case <-tick.C:
				if _, err := conn.Write([]byte{'x'}); err != nil {
					return
				}
			}
		}
	}()
	defer func() {
		close(stop)
		conn.Close()
		wg.Wait()
	}()
	_ = conn.SetReadDeadline(time.Now().Add(within))
	resp, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if errors.Is(err, os.ErrDeadlineExceeded) {
		t.Fatalf("a trickling upload was still held after %v", within)
	}
	if err != nil {
		return 0 // cut without an answer (the connection reset under the trickle)
	}
	resp.Body.Close()
	return resp.StatusCode
}

// TestLocalSendUploadTrickleIsCut: an upload body that trickles (a byte
// every 20 ms, far under the minimum rate, never idle for a whole read)
// is cut within about the rate window, as a lanshare transfer is after
// its answer; nothing of it lands, and the agent serves a real sender.
// (Before uploads were paced, only the idle deadline of each read
// bounded them: a byte every 10 s held a session, and the memory and
// slot it takes, for good.)
func TestLocalSendUploadTrickleIsCut(t *testing.T) {
	const window = 300 * time.Millisecond
	ta := startLocalSendAgent(t, func(c *Config) {
		c.RateWindow, c.MinRate = window, 64<<10
		c.IdleTimeout = time.Minute // not what cuts it
	})
	c := newLSClientFrom(t, ta, "127.0.0.2")
	content := strings.Repeat("t", 1<<20)
	code, reply, body := c.prepare([]lsUpload{{name: "trickle.bin", content: content, sha: "-"}}, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	start := time.Now()
	status := trickleUpload(t, ta, "127.0.0.2", reply.SessionID, "id0", reply.Files["id0"], len(content), 10*time.Second)
	t.Logf("the trickle was cut after %v (status %d)", time.Since(start).Round(time.Millisecond), status)
	if status != 0 && status != http.StatusRequestTimeout {
		t.Errorf("a trickling upload answered %d, want 408 (or a cut)", status)
	}
	in := ta.next(t)
	if in.Transfer == nil || len(in.Transfer.Entries) != 1 || !strings.Contains(in.Transfer.Entries[0].Result.Reason, ErrTooSlow.Error()) {
		t.Errorf("the session's report: %+v, want its file failed as %q", in.Transfer, ErrTooSlow)
	}
	assertEmpty(t, ta.dir)
	lsEventually(t, 5*time.Second, "the memory budget given back", func() bool { return ta.inbox.mem.inUse() == 0 })
	assertServes(t, ta, "127.0.0.3", "after.txt")
}

// TestLocalSendTrickledSessionEndsWhenIdle: a session whose files are
// trickled one after the other (each cut for its rate, the next started
// at once) saves nothing and moves no file at the minimum rate: it ends
// as idle, as a session that sends nothing does, instead of being kept
// by every upload that starts. (Before, each upload's start and end
// counted as activity.)
func TestLocalSendTrickledSessionEndsWhenIdle(t *testing.T) {
	const window, idle = 200 * time.Millisecond, time.Second
	ta := startAgent(t, func(c *Config) {
		c.LocalSend, c.LocalSendListen = true, "127.0.0.1:0"
		c.RateWindow, c.MinRate = window, 64<<10
		c.IdleTimeout = time.Minute
	}, func(a *Agent) { a.ls.idleSession = idle })
	c := newLSClientFrom(t, ta, "127.0.0.2")
	const files = 60 // at one a window, 12 s of trickles: far more than idle
	content := strings.Repeat("t", 128<<10)
	var offer []lsUpload
	for i := range files {
		offer = append(offer, lsUpload{name: fmt.Sprintf("f%02d.bin", i), content: content, sha: "-"})
	}
	code, reply, body := c.prepare(offer, "")
	if code != http.StatusOK {
		t.Fatalf("prepare-upload: %d %s", code, body)
	}
	start := time.Now()
	ended := -1
	for i := range files {
		id := fmt.Sprintf("id%d", i)
		status := trickleUpload(t, ta, "127.0.0.2", reply.SessionID, id, reply.Files[id], len(content), 10*time.Second)
		if status == http.StatusForbidden {
			ended = i
			break
		}
		if status != 0 && status != http.StatusRequestTimeout {
			t.Fatalf("trickle %d: %d, want 408 (or a cut)", i, status)
		}
	}
	took := time.Since(start)
	if ended < 0 {
		t.Fatalf("the session was still open after %d trickled files in %v (idle ends it after %v)", files, took.Round(time.Millisecond), idle)
	}
	t.Logf("the session ended after %d trickled files in %v", ended, took.Round(time.Millisecond))
	if took > idle+idle/4+2*window+time.Second {
		t.Errorf("the session ended after %v, idle is %v", took, idle)
	}
	in := ta.next(t)
	if in.Err == nil || !strings.Contains(in.Err.Error(), "went quiet") {
		t.Errorf("the session ended with %v, want it gone quiet", in.Err)
	}
	assertEmpty(t, ta.dir)
}

// TestLocalSendSessionCapsHoldUnderRace: prepare-uploads that all reach
// the agent before any of them is decided (each waits for its body,
// which is sent once every one was let in or refused) get no more
// sessions than the caps: one per address, lsMaxSessions in all.
// (Before, makeRoom checked the caps before the body was read and the
// session was registered after it: 8 at once from one address got 8.)
func TestLocalSendSessionCapsHoldUnderRace(t *testing.T) {
	for _, tc := range []struct{ addrs, per, want int }{{1, 8, 1}, {5, 3, 5}, {lsMaxSessions + 2, 1, lsMaxSessions}} {
		t.Run(fmt.Sprintf("%d addresses x %d", tc.addrs, tc.per), func(t *testing.T) {
			ta := startLocalSendAgent(t, nil)
			type prepare struct {
				ip   string
				c    net.Conn
				br   *bufio.Reader
				body []byte
			}
			var all, in []*prepare
			for a := range tc.addrs {
				ip := fmt.Sprintf("127.0.0.%d", 2+a)
				for k := range tc.per {
					name := fmt.Sprintf("race-%02d-%02d.bin", a, k)
					body, _ := json.Marshal(localsend.PrepareUpload{Info: localsend.Info{Alias: "racer", Version: "2.2", Fingerprint: "x"},
						Files: map[string]localsend.File{"a": {ID: "a", FileName: name, Size: 4, FileType: "application/octet-stream"}}})
					c := lsDial(t, ta, ip)
					writeRequestHead(t, c, "POST", localsend.PathPrepareUpload, len(body), "Content-Type: application/json", "Expect: 100-continue")
					all = append(all, &prepare{ip: ip, c: c, br: bufio.NewReader(c), body: body})
				}
			}
			answer := func(p *prepare) int {
				t.Helper()
				_ = p.c.SetReadDeadline(time.Now().Add(10 * time.Second))
				resp, err := http.ReadResponse(p.br, nil)
				if err != nil {
					t.Fatalf("prepare-upload from %s: %v", p.ip, err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
				return resp.StatusCode
			}
			// 100 Continue: the handler reads the body, it was let in.
			for _, p := range all {
				switch code := answer(p); code {
				case http.StatusContinue:
					in = append(in, p)
				case http.StatusConflict:
				default:
					t.Fatalf("prepare-upload from %s before its body: %d", p.ip, code)
				}
			}
			for _, p := range in {
				if _, err := p.c.Write(p.body); err != nil {
					t.Fatal(err)
				}
			}
			granted := map[string]int{}
			total := 0
			for _, p := range in {
				switch code := answer(p); code {
				case http.StatusOK:
					granted[p.ip]++
					total++
				case http.StatusConflict:
				default:
					t.Fatalf("prepare-upload from %s: %d", p.ip, code)
				}
			}
			t.Logf("%d of %d prepare-uploads let in, %d sessions granted", len(in), len(all), total)
			for ip, n := range granted {
				if n > 1 {
					t.Errorf("%s got %d sessions at once, want 1", ip, n)
				}
			}
			if total != tc.want {
				t.Errorf("%d sessions granted, want %d", total, tc.want)
			}
			ta.ls.mu.Lock()
			open, preparing := len(ta.ls.sessions), len(ta.ls.preparing)
			ta.ls.mu.Unlock()
			if open != tc.want || preparing != 0 {
				t.Errorf("the server holds %d sessions and %d places, want %d and 0", open, preparing, tc.want)
			}
		})
	}
}

// TestLocalSendStopWhilePrepareWaitsForMemory: a prepare-upload whose
// body's share waits for the memory budget (its body not sent) does not
// hold the agent's stop: Serve returns, and Close after it, within the
// README's 5 s, not at the end of the handshake deadline. (Before, the
// wait ended only at that deadline: the server does not watch a
// connection whose body is unread, so its context never ended.)
func TestLocalSendStopWhilePrepareWaitsForMemory(t *testing.T) {
	const handshake = 20 * time.Second
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = t.TempDir(), t.TempDir(), "bob", "127.0.0.1:0"
	cfg.SpaceMargin = 0
	cfg.LocalSend, cfg.LocalSendListen = true, "127.0.0.1:0"
	cfg.HandshakeTimeout, cfg.ShutdownGrace = handshake, 500*time.Millisecond
	a, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	defer a.Close()
	// The budget taken whole; an acquire that waits says so.
	if err := a.inbox.mem.acquire(a.inbox.mem.limit, nil, nil, time.Now()); err != nil {
		t.Fatal(err)
	}
	waiting := make(chan struct{}, 1)
	evict := a.inbox.mem.pressure
	a.inbox.mem.pressure = func() {
		select {
		case waiting <- struct{}{}:
		default:
		}
		evict()
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	served := make(chan error, 1)
	go func() { served <- a.Serve(ctx) }()
	conn := lsDial(t, &testAgent{Agent: a}, "127.0.0.2")
	writeRequestHead(t, conn, "POST", localsend.PathPrepareUpload, 1000, "Content-Type: application/json")
	select {
	case <-waiting:
	case <-time.After(10 * time.Second):
		t.Fatal("the prepare-upload never waited for the memory budget")
	}
	start := time.Now()
	cancel() // SIGTERM
	select {
	case err := <-served:
		if err != nil {
			t.Errorf("Serve: %v", err)
		}
	case <-time.After(handshake + 5*time.Second):
		t.Fatal("Serve did not return")
	}
	a.Close()
	took := time.Since(start)
	t.Logf("stopped in %v", took.Round(time.Millisecond))
	if took > 5*time.Second {
		t.Errorf("stopping took %v while a prepare-upload waited for memory, want at most 5 s (handshake deadline %v)", took.Round(time.Millisecond), handshake)
	}
}
