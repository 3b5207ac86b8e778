package peer

import (
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// Text messages are shown and logged, so a peer that sends them without
// end would flood the receiver's log and notifications. Each remote
// address (an IPv6 one by its /64, see limitKey) may send TextsPerMinute
// a minute, over lanshare's protocol and
// LocalSend's together (one limiter per agent, so that alternating the
// protocols does not double the allowance); maxTextAddrs addresses are
// counted at once, and a new address beyond them is refused until a
// minute frees room. A message over the limit is refused (lanshare:
// proto.CodeTooMany; LocalSend: 429), and the refusals are not logged one
// line each: a line about an address says how many were refused since the
// previous one, at most one line a minute.

// Limits of text messages.
const (
	// TextsPerMinute is how many text messages one remote address may
	// send a minute, both protocols together.
	TextsPerMinute = 10
	// maxTextAddrs bounds the addresses counted at once.
	maxTextAddrs = 4096
	// textWindow is the period the limit counts over.
	textWindow = time.Minute
)

// beyondWho names, in the log, the addresses refused because the
// table was full.
var beyondWho = fmt.Sprintf("addresses beyond the %d counted", maxTextAddrs)

// textsReason is the reason a message over the limit is refused with.
const textsReason = "too many messages; try again in a minute"

// textLimiter counts the text messages of each remote address. Its
// methods are safe for concurrent use.
type textLimiter struct {
	logf func(format string, args ...any) // nil: nothing is logged

	mu  sync.Mutex
	now func() time.Time // the clock, injectable for tests
	// addrs holds the addresses counted: those that sent in the last
	// minute, and those whose refusals wait for their line.
	addrs map[netip.Addr]*textCount
	// beyond counts the messages refused because the table was full.
	beyond textCount
	swept  time.Time
}

// textCount is one address's minute.
type textCount struct {
	start   time.Time // when its minute began: its first message in it
	n       int       // messages in the minute, refused ones included
	refused int       // refused since the last line about it
	logged  time.Time // when the last line about it was written
}

func newTextLimiter(logf func(format string, args ...any)) *textLimiter {
	return &textLimiter{logf: logf, now: time.Now, addrs: map[netip.Addr]*textCount{}}
}

// setClock makes the limiter read the time from now (tests).
func (l *textLimiter) setClock(now func() time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.now = now
}

// allow counts a text message from remote and reports whether it may be
// taken. A refusal is counted for the address's next line in the log,
// which is written now if no line about it was written in the last
// minute.
func (l *textLimiter) allow(remote netip.Addr) bool {
	remote = limitKey(remote)
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	if now.Sub(l.swept) >= textWindow/6 || len(l.addrs) >= maxTextAddrs && now.Sub(l.swept) >= time.Second {
		l.sweepLocked(now)
	}
	c := l.addrs[remote]
	if c == nil {
		if len(l.addrs) >= maxTextAddrs {
			l.refuseLocked(&l.beyond, beyondWho, now)
			return false
		}
		c = &textCount{start: now}
		l.addrs[remote] = c
	}
	if now.Sub(c.start) >= textWindow {
		c.start, c.n = now, 0
	}
	c.n++
	if c.n <= TextsPerMinute {
		return true
	}
	l.refuseLocked(c, limitWho(remote), now)
	return false
}

// check is allow as a policy's answer: nil, or the refusal, which wraps
// ErrTooManyTexts and a *RefusedError of proto.CodeTooMany.
func (l *textLimiter) check(remote netip.Addr) error {
	if l.allow(remote) {
		return nil
	}
	return fmt.Errorf("%w: %w", ErrTooManyTexts, &RefusedError{Peer: "we", Code: proto.CodeTooMany, Reason: textsReason})
}

// limitTexts applies pol.Text to an offer of entries that everything
// else accepted so far: the answer, and pol.Text's refusal (nil when it
// let the message through, or the offer holds none).
func limitTexts(a proto.Answer, entries []proto.Entry, pol Policy) (proto.Answer, error) {
	if a.Code != proto.CodeOK || pol.Text == nil {
		return a, nil
	}
	for _, e := range entries {
		if e.Kind == proto.KindText {
			if err := pol.Text(); err != nil {
				return refusalAnswer(err), err
			}
			break
		}
	}
	return a, nil
}

// refuseLocked counts a refusal of c's, and writes its line if none was
// written in the last minute.
func (l *textLimiter) refuseLocked(c *textCount, who string, now time.Time) {
	c.refused++
	if c.logged.IsZero() || now.Sub(c.logged) >= textWindow {
		l.reportLocked(c, who, now)
	}
}

// reportLocked writes the line of c's refusals not yet reported.
func (l *textLimiter) reportLocked(c *textCount, who string, now time.Time) {
	if l.logf != nil {
		since := ""
		if !c.logged.IsZero() {
			since = " since " + c.logged.Local().Format("15:04:05")
		}
		l.logf("refused %d text %s from %s%s: over the limit of %d a minute (a line a minute at most)",
			c.refused, pluralWord(c.refused, "message"), who, since, TextsPerMinute)
	}
	c.refused, c.logged = 0, now
}

// sweepLocked writes the lines that are due, and forgets the addresses
// whose minute is over and that have no refusal waiting for its line.
// An address whose last line is under a minute old stays, so that its
// next line waits out the minute.
func (l *textLimiter) sweepLocked(now time.Time) {
	l.swept = now
	for addr, c := range l.addrs {
		lineDue := c.logged.IsZero() || now.Sub(c.logged) >= textWindow
		if c.refused > 0 && lineDue {
			l.reportLocked(c, limitWho(addr), now)
			continue
		}
		if now.Sub(c.start) >= textWindow && c.refused == 0 && (c.logged.IsZero() || now.Sub(c.logged) >= textWindow) {
			delete(l.addrs, addr)
		}
	}
	if l.beyond.refused > 0 && (l.beyond.logged.IsZero() || now.Sub(l.beyond.logged) >= textWindow) {
		l.reportLocked(&l.beyond, beyondWho, now)
	}
}

// flush writes the lines of the refusals not yet reported, whenever the
// last line was: the agent is stopping.
func (l *textLimiter) flush() {
	l.mu.Lock()
	defer l.mu.Unlock()
	now := l.now()
	for addr, c := range l.addrs {
		if c.refused > 0 {
			l.reportLocked(c, limitWho(addr), now)
		}
	}
	if l.beyond.refused > 0 {
		l.reportLocked(&l.beyond, beyondWho, now)
	}
}

// addrKey is the address the limiter counts a connection from remote
// under: the IP address as LocalSend's server sees it (remoteAddr), so
// that both protocols count alike.
func addrKey(remote net.Addr) netip.Addr {
	if remote == nil {
		return netip.Addr{}
	}
	ap, err := netip.ParseAddrPort(remote.String())
	if err != nil {
		return netip.Addr{}
	}
	return ap.Addr().Unmap()
}

// textsOverLimit reports whether a LocalSend receiver's 429 is a lanshare
// agent's refusal of a text message over its limit: LocalSend's 429
// otherwise means too many wrong PINs, and only the message tells them
// apart.
func textsOverLimit(resp *http.Response) bool {
	e, err := localsend.DecodeError(resp.Body)
	return err == nil && e.Message == textsReason
}
