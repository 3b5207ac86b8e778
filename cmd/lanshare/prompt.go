package main

import (
	"errors"
	"fmt"
	"io"
	"os"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// prompter asks the owner on serve's terminal about the offers that wait
// for an answer (serve --accept ask), one at a time, oldest first. An
// offer answered meanwhile with `lanshare accept` or `decline`, or that
// expired, is dropped from the prompt.
type prompter struct {
	tty   *os.File // the controlling terminal, read with deadlines
	out   io.Writer
	queue chan peer.PendingOffer

	agent  *peer.Agent // set by start
	wg     sync.WaitGroup
	stop   chan struct{}
	closer sync.Once
}

// pollEvery is how often the prompt looks whether its offer is still
// pending while it waits for a key.
const pollEvery = 250 * time.Millisecond

// newPrompter opens the terminal for prompts, or returns nil when it
// cannot be read with deadlines (offers then wait for `lanshare accept`).
func newPrompter(out io.Writer, maxPending int) *prompter {
	tty, err := os.OpenFile("/dev/tty", os.O_RDONLY, 0)
	if err != nil {
		return nil
	}
	if err := tty.SetReadDeadline(time.Time{}); err != nil {
		tty.Close()
		return nil
	}
	return &prompter{tty: tty, out: out, queue: make(chan peer.PendingOffer, maxPending), stop: make(chan struct{})}
}

// offer queues p for a prompt; it reports false when the queue is full.
func (p *prompter) offer(o peer.PendingOffer) bool {
	select {
	case p.queue <- o:
		return true
	default:
		return false
	}
}

// start prompts for the queued offers until close.
func (p *prompter) start(agent *peer.Agent) {
	p.agent = agent
	p.wg.Add(1)
	go func() {
		defer p.wg.Done()
		for {
			select {
			case <-p.stop:
				return
			case o := <-p.queue:
				p.ask(o)
			}
		}
	}()
}

// close stops the prompts and waits for them. Safe to call twice.
func (p *prompter) close() {
	p.closer.Do(func() {
		close(p.stop)
		p.tty.Close() // ends a read in progress
		p.wg.Wait()
	})
}

func (p *prompter) stillPending(id string) bool {
	return slices.ContainsFunc(p.agent.Pending(), func(o peer.PendingOffer) bool { return o.ID == id })
}

// ask prompts for o until the owner answers, o is no longer pending, or
// the prompter stops.
func (p *prompter) ask(o peer.PendingOffer) {
	if !p.stillPending(o.ID) {
		return
	}
	// What was typed before this offer was shown is not its answer (a
	// "y" meant for an offer that expired meanwhile would accept this one).
	p.discardTypeAhead()
	fmt.Fprintf(p.out, "offer %s: %s\n", o.ID, describeOffer(o))
	live, _ := p.out.(*liveBars)
	for {
		left := time.Until(o.Expires).Round(time.Second)
		q := fmt.Sprintf("accept? [y]es, [n]o, [t]rust the sender and accept (%s left): ", left)
		if live != nil {
			// Under the bars, and out of the way of log lines: they
			// are written above it.
			live.showPrompt(q, fmt.Sprintf("accept? y/n/t (%s): ", left))
		} else {
			fmt.Fprint(p.out, q)
		}
		line, err := p.readLine(o.ID)
		if live != nil {
			live.promptAnswered(err == nil)
		}
		if err != nil {
			if live == nil {
				fmt.Fprintf(p.out, "\n")
			}
			if errors.Is(err, peer.ErrNoPending) {
				fmt.Fprintf(p.out, "offer %s was answered elsewhere, or expired\n", o.ID)
			}
			return
		}
		var d peer.Decision
		switch strings.ToLower(strings.TrimSpace(line)) {
		case "y", "yes":
			d = peer.Decision{Accept: true}
		case "t", "trust":
			d = peer.Decision{Accept: true, Trust: true}
		case "n", "no":
			d = peer.Decision{Reason: ""}
		default:
			continue
		}
		if err := p.agent.Decide(o.ID, d); err != nil {
			fmt.Fprintf(p.out, "offer %s was answered elsewhere, or expired\n", o.ID)
			return
		}
		switch {
		case d.Trust:
			fmt.Fprintf(p.out, "accepted offer %s, and trusted %s (%s)\n", o.ID, peer.Escape(o.From), senderTag(o.PeerID))
		case d.Accept:
			fmt.Fprintf(p.out, "accepted offer %s\n", o.ID)
		default:
			fmt.Fprintf(p.out, "declined offer %s\n", o.ID)
		}
		return
	}
}

// typeAheadWait is how long discardTypeAhead waits for input typed
// already; typeAheadReads bounds the reads of a terminal that keeps
// sending.
const (
	typeAheadWait  = 20 * time.Millisecond
	typeAheadReads = 64
)

// discardTypeAhead reads and drops the lines typed on the terminal that
// no prompt read yet.
func (p *prompter) discardTypeAhead() {
	buf := make([]byte, 256)
	for range typeAheadReads {
		_ = p.tty.SetReadDeadline(time.Now().Add(typeAheadWait))
		if _, err := p.tty.Read(buf); err != nil {
			return
		}
	}
}

// readLine reads one line from the terminal; it fails with ErrNoPending
// when the offer id stops waiting first, and with the read's error when
// the prompter stops.
func (p *prompter) readLine(id string) (string, error) {
	var line []byte
	buf := make([]byte, 256)
	for {
		_ = p.tty.SetReadDeadline(time.Now().Add(pollEvery))
		n, err := p.tty.Read(buf)
		line = append(line, buf[:n]...)
		if i := strings.IndexByte(string(line), '\n'); i >= 0 {
			return string(line[:i]), nil
		}
		switch {
		case errors.Is(err, os.ErrDeadlineExceeded):
			if !p.stillPending(id) {
				return "", peer.ErrNoPending
			}
		case err != nil:
			return "", err
		case len(line) > 4<<10:
			line = line[:0]
		}
	}
}
