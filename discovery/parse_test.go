package discovery

import (
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/miekg/dns"
)

// hostilePackets are malformed or adversarial mDNS packets; none may crash
// the parser or enter the table.
func hostilePackets(t testing.TB) map[string][]byte {
	t.Helper()
	pack := func(m *dns.Msg) []byte {
		b, err := m.Pack()
		if err != nil {
			t.Fatal(err)
		}
		return b
	}
	good := pack(testZone().announcement())
	out := map[string][]byte{
		"empty":       {},
		"header only": good[:12],
		"truncated":   good[:len(good)/2],
		"oversized":   append(good, make([]byte, maxPacket)...),
		"garbage":     []byte(strings.Repeat("\xff", 200)),
		// Header says 1 answer; the name is a compression pointer to itself.
		"pointer loop": {0, 0, 0x84, 0, 0, 0, 0, 1, 0, 0, 0, 0, 0xc0, 12, 0, 12, 0, 1, 0, 0, 0, 10, 0, 2, 0xc0, 12},
		// Answer count far beyond the data.
		"count lies": {0, 0, 0x84, 0, 0, 0, 0xff, 0xff, 0, 0, 0, 0},
	}
	rcode := testZone().announcement()
	rcode.Rcode = dns.RcodeServerFailure
	out["rcode"] = pack(rcode)
	srv0 := responseMsg()
	srv0.Answer = []dns.RR{&dns.SRV{Hdr: dns.RR_Header{Name: instanceFQDN("x"), Rrtype: dns.TypeSRV, Class: dns.ClassINET, Ttl: 5}, Port: 0, Target: "."}}
	out["srv port 0 root target"] = pack(srv0)
	many := responseMsg()
	for i := 0; i < 400; i++ {
		many.Answer = append(many.Answer, &dns.PTR{Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: 120}, Ptr: instanceFQDN("flood" + itoa(i))})
	}
	out["many records"] = pack(many)
	return out
}

func TestParseHostilePackets(t *testing.T) {
	for name, b := range hostilePackets(t) {
		t.Run(name, func(t *testing.T) {
			tb := newTable("")
			m, err := unpack(b)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("unpack error %v does not wrap ErrMalformed", err)
				}
				return
			}
			r, err := parseResponse(m)
			if err != nil {
				if !errors.Is(err, ErrMalformed) {
					t.Errorf("parse error %v does not wrap ErrMalformed", err)
				}
				return
			}
			tb.apply(r, "eth0", src0, t0)
			for _, p := range tb.snapshot() {
				if p.Complete() {
					t.Errorf("hostile packet made a complete peer %+v", p)
				}
			}
			if tb.n > maxPerSource {
				t.Errorf("one packet from one source made %d records", tb.n)
			}
		})
	}
}

func TestParseRejectsQueries(t *testing.T) {
	q := browseQuery(nil, false)
	if _, err := parseResponse(q); !errors.Is(err, ErrMalformed) {
		t.Errorf("parseResponse(query) = %v, want ErrMalformed", err)
	}
}

// FuzzParseResponse feeds arbitrary packets through the whole receive path
// (unpack, parse, table) and checks the invariants hold.
func FuzzParseResponse(f *testing.F) {
	for _, b := range hostilePackets(f) {
		f.Add(b)
	}
	for _, m := range []*dns.Msg{testZone().announcement(), testZone().goodbye(), peerZone("bob", "bbbb2222", 1, 3, "fe80::1").announcement()} {
		b, err := m.Pack()
		if err != nil {
			f.Fatal(err)
		}
		f.Add(b)
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := unpack(b)
		if err != nil {
			return
		}
		r, err := parseResponse(m)
		if err != nil {
			return
		}
		tb := newTable("")
		tb.apply(r, "eth0", src0, t0)
		for _, p := range tb.snapshot() {
			if p.Instance == "" || len(p.Instance) > maxLabel {
				t.Fatalf("bad instance %q", p.Instance)
			}
			if p.Complete() && (p.ID == "" || p.Port == 0) {
				t.Fatalf("complete peer without id or port: %+v", p)
			}
			for _, a := range p.Addrs {
				if !a.Addr().IsValid() || a.Addr().IsUnspecified() || a.Addr().IsMulticast() {
					t.Fatalf("unusable address %v", a)
				}
				if a.Addr().Is6() && a.Addr().IsLinkLocalUnicast() && a.Addr().Zone() == "" {
					t.Fatalf("link-local address without zone %v", a)
				}
			}
		}
		tb.expire(t0.Add(maxTTL + time.Second))
		if tb.n != 0 || len(tb.labels) != 0 || len(tb.bySource) != 0 {
			t.Fatalf("peers left after every TTL ran out: %v", tb.snapshot())
		}
		// Answering the same bytes as a query must not panic either.
		buildResponse(testZone(), m, mdnsPort)
	})
}
