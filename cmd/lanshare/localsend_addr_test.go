package main

import (
	"net"
	"path/filepath"
	"testing"

	"github.com/lanshare/lanshare/internal/lsdouble"
	"github.com/lanshare/lanshare/internal/netlab"
)

// TestSendLocalSendByAddrSkipsTheLook: `send --localsend IP:PORT` asks
// that address at once instead of first spending --wait looking for
// LocalSend devices by multicast (which cost every such send a second, a
// third of the time of a 1 GiB file on loopback). With --wait 60s, a send
// that looked first would be killed by runLanshareOn's deadline
// (failAfter, 10 s).
func TestSendLocalSendByAddrSkipsTheLook(t *testing.T) {
	t.Parallel()
	lab := netlab.New(t, 2)
	got := t.TempDir()
	lsdouble.StartIn(t, lab.Host(1), lsdouble.Config{Alias: "Pixel 9", DeviceType: "mobile", Addr: ":53317", Dir: got})
	tmp := t.TempDir()
	paths, want := lsTree(t, tmp, "src")
	addr := net.JoinHostPort(lab.Host(1).Addr().String(), "53317")
	r := runLanshareOn(t, lab.Host(0).CommandContext, tmp, nil,
		append([]string{"send", "--config", filepath.Join(tmp, "config"), "--name", "alice", "--wait", "60s", "--localsend", addr}, paths...)...)
	if r.code != 0 {
		t.Fatalf("send --localsend %s: exit %d\nstdout:\n%s\nstderr:\n%s", addr, r.code, r.stdout, r.stderr)
	}
	waitTree(t, got, want)
}
