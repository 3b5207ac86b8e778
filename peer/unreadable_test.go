package peer

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lanshare/lanshare/proto"
)

// TestUnreadableSourceIsSendersError: a file that cannot be read when its
// turn comes (removed after it was offered) is the sender's error,
// ErrSourceUnreadable naming the local file, not the receiver's refusal;
// the progress never counts it as sent, and the other files arrive.
func TestUnreadableSourceIsSendersError(t *testing.T) {
	for name, pair := range connTypes {
		t.Run(name, func(t *testing.T) {
			src := writeTree(t, map[string]string{"a.txt": "aaa", "gone.txt": "soon gone", "z.txt": "zzz"})
			items := collect(t, filepath.Join(src, "a.txt"), filepath.Join(src, "gone.txt"), filepath.Join(src, "z.txt"))
			must(t, os.Remove(filepath.Join(src, "gone.txt")))
			in := newInbox(t, InboxConfig{})
			s, r := pair(t)
			var wg sync.WaitGroup
			wg.Add(1)
			go func() {
				defer wg.Done()
				_, _ = in.Receive(r)
				r.Close()
			}()
			var last Progress
			rep, err := Send(s, items, SendOptions{Name: "sender", IdleTimeout: 10 * time.Second, Progress: func(p Progress) { last = p }})
			s.Close()
			wg.Wait()
			if !errors.Is(err, ErrSourceUnreadable) {
				t.Fatalf("send error %v, want ErrSourceUnreadable", err)
			}
			want := "cannot read " + filepath.Join(src, "gone.txt") + ": no such file or directory; not sent"
			if err.Error() != want {
				t.Errorf("send error %q\nwant %q", err, want)
			}
			var re *RefusedError
			if !errors.As(err, &re) || re.Code != proto.CodeSourceChanged || !errors.Is(err, ErrIncomplete) {
				t.Errorf("send error %v does not carry the receipt's verdict", err)
			}
			if last.Files != 2 || last.FilesTotal != 3 {
				t.Errorf("progress says %d of %d files sent, want 2 of 3", last.Files, last.FilesTotal)
			}
			if rep == nil || rep.Saved() != 2 {
				t.Errorf("report %+v, want 2 saved", rep)
			}
			assertTree(t, in.Dir(), map[string]string{"a.txt": "aaa", "z.txt": "zzz"})
			if strings.Contains(err.Error(), "refused") {
				t.Errorf("send error %q blames the receiver", err)
			}
		})
	}
}
