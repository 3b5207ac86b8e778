package peer

import (
	"context"
	"fmt"
	"path/filepath"
	"sync"
	"testing"
)

// TestManySendersManyFiles: 32 senders, each with its own key and 200
// files, send at once into one agent over TLS: every file arrives intact.
func TestManySendersManyFiles(t *testing.T) {
	if testing.Short() {
		t.Skip("sends 6,400 files")
	}
	const senders, files = 32, 200
	ta := startAgent(t, func(c *Config) {
		c.MaxConnsPerHost = senders // they all come from 127.0.0.1
	})
	type job struct {
		s     *Sender
		src   string
		items []Item
	}
	jobs := make([]job, senders)
	for i := range jobs {
		tree := map[string]string{}
		for f := range files {
			tree[fmt.Sprintf("s%02d/%02d/f%03d.bin", i, f%10, f)] = randomBytes(t, 1+(i*files+f)%8192)
		}
		src := writeTree(t, tree)
		jobs[i] = job{s: testSender(t), src: src, items: collect(t, filepath.Join(src, fmt.Sprintf("s%02d", i)))}
	}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for i, j := range jobs {
		wg.Add(1)
		go func() {
			defer wg.Done()
			rep, err := j.s.Send(context.Background(), ta.target(), j.items, SendOptions{Name: fmt.Sprint("sender ", i)})
			if err == nil && rep.Saved() != len(j.items) {
				err = fmt.Errorf("%d of %d saved", rep.Saved(), len(j.items))
			}
			if err != nil {
				errs <- fmt.Errorf("sender %d: %w", i, err)
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	got := tree(t, ta.dir)
	for i, j := range jobs {
		want := tree(t, j.src)
		for p, content := range want {
			if got[p] != content {
				t.Fatalf("sender %d: %s did not arrive intact", i, p)
			}
		}
	}
	assertNoTemps(t, ta.dir)
}
