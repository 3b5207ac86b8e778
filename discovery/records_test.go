package discovery

import (
	"net/netip"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

func testZone() *zone {
	return &zone{
		instance: "bob.smith (3fa2)",
		host:     "bobs-laptop",
		port:     4242,
		txt:      encodeTXT([][2]string{{"id", "3fa2c0de"}, {"v", "1"}, {"name", "bob.smith"}}),
		addrs:    []netip.Addr{netip.MustParseAddr("10.77.0.5"), netip.MustParseAddr("fe80::1"), netip.MustParseAddr("fd77::5")},
		ttl:      120,
	}
}

func TestEscapeLabel(t *testing.T) {
	for _, tc := range []struct{ raw, esc string }{
		{"bob", "bob"},
		{"bob.smith", `bob\.smith`},
		{`back\slash`, `back\\slash`},
		{"bob (3fa2)", `bob\ \(3fa2\)`},
		{"Café", `Caf\195\169`},
		{"tab\there", `tab\009here`},
		{`q"@;'`, `q\"\@\;\'`},
	} {
		if got := escapeLabel(tc.raw); got != tc.esc {
			t.Errorf("escapeLabel(%q) = %q, want %q", tc.raw, got, tc.esc)
		}
		back, err := unescapeLabel(tc.esc)
		if err != nil || back != tc.raw {
			t.Errorf("unescapeLabel(%q) = %q, %v; want %q", tc.esc, back, err, tc.raw)
		}
		// The escaped form is what miekg/dns makes of the same wire label,
		// so names we build compare equal to names we receive.
		wire := append([]byte{byte(len(tc.raw))}, tc.raw...)
		wire = append(wire, 0)
		name, _, err := dns.UnpackDomainName(wire, 0)
		if err != nil || name != tc.esc+"." {
			t.Errorf("miekg/dns presents %q as %q (%v), we as %q", tc.raw, name, err, tc.esc)
		}
	}
}

func TestUnescapeLabelRejects(t *testing.T) {
	for _, s := range []string{"", `a\`, `\999`, "a.b", strings.Repeat("x", 64)} {
		if got, err := unescapeLabel(s); err == nil {
			t.Errorf("unescapeLabel(%q) = %q, want error", s, got)
		}
	}
}

func TestInstanceNameDotsEscapedOnTheWire(t *testing.T) {
	// hashicorp/mdns would put "bob.smith" into the name unescaped, making
	// "bob" the instance and "smith" a bogus extra label.
	z := testZone()
	m := z.announcement()
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(b); err != nil {
		t.Fatal(err)
	}
	ptr := back.Answer[0].(*dns.PTR)
	if want := `bob\.smith\ \(3fa2\)._lanshare._tcp.local.`; ptr.Ptr != want {
		t.Fatalf("PTR target = %q, want %q", ptr.Ptr, want)
	}
	if n := dns.CountLabel(ptr.Ptr); n != 4 {
		t.Fatalf("instance name has %d labels, want 4", n)
	}
	label, ok := splitInstance(ptr.Ptr)
	if !ok || label != "bob.smith (3fa2)" {
		t.Fatalf("splitInstance = %q, %v", label, ok)
	}
}

func TestInstanceName(t *testing.T) {
	for _, tc := range []struct{ name, id, want string }{
		{"bob", "3FA2c0de", "bob (3fa2)"},
		{"bob", "ab", "bob (fb8e)"},      // too short: hash
		{"bob", "a-b-c-d", "bob (32c6)"}, // not alnum: hash
		{"bob.smith", "3fa2", "bob.smith (3fa2)"},
	} {
		if got := InstanceName(tc.name, tc.id); got != tc.want {
			t.Errorf("InstanceName(%q, %q) = %q, want %q", tc.name, tc.id, got, tc.want)
		}
	}
	long := InstanceName(strings.Repeat("é", 40), "abcd")
	if len(long) > maxLabel || !strings.HasSuffix(long, " (abcd)") || !strings.HasPrefix(long, "éé") {
		t.Errorf("long name -> %q (%d bytes)", long, len(long))
	}
	if InstanceName("bob", "1111aaaa") == InstanceName("bob", "2222bbbb") {
		t.Error("same display name, different ids: same instance name")
	}
}

func TestEncodeTXTNeverEmpty(t *testing.T) {
	// An empty TXT must be one zero-length string (RFC 6763 §6.1), not rdata
	// of length zero as miekg/dns packs an empty Txt slice.
	for _, txt := range [][]string{encodeTXT(nil), (&zone{}).txtRR().(*dns.TXT).Txt} {
		rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: txt}
		buf := make([]byte, 512)
		off, err := dns.PackRR(rr, buf, 0, nil, false)
		if err != nil {
			t.Fatal(err)
		}
		rdlen := int(buf[off-3])<<8 | int(buf[off-2])
		if rdlen != 1 || buf[off-1] != 0 {
			t.Errorf("empty TXT packs to rdlength %d, want 1 (a single zero byte)", rdlen)
		}
	}
}

func TestTXTRoundTrip(t *testing.T) {
	pairs := [][2]string{{"id", `we\ird"id`}, {"v", "1"}, {"name", "Zoë = ok"}}
	txt := encodeTXT(pairs)
	rr := &dns.TXT{Hdr: dns.RR_Header{Name: "x.local.", Rrtype: dns.TypeTXT, Class: dns.ClassINET}, Txt: txt}
	m := new(dns.Msg)
	m.Answer = []dns.RR{rr}
	b, err := m.Pack()
	if err != nil {
		t.Fatal(err)
	}
	var back dns.Msg
	if err := back.Unpack(b); err != nil {
		t.Fatal(err)
	}
	got := decodeTXT(back.Answer[0].(*dns.TXT).Txt)
	for _, kv := range pairs {
		if got[kv[0]] != kv[1] {
			t.Errorf("TXT %s = %q, want %q", kv[0], got[kv[0]], kv[1])
		}
	}
	// Too long values are cut to fit one character-string.
	long := encodeTXT([][2]string{{"name", strings.Repeat("x", 300)}})
	if l := len(unescapeTXT(long[0])); l != maxTXTString {
		t.Errorf("long TXT string is %d bytes", l)
	}
}

func TestDecodeTXT(t *testing.T) {
	got := decodeTXT([]string{"ID=first", "id=second", "flag", "=novalue", "", `a=b\061c`})
	want := map[string]string{"id": "first", "flag": "", "a": "b=c"}
	if len(got) != len(want) {
		t.Fatalf("decodeTXT = %v, want %v", got, want)
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("decodeTXT[%q] = %q, want %q", k, got[k], v)
		}
	}
}

func TestZoneRecordsExplicitAddresses(t *testing.T) {
	z := testZone()
	rrs := z.Records(dns.Question{Name: "BOBS-LAPTOP.local.", Qtype: dns.TypeANY, Qclass: dns.ClassINET})
	var got []string
	for _, rr := range rrs {
		switch rr := rr.(type) {
		case *dns.A:
			got = append(got, rr.A.String())
		case *dns.AAAA:
			got = append(got, rr.AAAA.String())
		}
		if rr.Header().Class != dns.ClassINET|cacheFlush || rr.Header().Ttl != 120 {
			t.Errorf("address record header %v", rr.Header())
		}
	}
	if want := []string{"10.77.0.5", "fe80::1", "fd77::5"}; !slices.Equal(got, want) {
		t.Errorf("host records = %v, want %v (given addresses, nothing resolved)", got, want)
	}
	if rrs := z.Records(dns.Question{Name: "other.local.", Qtype: dns.TypeA, Qclass: dns.ClassINET}); rrs != nil {
		t.Errorf("answered for another host: %v", rrs)
	}
	if rrs := z.Records(dns.Question{Name: "_http._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}); rrs != nil {
		t.Errorf("answered for another service type: %v", rrs)
	}
	if rrs := z.Records(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassCHAOS}); rrs != nil {
		t.Errorf("answered for class CHAOS: %v", rrs)
	}
}

func TestGoodbyeTTLZero(t *testing.T) {
	m := testZone().goodbye()
	types := map[uint16]bool{}
	for _, rr := range m.Answer {
		types[rr.Header().Rrtype] = true
		if rr.Header().Ttl != 0 {
			t.Errorf("goodbye record %v has TTL %d", rr, rr.Header().Ttl)
		}
	}
	for _, ty := range []uint16{dns.TypePTR, dns.TypeSRV, dns.TypeTXT, dns.TypeA, dns.TypeAAAA} {
		if !types[ty] {
			t.Errorf("goodbye lacks %s (the TXT lets receivers check the id)", dns.TypeToString[ty])
		}
	}
	if ann := testZone().announcement(); ann.Answer[0].Header().Ttl != 120 {
		t.Error("goodbye changed the zone's own records")
	}
}

func query(qs ...dns.Question) *dns.Msg {
	m := new(dns.Msg)
	m.Id = 77
	m.Question = qs
	return m
}

func TestBuildResponseMulticastByDefault(t *testing.T) {
	z := testZone()
	resp, unicast := buildResponse(z, query(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET}), mdnsPort)
	if resp == nil || unicast {
		t.Fatalf("response %v unicast=%v: want a multicast answer", resp, unicast)
	}
	if resp.Id != 0 || len(resp.Question) != 0 || !resp.Response || !resp.Authoritative {
		t.Errorf("multicast response header wrong: %+v", resp.MsgHdr)
	}
	if len(resp.Answer) != 1 || resp.Answer[0].Header().Rrtype != dns.TypePTR {
		t.Errorf("answers = %v", resp.Answer)
	}
	var extra []uint16
	for _, rr := range resp.Extra {
		extra = append(extra, rr.Header().Rrtype)
	}
	if want := []uint16{dns.TypeSRV, dns.TypeTXT, dns.TypeA, dns.TypeAAAA, dns.TypeAAAA}; !slices.Equal(extra, want) {
		t.Errorf("additional types = %v, want %v", extra, want)
	}
}

func TestBuildResponseQUAndLegacy(t *testing.T) {
	z := testZone()
	qu := dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET | unicastResponse}
	if resp, unicast := buildResponse(z, query(qu), mdnsPort); resp == nil || !unicast {
		t.Errorf("QU question: unicast=%v, want true", unicast)
	}
	qm := dns.Question{Name: z.instanceName(), Qtype: dns.TypeSRV, Qclass: dns.ClassINET}
	if _, unicast := buildResponse(z, query(qu, qm), mdnsPort); unicast {
		t.Error("QU and QM questions together: answered unicast, want multicast")
	}
	resp, unicast := buildResponse(z, query(qm), 40000)
	if resp == nil || !unicast {
		t.Fatalf("legacy query: unicast=%v, want true", unicast)
	}
	if resp.Id != 77 || len(resp.Question) != 1 {
		t.Errorf("legacy answer must echo id and question: id %d, %d questions", resp.Id, len(resp.Question))
	}
	for _, rr := range append(resp.Answer, resp.Extra...) {
		if h := rr.Header(); h.Ttl > legacyTTL || h.Class&cacheFlush != 0 {
			t.Errorf("legacy answer record %v: ttl %d class %#x", rr, h.Ttl, h.Class)
		}
	}
}

func TestBuildResponseIgnores(t *testing.T) {
	z := testZone()
	q := query(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	q.Response = true
	if resp, _ := buildResponse(z, q, mdnsPort); resp != nil {
		t.Error("answered a response")
	}
	q = query(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	q.Opcode = dns.OpcodeUpdate
	if resp, _ := buildResponse(z, q, mdnsPort); resp != nil {
		t.Error("answered a non-zero opcode")
	}
	if resp, _ := buildResponse(z, query(dns.Question{Name: "_ipp._tcp.local.", Qtype: dns.TypePTR, Qclass: dns.ClassINET}), mdnsPort); resp != nil {
		t.Error("answered for another service type")
	}
}

func TestBuildResponseKnownAnswerSuppression(t *testing.T) {
	z := testZone()
	q := query(dns.Question{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET})
	q.Answer = []dns.RR{knownPTR(z.instance, 100)}
	if resp, _ := buildResponse(z, q, mdnsPort); resp != nil {
		t.Errorf("answered although the querier knows us with 100s left: %v", resp)
	}
	q.Answer = []dns.RR{knownPTR(z.instance, 30)}
	if resp, _ := buildResponse(z, q, mdnsPort); resp == nil {
		t.Error("suppressed although the known answer is past half its TTL")
	}
}

// TestAnnouncementSchedule pins RFC 6762 §8.3: at least two unsolicited
// announcements, the first at once, one second or more apart.
func TestAnnouncementSchedule(t *testing.T) {
	if len(announceOffsets) < 2 || announceOffsets[0] != 0 {
		t.Fatalf("announcements at %v", announceOffsets)
	}
	for i := 1; i < len(announceOffsets); i++ {
		if gap := announceOffsets[i] - announceOffsets[i-1]; gap < time.Second {
			t.Errorf("announcements %d and %d only %v apart", i-1, i, gap)
		}
	}
	if len(browseOffsets) < 2 || browseOffsets[len(browseOffsets)-1] >= DefaultBrowseWait/2 {
		t.Errorf("one-shot browse queries at %v: want two, early in a %v wait", browseOffsets, DefaultBrowseWait)
	}
}

// TestOwnQueryRecognised: our looped-back query is not answered, while the
// same question from another process on our address (other ID) or from
// another host is.
func TestOwnQueryRecognised(t *testing.T) {
	s, err := New(validConfig())
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	st := &ifState{info: ifaceInfo{Name: "eth0", Addrs: []netip.Addr{netip.MustParseAddr("10.77.0.1"), netip.MustParseAddr("fe80::1")}}}
	q := s.query(st, t0, false)[0]
	if q.Id == 0 {
		t.Fatal("our query has ID 0; it cannot be told from others")
	}
	b, err := q.Pack()
	if err != nil {
		t.Fatal(err)
	}
	rs := &runState{}
	rs.noteSentQuery(b, t0)
	at := func(src string) packet { return packet{data: b, src: netip.MustParseAddrPort(src), hops: 255} }
	if !s.ownQuery(rs, st, q, at("10.77.0.1:5353"), t0) || !s.ownQuery(rs, st, q, at("[fe80::1%eth0]:5353"), t0) {
		t.Error("own looped-back query not recognised")
	}
	other := q.Copy()
	other.Id = q.Id + 1
	ob, err := other.Pack()
	if err != nil {
		t.Fatal(err)
	}
	if s.ownQuery(rs, st, other, packet{data: ob, src: netip.MustParseAddrPort("10.77.0.1:5353"), hops: 255}, t0) {
		t.Error("another local process's query taken for ours")
	}
	if s.ownQuery(rs, st, q, at("10.77.0.2:5353"), t0) {
		t.Error("a query from another host taken for ours")
	}
}
