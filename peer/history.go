package peer

import (
	"bufio"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"sync"
	"time"
)

// History files in the config directory: the current one, and the one
// before it, kept when the current one reaches HistoryMaxBytes.
const (
	historyFile    = "history.jsonl"
	historyOldFile = "history.1.jsonl"
	// HistoryMaxBytes bounds the current history file; with the previous
	// one the history takes at most twice that.
	HistoryMaxBytes = 1 << 20
)

// Arrival is one received file, as the history records it. Field names
// are stable (they are the file format and `history --json`).
type Arrival struct {
	Time    time.Time `json:"time"`
	From    string    `json:"from"` // the sender's display name, as it said
	ID      string    `json:"id"`   // the sender's id, from its key
	Remote  string    `json:"remote"`
	Path    string    `json:"path"`     // as offered
	SavedAs string    `json:"saved_as"` // under the shared folder
	Size    uint64    `json:"size"`
}

// History is the agent's record of what arrived: one JSON object per line
// in the config directory, bounded in size. Safe for concurrent use within
// one process.
type History struct {
	dir string
	mu  sync.Mutex
}

// OpenHistory returns the history kept in dir.
func OpenHistory(dir string) *History { return &History{dir: dir} }

// Append records arrivals, rotating the file when it is full.
func (h *History) Append(arrivals ...Arrival) error {
	if len(arrivals) == 0 {
		return nil
	}
	h.mu.Lock()
	defer h.mu.Unlock()
	path := filepath.Join(h.dir, historyFile)
	if fi, err := os.Stat(path); err == nil && fi.Size() >= HistoryMaxBytes {
		if err := os.Rename(path, filepath.Join(h.dir, historyOldFile)); err != nil {
			return fmt.Errorf("rotating history: %w", err)
		}
	}
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("writing history: %w", err)
	}
	var buf []byte
	for _, a := range arrivals {
		line, err := json.Marshal(a)
		if err != nil {
			f.Close()
			return err
		}
		buf = append(append(buf, line...), '\n')
	}
	// One write per batch, so lines of concurrent agents do not interleave.
	_, err = f.Write(buf)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("writing history: %w", err)
	}
	return nil
}

// Read returns every arrival recorded, oldest first. Lines that do not
// parse (a file cut by a crash) are skipped.
func (h *History) Read() ([]Arrival, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	var out []Arrival
	for _, name := range []string{historyOldFile, historyFile} {
		f, err := os.Open(filepath.Join(h.dir, name))
		if errors.Is(err, fs.ErrNotExist) {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
		sc := bufio.NewScanner(f)
		sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
		for sc.Scan() {
			var a Arrival
			if json.Unmarshal(sc.Bytes(), &a) == nil {
				out = append(out, a)
			}
		}
		err = sc.Err()
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading history: %w", err)
		}
	}
	return out, nil
}
