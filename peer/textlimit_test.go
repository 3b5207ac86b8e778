package peer

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// fakeClock is a clock that moves only when told.
type fakeClock struct {
	mu  sync.Mutex
	now time.Time
}

func newFakeClock() *fakeClock {
	return &fakeClock{now: time.Date(2026, 1, 2, 15, 4, 5, 0, time.UTC)}
}

func (c *fakeClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *fakeClock) advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = c.now.Add(d)
}

// lineLog collects the lines of a Config.Logf.
type lineLog struct {
	mu    sync.Mutex
	lines []string
}

func (l *lineLog) logf(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.lines = append(l.lines, fmt.Sprintf(format, args...))
}

// about returns the lines that hold s.
func (l *lineLog) about(s string) []string {
	l.mu.Lock()
	defer l.mu.Unlock()
	var out []string
	for _, line := range l.lines {
		if strings.Contains(line, s) {
			out = append(out, line)
		}
	}
	return out
}

// settled waits until the agent's connections have all ended, so that
// every OnTransfer they would make was made.
func (ta *testAgent) settled(t testing.TB) {
	t.Helper()
	waitFor(t, func() bool {
		ta.mu.Lock()
		defer ta.mu.Unlock()
		ta.Agent.mu.Lock()
		defer ta.Agent.mu.Unlock()
		return len(ta.Agent.conns) == 0
	})
}

// TestTextFloodOverLanshareRefused: a peer that sends 11 messages in a row
// over lanshare's protocol gets 10 delivered and the 11th refused, with a
// line that says so; the receiver reports the 10 and logs one line for
// the refusal, not one per message.
func TestTextFloodOverLanshareRefused(t *testing.T) {
	var log lineLog
	bob := startAgent(t, func(c *Config) { c.Logf = log.logf })
	mallory := testSender(t)
	for i := range TextsPerMinute {
		msg := fmt.Sprintf("message %d", i)
		rep, err := mallory.Send(context.Background(), bob.target(), []Item{textItem(t, msg)}, SendOptions{Name: "mallory"})
		if err != nil || rep.Results[0].Status != proto.Delivered {
			t.Fatalf("message %d: %v, %+v", i, err, rep)
		}
		if in := bob.next(t); in.Err != nil || in.Transfer.Text != msg {
			t.Fatalf("message %d reported as %+v, %v", i, in.Transfer, in.Err)
		}
	}
	for range 5 {
		_, err := mallory.Send(context.Background(), bob.target(), []Item{textItem(t, "one more")}, SendOptions{Name: "mallory"})
		if re := refusal(t, err); re.Code != proto.CodeTooMany || !errors.Is(err, ErrRefused) {
			t.Errorf("message over the limit: %v (code %d)", err, re.Code)
		}
		if want := "bob refused the message: too many messages; try again in a minute"; err.Error() != want {
			t.Errorf("the sender says %q, want %q", err, want)
		}
	}
	bob.settled(t)
	bob.mu.Lock()
	reported := len(bob.incoming)
	bob.mu.Unlock()
	if reported != TextsPerMinute {
		t.Errorf("%d connections reported, want the %d delivered messages alone", reported, TextsPerMinute)
	}
	lines := log.about("text message")
	if len(lines) != 1 || !strings.Contains(lines[0], "refused 1 text message from 127.0.0.1") {
		t.Errorf("log lines about the refusals: %q, want one", lines)
	}
	// A file still goes through: the limit is of messages.
	if _, err := sendFile(t, mallory, bob.target(), "a.txt", "a file"); err != nil {
		t.Errorf("a file after the refused messages: %v", err)
	}
}

// TestTextLimitSharedByBothProtocols: messages from one address over
// LocalSend and over lanshare's protocol count against one limit, so that
// alternating the protocols does not double it.
func TestTextLimitSharedByBothProtocols(t *testing.T) {
	var log lineLog
	ta := startLocalSendAgent(t, func(c *Config) { c.Logf = log.logf })
	ls := newLSClient(t, ta, true)
	mallory := testSender(t)
	for i := range TextsPerMinute {
		if i%2 == 0 {
			if code := postText(t, ls, "via LocalSend"); code != http.StatusNoContent {
				t.Fatalf("message %d over LocalSend: %d", i, code)
			}
			continue
		}
		if _, err := mallory.Send(context.Background(), ta.target(), []Item{textItem(t, "via lanshare")}, SendOptions{Name: "mallory"}); err != nil {
			t.Fatalf("message %d over lanshare: %v", i, err)
		}
	}
	if code := postText(t, ls, "one more"); code != http.StatusTooManyRequests {
		t.Errorf("the 11th message, over LocalSend: %d, want 429", code)
	}
	_, err := mallory.Send(context.Background(), ta.target(), []Item{textItem(t, "one more")}, SendOptions{Name: "mallory"})
	if re := refusal(t, err); re.Code != proto.CodeTooMany {
		t.Errorf("the 12th message, over lanshare: %v", err)
	}
	ta.settled(t)
	ta.mu.Lock()
	var texts int
	for _, in := range ta.incoming {
		if in.Transfer != nil && in.Transfer.Text != "" {
			texts++
		}
		if in.Err != nil {
			t.Errorf("reported: %v", in.Err)
		}
	}
	ta.mu.Unlock()
	if texts != TextsPerMinute {
		t.Errorf("%d messages reported, want %d", texts, TextsPerMinute)
	}
	if lines := log.about("text message"); len(lines) != 1 {
		t.Errorf("log lines about the refusals: %q, want one", lines)
	}
}

// TestTextLimitMinutePasses: after a minute an address may send again;
// the refusals of a flood get a line a minute at most, each counting those
// since the previous line, and the count not yet written is written when
// the agent stops (flush).
func TestTextLimitMinutePasses(t *testing.T) {
	var log lineLog
	clock := newFakeClock()
	l := newTextLimiter(log.logf)
	l.setClock(clock.Now)
	mallory, alice := netip.MustParseAddr("192.0.2.7"), netip.MustParseAddr("192.0.2.8")
	count := func(addr netip.Addr, n int) (allowed int) {
		for range n {
			if l.allow(addr) {
				allowed++
			}
			clock.advance(100 * time.Millisecond)
		}
		return allowed
	}
	if got := count(mallory, 100); got != TextsPerMinute {
		t.Errorf("%d of 100 messages allowed in 10 s, want %d", got, TextsPerMinute)
	}
	if got := count(alice, 3); got != 3 {
		t.Errorf("another address: %d of 3 allowed", got)
	}
	if lines := log.about("192.0.2.7"); len(lines) != 1 || !strings.HasPrefix(lines[0], "refused 1 text message from 192.0.2.7:") {
		t.Fatalf("lines after the first flood: %q", log.lines)
	}
	clock.advance(time.Minute)
	if got := count(mallory, 15); got != TextsPerMinute {
		t.Errorf("a minute later, %d of 15 allowed, want %d", got, TextsPerMinute)
	}
	lines := log.about("192.0.2.7")
	if len(lines) != 2 || !strings.HasPrefix(lines[1], "refused 89 text messages from 192.0.2.7 since ") {
		t.Fatalf("lines after the second flood: %q", lines)
	}
	l.flush()
	lines = log.about("192.0.2.7")
	if len(lines) != 3 || !strings.HasPrefix(lines[2], "refused 5 text messages from 192.0.2.7 since ") {
		t.Errorf("lines after flush: %q", lines)
	}
	if lines := log.about("192.0.2.8"); len(lines) != 0 {
		t.Errorf("an address under the limit logged: %q", lines)
	}
	l.flush()
	if n := len(log.about("text message")); n != 3 {
		t.Errorf("a second flush wrote %d lines in all, want 3", n)
	}
}

// TestTextLimitTableFull: once maxTextAddrs addresses are counted, a new
// one is refused (one line for all of them) until a minute frees room.
func TestTextLimitTableFull(t *testing.T) {
	var log lineLog
	clock := newFakeClock()
	l := newTextLimiter(log.logf)
	l.setClock(clock.Now)
	base := netip.MustParseAddr("10.0.0.0")
	addr := base
	for range maxTextAddrs {
		addr = addr.Next()
		if !l.allow(addr) {
			t.Fatalf("%v refused with room left", addr)
		}
	}
	newcomer := netip.MustParseAddr("192.0.2.1")
	for range 3 {
		if l.allow(newcomer) {
			t.Fatal("a new address taken with the table full")
		}
	}
	if !l.allow(base.Next()) {
		t.Error("a counted address refused under its limit")
	}
	if lines := log.about("beyond"); len(lines) != 1 || !strings.HasPrefix(lines[0], "refused 1 text message from addresses beyond the 4096 counted") {
		t.Errorf("lines: %q", lines)
	}
	clock.advance(time.Minute + time.Second)
	if !l.allow(newcomer) {
		t.Error("a new address refused a minute later")
	}
	if lines := log.about("beyond"); len(lines) != 2 || !strings.HasPrefix(lines[1], "refused 2 text messages from addresses beyond") {
		t.Errorf("lines a minute later: %q", lines)
	}
}

// TestTextLimitSeenByLocalSendSender: a lanshare agent sending messages
// over LocalSend to another agent is refused over the limit with the same
// line as over lanshare's protocol, not as too many PIN attempts.
func TestTextLimitSeenByLocalSendSender(t *testing.T) {
	ta := startLocalSendAgent(t, nil)
	target := LocalSendTarget{Addr: netip.MustParseAddrPort(ta.LocalSendAddr().String()), Fingerprint: ta.LocalSendFingerprint(), Alias: "bob"}
	opt := lsOptions(t)
	for i := range TextsPerMinute {
		if _, err := SendLocalSend(context.Background(), target, []Item{textItem(t, "hi")}, opt); err != nil {
			t.Fatalf("message %d: %v", i, err)
		}
	}
	_, err := SendLocalSend(context.Background(), target, []Item{textItem(t, "one more")}, opt)
	if re := refusal(t, err); re.Code != proto.CodeTooMany || errors.Is(err, ErrPINAttempts) {
		t.Errorf("over the limit: %v", err)
	}
	if want := "bob refused the message: too many messages; try again in a minute"; err.Error() != want {
		t.Errorf("the sender says %q, want %q", err, want)
	}
}
