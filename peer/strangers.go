package peer

import (
	"bufio"
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// StrangerBudget is how much all strangers together (senders whose id is
// not trusted in known_peers) may send to an agent per rolling day: a
// fixed number of bytes, or a percentage of the shared folder's free
// space. The zero StrangerBudget is no limit.
//
// New keys are free, so a budget per sender id would be no limit at all:
// the budget is one pool that every stranger draws on.
type StrangerBudget struct {
	Bytes   uint64 // a fixed cap per day; used when Percent is 0
	Percent int    // 1–100: this share of the space strangers found free
}

// DefaultStrangerBudget lets strangers take a tenth of the free space a
// day: a drop box that works for any ordinary send, and that a stranger
// on the LAN cannot fill in one go (nine days of a flood still leave
// nearly 40% of the space free, and the owner notices long before).
var DefaultStrangerBudget = StrangerBudget{Percent: 10}

// Off reports whether b sets no limit.
func (b StrangerBudget) Off() bool { return b.Bytes == 0 && b.Percent == 0 }

// String says b as a person reads it: "off", "2.0 GB a day" or "10% of
// the free space a day".
func (b StrangerBudget) String() string {
	switch {
	case b.Off():
		return "off"
	case b.Percent > 0:
		return fmt.Sprintf("%d%% of the free space a day", b.Percent)
	}
	return FormatBytes(b.Bytes) + " a day"
}

func (b StrangerBudget) validate() error {
	if b.Percent < 0 || b.Percent > 100 {
		return fmt.Errorf("stranger budget of %d%%: want 1%% to 100%%", b.Percent)
	}
	if b.Percent > 0 && b.Bytes > 0 {
		return errors.New("stranger budget: a size or a percentage, not both")
	}
	return nil
}

// budgetWindow is the rolling window of a StrangerBudget, kept in hourly
// buckets: a byte received counts against the budget for 23 to 24 hours.
const (
	budgetWindow = 24 * time.Hour
	budgetBucket = time.Hour
)

// strangersFile keeps the bytes strangers sent, per hour of the last day,
// in the config directory, so that a restart does not refill the budget.
// It holds at most one line per hour of the window.
const strangersFile = "strangers"

// maxStrangersFile bounds what is read of the strangers file.
const maxStrangersFile = 16 << 10

// strangerPool accounts what strangers send against the StrangerBudget.
// Safe for concurrent use.
type strangerPool struct {
	path   string
	budget StrangerBudget
	free   func() (uint64, error) // free space of the shared folder
	now    func() time.Time

	mu    sync.Mutex
	hours map[int64]uint64 // bytes charged per hour (Unix time / budgetBucket)
}

// strangerCharge is one transfer's draw on the pool: n bytes, of which
// fixed (entryCost per entry) stay charged whatever crosses.
type strangerCharge struct {
	hour  int64
	n     uint64
	fixed uint64
}

// entryCost is what each file and folder of an offer counts against the
// budget besides its bytes: about the block and inode it takes on disk.
// Without it, offers of empty files and folders passed even a spent
// budget (they need no bytes) and could fill the disk's inodes and
// directory blocks.
const entryCost = 4 << 10

// openStrangerPool reads the pool's state kept in dir. A missing file is
// an empty pool; one that does not parse is an error that names it.
func openStrangerPool(dir string, budget StrangerBudget, free func() (uint64, error)) (*strangerPool, error) {
	p := &strangerPool{path: filepath.Join(dir, strangersFile), budget: budget, free: free, now: time.Now, hours: map[int64]uint64{}}
	f, err := os.Open(p.path)
	if errors.Is(err, fs.ErrNotExist) {
		return p, nil
	}
	if err != nil {
		return nil, fmt.Errorf("reading the strangers' budget: %w", err)
	}
	defer f.Close()
	sc := bufio.NewScanner(io.LimitReader(f, maxStrangersFile))
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		h, b, ok := strings.Cut(line, " ")
		hour, err1 := strconv.ParseInt(h, 10, 64)
		bytes, err2 := strconv.ParseUint(strings.TrimSpace(b), 10, 64)
		if !ok || err1 != nil || err2 != nil {
			return nil, fmt.Errorf("%s line %d: want \"HOUR BYTES\" (delete the file to start the day afresh)", p.path, n)
		}
		p.hours[hour] = addSat(p.hours[hour], bytes)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("reading %s: %w", p.path, err)
	}
	p.pruneLocked(p.now())
	return p, nil
}

func hourOf(t time.Time) int64 { return t.Unix() / int64(budgetBucket/time.Second) }

// pruneLocked forgets the hours that left the window.
func (p *strangerPool) pruneLocked(now time.Time) {
	oldest := hourOf(now.Add(-budgetWindow)) + 1
	for h := range p.hours {
		if h < oldest || h > hourOf(now) {
			delete(p.hours, h)
		}
	}
}

// usedLocked returns the bytes charged within the window.
func (p *strangerPool) usedLocked(now time.Time) uint64 {
	p.pruneLocked(now)
	var used uint64
	for _, b := range p.hours {
		used = addSat(used, b)
	}
	return used
}

// limitLocked returns the budget in bytes for the window, given used:
// for a percentage, that share of the free space plus what strangers
// already took (the space they found free).
func (p *strangerPool) limitLocked(used uint64) (uint64, error) {
	if p.budget.Percent == 0 {
		return p.budget.Bytes, nil
	}
	free, err := p.free()
	if err != nil {
		return 0, err
	}
	total := free + used
	if total < free { // overflow: an unknown free space
		return ^uint64(0), nil
	}
	return total / 100 * uint64(p.budget.Percent), nil
}

// Left returns what strangers may still send today, and the whole day's
// budget; ok is false when there is no budget.
func (p *strangerPool) Left() (left, limit uint64, ok bool) {
	if p.budget.Off() {
		return 0, 0, false
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	used := p.usedLocked(p.now())
	limit, err := p.limitLocked(used)
	if err != nil {
		return 0, 0, true
	}
	if used < limit {
		left = limit - used
	}
	return left, limit, true
}

// take charges need bytes and entryCost for each of entries to the pool,
// or refuses them with a *RefusedError (proto.CodeTooLarge) that says the
// budget and what is left of it. A nil charge means there is no budget.
func (p *strangerPool) take(need uint64, entries int) (*strangerCharge, error) {
	if p.budget.Off() {
		return nil, nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	now := p.now()
	used := p.usedLocked(now)
	limit, err := p.limitLocked(used)
	if err != nil {
		return nil, &RefusedError{Code: proto.CodeIO, Reason: "cannot tell free space"}
	}
	var left uint64
	if used < limit {
		left = limit - used
	}
	fixed := entryCost * uint64(max(entries, 0))
	if need > left || fixed > left-need {
		return nil, &RefusedError{Code: proto.CodeTooLarge, Reason: fmt.Sprintf(
			"over what this receiver takes from peers it does not trust (%s, %s left today; need %s, with 4 KiB a file or folder): ask its owner to trust you",
			p.budget.String(), FormatBytes(left), FormatBytes(need+fixed))}
	}
	c := &strangerCharge{hour: hourOf(now), n: need + fixed, fixed: fixed}
	p.hours[c.hour] = addSat(p.hours[c.hour], c.n)
	return c, p.saveLocked()
}

// settle gives back what a charge took beyond the got bytes that
// actually arrived (and its fixed part).
func (p *strangerPool) settle(c *strangerCharge, got uint64) error {
	if c == nil {
		return nil
	}
	got = addSat(got, c.fixed)
	if got >= c.n {
		return nil
	}
	p.mu.Lock()
	defer p.mu.Unlock()
	back := c.n - got
	if b, ok := p.hours[c.hour]; ok {
		p.hours[c.hour] = b - min(b, back)
	}
	c.n = got
	return p.saveLocked()
}

// saveLocked writes the pool's hours, atomically.
func (p *strangerPool) saveLocked() error {
	var b bytes.Buffer
	b.WriteString("# lanshare: bytes received from peers that are not trusted, per hour\n")
	b.WriteString("# (Unix time / 3600) of the last day: HOUR BYTES\n")
	hours := make([]int64, 0, len(p.hours))
	for h := range p.hours {
		hours = append(hours, h)
	}
	sort.Slice(hours, func(i, j int) bool { return hours[i] < hours[j] })
	for _, h := range hours {
		fmt.Fprintf(&b, "%d %d\n", h, p.hours[h])
	}
	dir := filepath.Dir(p.path)
	tmp, err := os.CreateTemp(dir, ".strangers-*")
	if err != nil {
		return fmt.Errorf("saving the strangers' budget: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(b.Bytes())
	if err == nil {
		err = tmp.Chmod(0o600)
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp.Name(), p.path)
	}
	if err != nil {
		return fmt.Errorf("saving the strangers' budget: %w", err)
	}
	return nil
}

// addSat returns a+b, or the largest uint64 when the sum overflows.
func addSat(a, b uint64) uint64 {
	if s := a + b; s >= a {
		return s
	}
	return ^uint64(0)
}
