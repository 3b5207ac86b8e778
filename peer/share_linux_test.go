package peer

import (
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestShareDownloadOfLeasedFile: a shared file on which another program
// holds a lease (Samba's oplocks, an NFS server's delegations) is answered
// at once, 503 and try again, rather than by a download that waits (a
// blocking open waits up to the kernel's lease-break time) or spins.
func TestShareDownloadOfLeasedFile(t *testing.T) {
	ta := startWebAgent(t, "482193", nil)
	c := newWebClient(t, ta, "")
	p := filepath.Join(t.TempDir(), "leased.txt")
	must(t, os.WriteFile(p, []byte("data"), 0o644))
	l, err := ta.Share([]string{p}, time.Now().Add(time.Hour), "")
	must(t, err)
	f, err := os.Open(p)
	must(t, err)
	defer f.Close()
	if _, err := unix.FcntlInt(f.Fd(), unix.F_SETLEASE, unix.F_WRLCK); err != nil {
		t.Skipf("cannot take a lease here: %v", err)
	}
	start := time.Now()
	code, _, body := c.do("GET", l.Path+"0", nil)
	if code != http.StatusServiceUnavailable || !strings.Contains(body, "in use by another program") {
		t.Errorf("leased file: %d %q, want 503 and in use", code, body)
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Errorf("the answer took %v", d)
	}
}
