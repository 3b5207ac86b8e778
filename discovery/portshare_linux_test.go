package discovery

import (
	"slices"
	"testing"

	"github.com/lanshare/lanshare/internal/netlab"
)

// TestPortHolders reads the sockets bound to port 5353 from the kernel's
// socket tables, IPv4 and IPv6, whatever their local address.
func TestPortHolders(t *testing.T) {
	const table = `  sl  local_address rem_address   st tx_queue rx_queue tr tm->when retrnsmt   uid  timeout inode ref pointer drops
  381: 00000000:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4711 2 0000000000000000 0
  382: FB0000E0:14E9 00000000:0000 07 00000000:00000000 00:00000000 00000000  1000        0 4712 2 0000000000000000 0
  383: 0100007F:14EA 00000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4713 2 0000000000000000 0
  384: 00000000000000000000000000000000:14E9 00000000000000000000000000000000:0000 07 00000000:00000000 00:00000000 00000000     0        0 4714 2 0000000000000000 0
  385: garbage
`
	if got, want := portHolders([]byte(table), mdnsPort), []uint64{4711, 4712, 4714}; !slices.Equal(got, want) {
		t.Errorf("portHolders = %v, want %v", got, want)
	}
}

// TestSocketsSharedWithAnotherStack: our sockets on port 5353 know when
// another socket of the host is bound to it, and only then; a running
// agent's second query then asks for multicast answers (see askUnicast),
// its first, and a one-shot browse's, still for unicast ones.
func TestSocketsSharedWithAnotherStack(t *testing.T) {
	s, rs, _ := scaleService(t, 0)
	b := newService(Config{}, false)
	b.browseOffsets = browseOffsets
	brs := &runState{}
	h := netlab.Single(t)
	if err := h.Do(func() error {
		ours, err := openSockets(mdnsPort)
		if err != nil {
			return err
		}
		defer ours.close()
		rs.socks, brs.socks = ours, ours
		if ours.shared() || !s.askUnicast(rs) {
			t.Errorf("alone on port 5353: shared %v, first query asks for unicast answers %v; want false, true", ours.shared(), s.askUnicast(rs))
		}
		other, err := openSockets(mdnsPort)
		if err != nil {
			return err
		}
		if !ours.shared() || !other.shared() {
			t.Errorf("two stacks on port 5353: shared %v and %v, want true", ours.shared(), other.shared())
		}
		if !s.askUnicast(rs) || !b.askUnicast(brs) {
			t.Errorf("port 5353 shared: an agent's first query asks for unicast answers %v, a browse's %v; want true, true", s.askUnicast(rs), b.askUnicast(brs))
		}
		rs.queries = 1
		if s.askUnicast(rs) {
			t.Error("port 5353 shared: an agent's second query asks for unicast answers; want multicast ones")
		}
		rs.queries = 0
		other.close()
		if ours.shared() {
			t.Error("the other stack closed its sockets, ours still say port 5353 is shared")
		}
		legacy, err := openSockets(0)
		if err != nil {
			return err
		}
		defer legacy.close()
		if legacy.shared() {
			t.Error("a legacy querier's ephemeral port is said to be shared")
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
}
