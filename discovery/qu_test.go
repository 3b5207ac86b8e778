package discovery

import (
	"fmt"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/internal/netlab"
	"github.com/miekg/dns"
	"golang.org/x/net/ipv4"
)

func init() { extraChildren["askqu"] = childAskQU }

// childAskQU sends one query with the QU bit from port 5353 on the named
// interface and prints every response that comes back to it by unicast,
// with the IP TTL it arrived with.
func childAskQU(c childCfg, out *childOut) error {
	p, ifi, err := mdnsSocket(c.Ifaces[0])
	if err != nil {
		return err
	}
	b, err := browseQuery(nil, true).Pack()
	if err != nil {
		return err
	}
	if _, err := p.WriteTo(b, &ipv4.ControlMessage{IfIndex: ifi.Index}, &net.UDPAddr{IP: net.IPv4(224, 0, 0, 251), Port: 5353}); err != nil {
		return err
	}
	buf := make([]byte, 9000)
	for {
		n, cm, src, err := p.ReadFrom(buf)
		if err != nil {
			return err
		}
		m, err := unpack(buf[:n])
		if err != nil || !m.Response || cm == nil || cm.Dst.IsMulticast() {
			continue
		}
		out.put(msg{Ev: "response", Text: fmt.Sprintf("ttl=%d dst=%v src=%v answers=%d", cm.TTL, cm.Dst, src, len(m.Answer))})
	}
}

// TestUnicastAnswerTTL255: an agent answers a QU query by unicast with IP
// TTL 255, as its multicast (receivers drop responses with less, RFC 6762
// §11), and from the address its multicasts come from.
func TestUnicastAnswerTTL255(t *testing.T) {
	lab := netlab.New(t, 2)
	a := startChild(t, lab.Host(0), "alice", "agent", agentCfg("alice", "aaaa1111", 4001))
	a.waitFor(10*time.Second, "ready", func(m msg) bool { return m.Ev == "ready" })
	q := startChild(t, lab.Host(1), "asker", "askqu", childCfg{Ifaces: []string{"eth0"}})
	want := fmt.Sprintf("ttl=255 dst=%v src=%v:5353 answers=1", lab.Host(1).Addr(), lab.Host(0).Addr())
	m := q.waitFor(5*time.Second, "unicast answer", func(m msg) bool { return m.Ev == "response" })
	if !strings.HasPrefix(m.Text, want) {
		t.Errorf("unicast answer: %s, want %s", m.Text, want)
	}
}

// TestUnsendableUnicastAnswerIsMulticast: when the unicast answer to a QU
// question cannot be sent (here the socket is closed; on a LAN, the
// kernel may have no room for the querier in its neighbour table), the
// answer joins the pending multicast one, so the querier still hears it;
// a legacy querier (not on port 5353) hears no multicast, and gets none.
func TestUnsendableUnicastAnswerIsMulticast(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	h := netlab.Single(t)
	if err := h.Do(func() error {
		socks, err := openSockets(0)
		if err != nil {
			return err
		}
		socks.close()
		rs.socks = socks
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.answerQuery(rs, st, browseQuery(nil, true), netip.MustParseAddrPort("10.77.0.40:40000"), t0)
	if st.answerPending[0] {
		t.Errorf("a legacy querier's lost answer is multicast: %v", st.answerRRs[0])
	}
	s.answerQuery(rs, st, browseQuery(nil, true), netip.MustParseAddrPort("10.77.0.9:5353"), t0)
	if !st.answerPending[0] || len(st.answerRRs[0]) == 0 {
		t.Fatalf("the unsendable unicast answer is not multicast: pending %v, records %v", st.answerPending[0], st.answerRRs[0])
	}
	if ptr, ok := st.answerRRs[0][0].(*dns.PTR); !ok || !strings.HasPrefix(ptr.Ptr, `bob\ \(3fa2\)`) {
		t.Errorf("pending multicast answer %v, want our PTR", st.answerRRs[0])
	}
}

// TestUnicastQuestionFromThisHostAnsweredByMulticast: a QU question from
// one of our own addresses, on port 5353, comes from an agent beside us,
// and the kernel would give a unicast answer to whichever socket of the
// host's SO_REUSEPORT group its hash picks, often ours (RFC 6762 §15.1):
// it is answered by multicast, which reaches every one of them.
func TestUnicastQuestionFromThisHostAnsweredByMulticast(t *testing.T) {
	var logged strings.Builder
	cfg := validConfig()
	cfg.Logf = func(format string, args ...any) { fmt.Fprintf(&logged, format+"\n", args...) }
	s, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	_, rs, st := scaleService(t, 0)
	h := netlab.Single(t)
	if err := h.Do(func() error {
		socks, err := openSockets(0)
		if err != nil {
			return err
		}
		socks.close() // any send fails, and is logged with its destination
		rs.socks = socks
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	s.answerQuery(rs, st, browseQuery(nil, true), netip.MustParseAddrPort("10.77.0.1:5353"), t0)
	if strings.Contains(logged.String(), "10.77.0.1:5353") {
		t.Errorf("a querier on this host was answered by unicast: %s", logged.String())
	}
	if !st.answerPending[0] || len(st.answerRRs[0]) == 0 {
		t.Errorf("no multicast answer pending for a querier on this host")
	}
	// A legacy querier on this host (not port 5353) has a socket of its
	// own, and hears no multicast: it is answered by unicast.
	s.answerQuery(rs, st, browseQuery(nil, true), netip.MustParseAddrPort("10.77.0.1:40000"), t0)
	if !strings.Contains(logged.String(), "10.77.0.1:40000") {
		t.Errorf("a legacy querier on this host was not answered by unicast: %q", logged.String())
	}
}

// TestQueryOfAgentBesideUsWithOurID: an agent on this host that drew our
// query ID (one pair in 65,535) sends from our address and port; its
// query is still answered, and we draw another ID, while our own query,
// looped back, is not. Before, each ignored every query of the other for
// good, and one that started late never heard of the other.
func TestQueryOfAgentBesideUsWithOurID(t *testing.T) {
	s, rs, st := scaleService(t, 0)
	here := netip.MustParseAddrPort("10.77.0.1:5353")
	ours, err := s.query(st, t0, false)[0].Pack()
	if err != nil {
		t.Fatal(err)
	}
	rs.noteSentQuery(ours, t0)
	s.handle(rs, packet{data: ours, src: here, ifindex: 2, hops: 255}, t0.Add(time.Millisecond))
	if st.answerPending[0] {
		t.Fatalf("our own query, looped back, is answered: %v", st.answerRRs[0])
	}
	id := s.queryID
	other := browseQuery([]dns.RR{knownPTR(InstanceName("carol", "cccc3333"), 120)}, false)
	other.Id = id
	b, err := other.Pack()
	if err != nil {
		t.Fatal(err)
	}
	s.handle(rs, packet{data: b, src: here, ifindex: 2, hops: 255}, t0.Add(2*time.Millisecond))
	if !st.answerPending[0] || len(st.answerRRs[0]) == 0 {
		t.Error("the query of an agent beside us with our query ID is not answered")
	}
	if s.queryID == id || s.queryID == 0 {
		t.Errorf("query ID %d after a query of another with ours (%d), want another, not 0", s.queryID, id)
	}
}
