package main

import (
	"fmt"
	"io"
	"os"
	"strings"
	"sync"
	"time"
	"unicode/utf8"

	"github.com/cheggaaa/pb/v3"
	"golang.org/x/term"

	"github.com/lanshare/lanshare/peer"
)

// liveBars keeps a pb/v3 bar per incoming transfer at the bottom of
// serve's terminal, under its log. serve's log lines are written through
// it: it erases the bars, writes the line, and draws the bars again, so
// that when a transfer ends its bar gives way to its log lines.
type liveBars struct {
	w     io.Writer
	width int

	mu    sync.Mutex
	bars  []*transferBar // in the order the transfers started
	drawn int            // lines of bars on the screen now
	// prompt is the question of serve --accept ask, drawn under the
	// bars without a newline (the cursor waits at its end), while it
	// waits for an answer.
	prompt string

	stop, done chan struct{}
}

type transferBar struct {
	id       uint64
	bar      *pb.ProgressBar
	progress func() peer.InProgress
}

// serveBarTemplate shows who sends, files done of all, bytes, speed and
// the file arriving.
const serveBarTemplate = `{{string . "who"}} {{string . "files"}} {{counters . }} {{bar . "[" "=" ">" " " "]"}} {{speed . "%s/s" "?"}} {{string . "file"}}`

// liveRedraw is how often the bars are redrawn.
const liveRedraw = 200 * time.Millisecond

func newLiveBars(w io.Writer) *liveBars {
	l := &liveBars{w: w, width: 80, stop: make(chan struct{}), done: make(chan struct{})}
	if f, ok := w.(*os.File); ok {
		if cols, _, err := term.GetSize(int(f.Fd())); err == nil && cols > 20 {
			l.width = cols
		}
	}
	go l.run() // owned by l: Close waits for it
	return l
}

func (l *liveBars) run() {
	defer close(l.done)
	tick := time.NewTicker(liveRedraw)
	defer tick.Stop()
	for {
		select {
		case <-l.stop:
			return
		case <-tick.C:
			l.mu.Lock()
			// Under a prompt, the answer being typed stays on the
			// screen: the bars wait for the next log line.
			if l.prompt == "" {
				l.erase()
				l.draw()
			}
			l.mu.Unlock()
		}
	}
}

// Write writes one log line above the bars.
func (l *liveBars) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	n, err := l.w.Write(p)
	l.draw()
	return n, err
}

// add gives transfer r a bar.
func (l *liveBars) add(r peer.Receiving) {
	bar := pb.ProgressBarTemplate(serveBarTemplate).New(0)
	bar.Set(pb.Bytes, true)
	bar.Set(pb.SIBytesPrefix, true)
	bar.Set(pb.Static, true) // drawn by l, not by itself
	bar.SetWidth(l.width - 1)
	bar.Start()
	tb := &transferBar{id: r.ID, bar: bar, progress: r.Progress}
	tb.refresh()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.bars = append(l.bars, tb)
}

// refresh sets the bar to the transfer's progress now.
func (tb *transferBar) refresh() {
	p := tb.progress()
	who := "?"
	if p.From != "" {
		who = peer.Escape(p.From)
	}
	if p.Streaming {
		tb.bar.SetTotal(0) // a pipe: no total yet
	} else {
		tb.bar.SetTotal(int64(p.Total))
	}
	tb.bar.SetCurrent(int64(p.Bytes))
	tb.bar.Set("who", "from "+who)
	tb.bar.Set("files", fmt.Sprintf("%d/%d", p.Files, p.FilesTotal))
	tb.bar.Set("file", peer.Escape(p.Path))
}

// end removes transfer id's bar; its log lines follow.
func (l *liveBars) end(id uint64) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for i, b := range l.bars {
		if b.id == id {
			l.erase()
			l.bars = append(l.bars[:i], l.bars[i+1:]...)
			l.draw()
			return
		}
	}
}

// Close stops redrawing and erases the bars.
func (l *liveBars) Close() {
	close(l.stop)
	<-l.done
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	l.bars = nil
}

// promptRoom is the room a prompt leaves on its line for the answer.
const promptRoom = 8

// showPrompt draws a question under the bars, the cursor at its end:
// long, or short where long and an answer would not fit on one line
// (erase counts on its being one), cut to fit if need be.
func (l *liveBars) showPrompt(long, short string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.erase()
	s := long
	if utf8.RuneCountInString(s)+promptRoom >= l.width {
		s = short
	}
	if r := []rune(s); len(r)+promptRoom >= l.width {
		s = string(r[:max(l.width-promptRoom, 1)])
	}
	l.prompt = s
	l.draw()
}

// promptAnswered says that the prompt is gone: answered with a line
// (typed, echoed, ended by Enter: the cursor is under it, and the line
// is erased with the bars), or not (the cursor is still on it).
func (l *liveBars) promptAnswered(typed bool) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.prompt == "" {
		return
	}
	if typed {
		fmt.Fprint(l.w, "\x1b[1A") // back on the prompt's line
	}
	l.erase()
	l.prompt = ""
	l.draw()
}

// erase moves to the first line of the bars and clears to the end of the
// screen, the prompt's line included.
func (l *liveBars) erase() {
	switch {
	case l.prompt != "" && l.drawn > 0:
		fmt.Fprintf(l.w, "\r\x1b[%dA\x1b[J", l.drawn)
	case l.prompt != "":
		fmt.Fprint(l.w, "\r\x1b[J")
	case l.drawn > 0:
		fmt.Fprintf(l.w, "\x1b[%dA\r\x1b[J", l.drawn)
	}
	l.drawn = 0
}

// draw writes every bar on a line of its own, cut to the terminal's width
// so that no line wraps.
func (l *liveBars) draw() {
	var b strings.Builder
	for _, tb := range l.bars {
		tb.refresh()
		line := []rune(tb.bar.String())
		if len(line) > l.width-1 {
			line = line[:l.width-1]
		}
		b.WriteString(string(line))
		b.WriteString("\n")
	}
	b.WriteString(l.prompt)
	if b.Len() > 0 {
		_, _ = io.WriteString(l.w, b.String())
		l.drawn = len(l.bars)
	}
}
