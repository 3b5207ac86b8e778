package peer

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// The history is kept in segment files in the config directory: the
// current one, history.jsonl, and up to HistorySegments-1 older ones,
// history.1.jsonl (the newest of them) to history.15.jsonl. When the
// current segment reaches HistorySegmentBytes it becomes history.1.jsonl,
// the others move up one, and the oldest is dropped; so the history takes
// at most HistoryMaxBytes (32 MiB, and a record line more per segment). A
// record is one transfer's files under one header (time, sender, id,
// address): about 25 bytes a file plus its path (and the name it was
// saved as, when another), so the history holds the last 100,000 files
// unless their paths average more than about 300 bytes (with paths of 40
// bytes, some 500,000 files); a transfer of 5,000 such files takes
// 330 kB, and a rotation drops only the oldest sixteenth.
const (
	historyFile = "history.jsonl"
	// HistorySegmentBytes is the size at which the current segment is
	// rotated.
	HistorySegmentBytes = 2 << 20
	// HistorySegments is how many segment files the history keeps, the
	// current one included.
	HistorySegments = 16
	// HistoryMaxBytes bounds the history's files together (give or take
	// a record line per segment, at most historyLineBytes).
	HistoryMaxBytes = HistorySegments * HistorySegmentBytes
	// historyLineBytes is about where a transfer's record is cut into
	// several lines, so a segment overshoots its size by no more.
	historyLineBytes = 256 << 10
)

// Arrival is one received file, as the history records it. Field names
// are stable (they are `history --json`).
type Arrival struct {
	Time    time.Time `json:"time"`
	From    string    `json:"from"` // the sender's display name, as it said
	ID      string    `json:"id"`   // the sender's id, from its key
	Remote  string    `json:"remote"`
	Path    string    `json:"path"`     // as offered
	SavedAs string    `json:"saved_as"` // under the shared folder
	Size    uint64    `json:"size"`
	// Text is a text message that arrived (Path is then empty, Size is
	// its length in bytes, and SavedAs names the file it was also saved
	// as, if it was), as sent: escape it before showing it (EscapeText).
	// At most HistoryTextMax bytes of it are kept. (Records written
	// before 2026-12-03 hold no size for a message: 0.)
	Text string `json:"text,omitempty"`
}

// HistoryTextMax is how much of a text message the history keeps: all of
// one of MaxTextLen.
const HistoryTextMax = MaxTextLen

// historyRecord is one line of a history segment: the files of one
// transfer (or a part of them) under one header. A line without files is
// one Arrival, as versions before segments wrote them.
type historyRecord struct {
	Time   time.Time      `json:"time"`
	From   string         `json:"from"`
	ID     string         `json:"id"`
	Remote string         `json:"remote"`
	Files  []historyEntry `json:"files,omitempty"`
	// Text: a line of one text message.
	Text string `json:"text,omitempty"`
	// A line of the older format: one file.
	Path    string `json:"path,omitempty"`
	SavedAs string `json:"saved_as,omitempty"`
	Size    uint64 `json:"size,omitempty"`
}

// historyEntry is one file of a record; SavedAs is left out when it is
// Path.
type historyEntry struct {
	Path    string `json:"p"`
	SavedAs string `json:"s,omitempty"`
	Size    uint64 `json:"n"`
}

// History is the agent's record of what arrived, in the config directory,
// bounded in size (see HistoryMaxBytes). Safe for concurrent use within
// one process.
type History struct {
	dir string
	// segmentBytes and segments are HistorySegmentBytes and
	// HistorySegments; tests make them small.
	segmentBytes int64
	segments     int
	mu           sync.Mutex
}

// OpenHistory returns the history kept in dir.
func OpenHistory(dir string) *History {
	return &History{dir: dir, segmentBytes: HistorySegmentBytes, segments: HistorySegments}
}

// segment is the name of segment i: 0 is the current one.
func segment(i int) string {
	if i == 0 {
		return historyFile
	}
	return fmt.Sprintf("history.%d.jsonl", i)
}

// Append records arrivals: those that share a time, sender and address
// (one transfer) go into one record, cut into lines of about
// historyLineBytes. The current segment is rotated whenever it is full,
// also between the lines of one transfer.
func (h *History) Append(arrivals ...Arrival) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, line := range historyLines(arrivals) {
		if err := h.writeLine(line); err != nil {
			return fmt.Errorf("writing history: %w", err)
		}
	}
	return nil
}

// historyLines encodes arrivals as record lines, each ending in "\n".
func historyLines(arrivals []Arrival) [][]byte {
	var lines [][]byte
	var rec historyRecord
	size := 0
	flush := func() {
		if len(rec.Files) == 0 {
			return
		}
		b, err := json.Marshal(rec)
		if err == nil { // a record of strings and numbers always encodes
			lines = append(lines, append(b, '\n'))
		}
		rec.Files, size = nil, 0
	}
	for _, a := range arrivals {
		if a.Text != "" {
			flush()
			n := a.Size
			if n == 0 {
				n = uint64(len(a.Text)) // as sent, however much is kept
			}
			b, err := json.Marshal(historyRecord{Time: a.Time, From: a.From, ID: a.ID, Remote: a.Remote, Text: cutUTF8(a.Text, HistoryTextMax), SavedAs: a.SavedAs, Size: n})
			if err == nil {
				lines = append(lines, append(b, '\n'))
			}
			rec = historyRecord{}
			continue
		}
		if !a.Time.Equal(rec.Time) || a.From != rec.From || a.ID != rec.ID || a.Remote != rec.Remote || size >= historyLineBytes {
			flush()
			rec = historyRecord{Time: a.Time, From: a.From, ID: a.ID, Remote: a.Remote}
		}
		f := historyEntry{Path: a.Path, Size: a.Size}
		if a.SavedAs != a.Path {
			f.SavedAs = a.SavedAs
		}
		rec.Files = append(rec.Files, f)
		size += len(f.Path) + len(f.SavedAs) + 32
	}
	flush()
	return lines
}

// writeLine appends one line to the current segment, rotating it first
// when it is full. One write per line, so lines of concurrent agents do
// not interleave.
func (h *History) writeLine(line []byte) error {
	path := filepath.Join(h.dir, historyFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() >= h.segmentBytes {
		if err := h.rotate(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write(line)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	return err
}

// rotate drops the oldest segment and moves the others up one.
func (h *History) rotate() error {
	if err := os.Remove(filepath.Join(h.dir, segment(h.segments-1))); err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("rotating: %w", err)
	}
	for i := h.segments - 2; i >= 0; i-- {
		err := os.Rename(filepath.Join(h.dir, segment(i)), filepath.Join(h.dir, segment(i+1)))
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			return fmt.Errorf("rotating: %w", err)
		}
	}
	return nil
}

// Read returns every arrival recorded, oldest first. Lines that do not
// parse (a file cut by a crash) are skipped.
func (h *History) Read() ([]Arrival, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Arrival
	for i := h.segments - 1; i >= 0; i-- {
		f, err := os.Open(filepath.Join(h.dir, segment(i)))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
		// A line is about historyLineBytes, and one more path of at
		// most 4 kB escaped; a longer one is garbage, skipped. A segment
		// is read up to twice its size: one grown past that was not
		// written by an agent.
		err = eachLine(io.LimitReader(f, 2*h.segmentBytes+2*historyLineBytes), 2*historyLineBytes+(64<<10), func(line []byte) {
			var r historyRecord
			if json.Unmarshal(line, &r) != nil {
				return
			}
			if r.Files == nil {
				out = append(out, Arrival{Time: r.Time, From: r.From, ID: r.ID, Remote: r.Remote, Path: r.Path, SavedAs: r.SavedAs, Size: r.Size, Text: r.Text})
				return
			}
			for _, fl := range r.Files {
				saved := fl.SavedAs
				if saved == "" {
					saved = fl.Path
				}
				out = append(out, Arrival{Time: r.Time, From: r.From, ID: r.ID, Remote: r.Remote, Path: fl.Path, SavedAs: saved, Size: fl.Size})
			}
		})
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading history %s: %w", segment(i), err)
		}
	}
	return out, nil
}

// eachLine calls fn with each line of r (without its newline) of at most
// max bytes; longer lines are skipped whole.
func eachLine(r io.Reader, max int, fn func([]byte)) error {
	br := bufio.NewReaderSize(r, max)
	skipping := false
	for {
		line, err := br.ReadSlice('\n')
		switch {
		case errors.Is(err, bufio.ErrBufferFull):
			skipping = true
			continue
		case skipping:
			skipping = false
		case len(line) > 0:
			fn(bytes.TrimSuffix(line, []byte("\n")))
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}
