package discovery

import (
	"net/netip"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

const (
	// cacheFlush is the top bit of the rrclass in mDNS answers (RFC 6762
	// §10.2): set on records only we own (SRV, TXT, A, AAAA), not on the
	// shared PTR.
	cacheFlush = 1 << 15
	// unicastResponse is the top bit of the qclass in mDNS questions (RFC
	// 6762 §5.4, the "QU" bit).
	unicastResponse = 1 << 15
	// legacyTTL caps TTLs in answers to legacy unicast queries (RFC 6762
	// §6.7).
	legacyTTL = 10

	maxTXTString = 255 // bytes in one TXT character-string
	maxTXTKeys   = 64  // keys we keep from a received TXT record
)

// TXT keys every lanshare agent publishes.
const (
	txtID      = "id"
	txtVersion = "v"
	txtName    = "name"
)

// encodeTXT builds TXT character-strings "key=value" for the given pairs, in
// the order given, escaped for miekg/dns (which reads backslash escapes in
// TXT strings). It never returns an empty list: a record without strings
// must still carry one zero-length string (RFC 6763 §6.1), where
// hashicorp/mdns (via miekg/dns) would send rdata of length zero.
func encodeTXT(pairs [][2]string) []string {
	var out []string
	for _, kv := range pairs {
		s := kv[0] + "=" + kv[1]
		if len(s) > maxTXTString {
			s = truncateUTF8(s, maxTXTString)
		}
		out = append(out, escapeTXT(s))
	}
	if len(out) == 0 {
		out = []string{""}
	}
	return out
}

// escapeTXT escapes a raw TXT string for miekg/dns: backslashes and double
// quotes get a backslash, bytes outside printable ASCII become \DDD. This is
// the form miekg/dns unpacks to, so it round-trips.
func escapeTXT(s string) string {
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '\\' || c == '"':
			b.WriteByte('\\')
			b.WriteByte(c)
		case c < ' ' || c > '~':
			b.WriteByte('\\')
			b.WriteByte('0' + c/100)
			b.WriteByte('0' + c/10%10)
			b.WriteByte('0' + c%10)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// unescapeTXT reverses escapeTXT (and miekg/dns's unpacking). A malformed
// escape is kept literally.
func unescapeTXT(s string) string {
	if strings.IndexByte(s, '\\') < 0 {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		if c != '\\' || i+1 >= len(s) {
			b.WriteByte(c)
			continue
		}
		if isDigit3(s[i+1:]) {
			v := int(s[i+1]-'0')*100 + int(s[i+2]-'0')*10 + int(s[i+3]-'0')
			if v <= 255 {
				b.WriteByte(byte(v))
				i += 3
				continue
			}
		}
		b.WriteByte(s[i+1])
		i++
	}
	return b.String()
}

// decodeTXT turns TXT strings (as miekg/dns unpacks them) into a map. Keys
// are lower-cased (RFC 6763 §6.4); the first occurrence of a key wins; a
// string without '=' is a boolean attribute with an empty value; empty keys
// and keys beyond maxTXTKeys are dropped.
func decodeTXT(ss []string) map[string]string {
	m := make(map[string]string)
	for _, s := range ss {
		if len(m) >= maxTXTKeys {
			break
		}
		s = unescapeTXT(s)
		k, v, _ := strings.Cut(s, "=")
		if k == "" {
			continue
		}
		k = strings.ToLower(k)
		if _, dup := m[k]; !dup {
			m[k] = v
		}
	}
	return m
}

// zone is the set of records one agent publishes on one interface. It
// implements hashicorp/mdns's Zone interface (see mdns.go), so the records
// we answer with are the same shape the library's own server would use.
type zone struct {
	instance string       // raw (unescaped) instance label
	host     string       // host label, without ".local."
	port     uint16       // SRV port
	txt      []string     // escaped TXT strings, never empty
	addrs    []netip.Addr // addresses valid on this interface
	ttl      uint32       // seconds, of the host records: SRV, A, AAAA
	// serviceTTL is the TTL of the PTR and TXT records, in seconds (zero:
	// ttl). RFC 6762 §10 gives records that name no host 75 minutes.
	serviceTTL uint32
}

func (z *zone) instanceName() string { return instanceFQDN(z.instance) }
func (z *zone) hostName() string     { return z.host + "." + Domain }

func (z *zone) hdr(name string, t uint16, unique bool) dns.RR_Header {
	class := uint16(dns.ClassINET)
	if unique {
		class |= cacheFlush
	}
	return dns.RR_Header{Name: name, Rrtype: t, Class: class, Ttl: z.ttl}
}

// serviceHdr is hdr with the TTL of records that name no host.
func (z *zone) serviceHdr(name string, t uint16, unique bool) dns.RR_Header {
	h := z.hdr(name, t, unique)
	if z.serviceTTL != 0 {
		h.Ttl = z.serviceTTL
	}
	return h
}

func (z *zone) ptr() dns.RR {
	return &dns.PTR{Hdr: z.serviceHdr(serviceFQDN, dns.TypePTR, false), Ptr: z.instanceName()}
}

func (z *zone) enumPTR() dns.RR {
	return &dns.PTR{Hdr: z.serviceHdr(servicesEnum, dns.TypePTR, false), Ptr: serviceFQDN}
}

func (z *zone) srv() dns.RR {
	return &dns.SRV{Hdr: z.hdr(z.instanceName(), dns.TypeSRV, true), Port: z.port, Target: z.hostName()}
}

func (z *zone) txtRR() dns.RR {
	txt := z.txt
	if len(txt) == 0 {
		txt = []string{""}
	}
	return &dns.TXT{Hdr: z.serviceHdr(z.instanceName(), dns.TypeTXT, true), Txt: append([]string(nil), txt...)}
}

// addrRRs returns the A (v4 true) or AAAA (v4 false) records for the
// configured addresses; the host name is never resolved.
func (z *zone) addrRRs(v4 bool) []dns.RR {
	var out []dns.RR
	for _, a := range z.addrs {
		a = a.Unmap()
		if a.Is4() && v4 {
			ip := a.As4()
			out = append(out, &dns.A{Hdr: z.hdr(z.hostName(), dns.TypeA, true), A: ip[:]})
		} else if a.Is6() && !v4 {
			ip := a.WithZone("").As16()
			out = append(out, &dns.AAAA{Hdr: z.hdr(z.hostName(), dns.TypeAAAA, true), AAAA: ip[:]})
		}
	}
	return out
}

// Records returns the answers to question q (the hashicorp/mdns Zone
// contract): the PTR for a service-type or service-enumeration query, SRV and
// TXT for the instance, A/AAAA for the host. Names compare
// case-insensitively; the qclass's unicast-response bit is ignored.
func (z *zone) Records(q dns.Question) []dns.RR {
	if c := q.Qclass &^ unicastResponse; c != dns.ClassINET && c != dns.ClassANY {
		return nil
	}
	name := lowerASCII(q.Name)
	any := q.Qtype == dns.TypeANY
	switch name {
	case lowerASCII(serviceFQDN):
		if any || q.Qtype == dns.TypePTR {
			return []dns.RR{z.ptr()}
		}
	case lowerASCII(servicesEnum):
		if any || q.Qtype == dns.TypePTR {
			return []dns.RR{z.enumPTR()}
		}
	case lowerASCII(z.instanceName()):
		var out []dns.RR
		if any || q.Qtype == dns.TypeSRV {
			out = append(out, z.srv())
		}
		if any || q.Qtype == dns.TypeTXT {
			out = append(out, z.txtRR())
		}
		return out
	case lowerASCII(z.hostName()):
		var out []dns.RR
		if any || q.Qtype == dns.TypeA {
			out = append(out, z.addrRRs(true)...)
		}
		if any || q.Qtype == dns.TypeAAAA {
			out = append(out, z.addrRRs(false)...)
		}
		return out
	}
	return nil
}

// additional returns the records RFC 6763 §12 recommends alongside answers:
// SRV, TXT and addresses for a PTR answer, addresses for an SRV answer.
// Records already among the answers are left out.
func (z *zone) additional(answers []dns.RR) []dns.RR {
	var wantSRV, wantTXT, wantAddr bool
	for _, rr := range answers {
		switch rr.Header().Rrtype {
		case dns.TypePTR:
			if rr.(*dns.PTR).Ptr == z.instanceName() {
				wantSRV, wantTXT, wantAddr = true, true, true
			}
		case dns.TypeSRV:
			wantAddr = true
		}
	}
	var extra []dns.RR
	if wantSRV {
		extra = append(extra, z.srv())
	}
	if wantTXT {
		extra = append(extra, z.txtRR())
	}
	if wantAddr {
		extra = append(extra, z.addrRRs(true)...)
		extra = append(extra, z.addrRRs(false)...)
	}
	return without(extra, answers)
}

// all returns every record of the zone, for announcements and goodbyes.
func (z *zone) all() []dns.RR {
	out := []dns.RR{z.ptr(), z.srv(), z.txtRR()}
	out = append(out, z.addrRRs(true)...)
	return append(out, z.addrRRs(false)...)
}

// announcement is the unsolicited response that announces the zone (RFC 6762
// §8.3): all records as answers, in a message with ID 0 and no question.
func (z *zone) announcement() *dns.Msg {
	m := responseMsg()
	m.Answer = z.all()
	return m
}

// goodbye is the announcement with every TTL set to zero (RFC 6762 §10.1).
// It carries the TXT record too, so receivers can check the id before they
// drop the peer.
func (z *zone) goodbye() *dns.Msg {
	m := z.announcement()
	for _, rr := range m.Answer {
		rr.Header().Ttl = 0
	}
	return m
}

func responseMsg() *dns.Msg {
	m := new(dns.Msg)
	m.Response = true
	m.Authoritative = true
	m.Compress = true
	return m
}

// without returns the records of rrs that are not in drop (same name, type
// and data; TTL and class bits ignored).
func without(rrs, drop []dns.RR) []dns.RR {
	var out []dns.RR
	for _, rr := range rrs {
		found := false
		for _, d := range drop {
			if sameRecord(rr, d) {
				found = true
				break
			}
		}
		if !found {
			out = append(out, rr)
		}
	}
	return out
}

// sameRecord compares name (case-insensitively), type and rdata, ignoring
// TTL and the cache-flush bit.
func sameRecord(a, b dns.RR) bool {
	ha, hb := a.Header(), b.Header()
	if ha.Rrtype != hb.Rrtype || !strings.EqualFold(ha.Name, hb.Name) {
		return false
	}
	if pa, ok := a.(*dns.PTR); ok {
		// The common case, without copies: a query's known answers are
		// PTRs, a hundred of them on a crowded link, each compared with
		// our answer by every responder.
		pb, ok := b.(*dns.PTR)
		return ok && strings.EqualFold(pa.Ptr, pb.Ptr)
	}
	return dns.IsDuplicate(normalized(a), normalized(b))
}

func normalized(rr dns.RR) dns.RR {
	c := dns.Copy(rr)
	h := c.Header()
	h.Class &^= cacheFlush
	h.Ttl = 0
	return c
}

// buildResponse answers an mDNS query q received from source port srcPort,
// from the records of z. It returns nil when we have nothing to say. unicast
// reports that the answer must go back to the querier's address rather than
// to the multicast group: for legacy queries (source port other than 5353,
// RFC 6762 §6.7; the answer then echoes the ID and question and caps TTLs)
// and when every answered question set the QU bit (§5.4). Otherwise the
// answer is multicast, so every cache on the link (and any other responder
// on our host, such as avahi) sees it; hashicorp/mdns always answers unicast.
// Answers the querier listed as known with at least half their TTL left are
// suppressed (§7.1).
func buildResponse(z *zone, q *dns.Msg, srcPort int) (resp *dns.Msg, unicast bool) {
	if q.Response || q.Opcode != dns.OpcodeQuery || q.Rcode != dns.RcodeSuccess {
		return nil, false
	}
	legacy := srcPort != mdnsPort
	var answers []dns.RR
	allQU := true
	for _, qq := range q.Question {
		rrs := z.Records(qq)
		if len(rrs) == 0 {
			continue
		}
		if qq.Qclass&unicastResponse == 0 {
			allQU = false
		}
		for _, rr := range rrs {
			if !knownAnswer(rr, q.Answer) && len(without([]dns.RR{rr}, answers)) == 1 {
				answers = append(answers, rr)
			}
		}
	}
	if len(answers) == 0 {
		return nil, false
	}
	resp = responseMsg()
	resp.Answer = answers
	resp.Extra = z.additional(answers)
	if legacy {
		resp.Id = q.Id
		resp.Question = q.Question
		for _, rr := range append(append([]dns.RR(nil), resp.Answer...), resp.Extra...) {
			h := rr.Header()
			h.Class &^= cacheFlush
			h.Ttl = min(h.Ttl, legacyTTL)
		}
		return resp, true
	}
	return resp, allQU
}

// knownAnswer reports whether rr is among the query's known answers with at
// least half of rr's TTL left (RFC 6762 §7.1).
func knownAnswer(rr dns.RR, known []dns.RR) bool {
	for _, k := range known {
		if sameRecord(rr, k) && k.Header().Ttl >= rr.Header().Ttl/2 {
			return true
		}
	}
	return false
}

// browseQuery builds our query for the service type: one PTR question
// (multicast answers wanted, or unicast if qu) and, as known answers, the
// PTR records we already hold with more than half their TTL left (given in
// known, TTLs in seconds remaining).
func browseQuery(known []dns.RR, qu bool) *dns.Msg {
	m := new(dns.Msg)
	m.Question = []dns.Question{{Name: serviceFQDN, Qtype: dns.TypePTR, Qclass: dns.ClassINET}}
	if qu {
		m.Question[0].Qclass |= unicastResponse
	}
	m.Answer = known
	m.Compress = true
	return m
}

// knownPTR is the known-answer record for instance with ttl seconds left.
func knownPTR(instance string, ttl uint32) dns.RR {
	return &dns.PTR{
		Hdr: dns.RR_Header{Name: serviceFQDN, Rrtype: dns.TypePTR, Class: dns.ClassINET, Ttl: ttl},
		Ptr: instanceFQDN(instance),
	}
}

// sortAddrsStable orders addresses deterministically: IPv4, then IPv6
// global, then IPv6 link-local, each by address.
func sortAddrsStable(a []netip.AddrPort) {
	sort.SliceStable(a, func(i, j int) bool {
		ri, rj := addrRank(a[i].Addr(), nil), addrRank(a[j].Addr(), nil)
		if ri != rj {
			return ri < rj
		}
		return a[i].Addr().Less(a[j].Addr())
	})
}
