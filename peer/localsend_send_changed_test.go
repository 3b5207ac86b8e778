package peer

import (
	"context"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// TestSendLocalSendChangedFileIsNotRetried: a 422 for a file that changed
// on disk after its sha256 was offered is not a damaged transfer: the file
// fails as changed, and is not sent again (the device would refuse every
// try).
func TestSendLocalSendChangedFileIsNotRetried(t *testing.T) {
	src := filepath.Join(writeTree(t, map[string]string{"c.bin": "original"}), "c.bin")
	d := newLSDevice(t, true, func(d *lsDevice) {
		d.onUpload = func(_ int, _ localsend.File, r *http.Request) int {
			_, _ = io.Copy(io.Discard, r.Body)
			if err := os.WriteFile(src, []byte("modified"), 0o644); err != nil {
				t.Error(err)
			}
			return http.StatusUnprocessableEntity
		}
	})
	items := collect(t, src)
	rep, err := SendLocalSend(context.Background(), d.target(), items, lsOptions(t))
	d.mu.Lock()
	defer d.mu.Unlock()
	if err == nil || d.uploads["c.bin"] != 1 || rep.Results[0].Code != proto.CodeSourceChanged {
		t.Fatalf("%v: %d uploads, result %+v; want one upload failing as changed", err, d.uploads["c.bin"], rep.Results)
	}
}
