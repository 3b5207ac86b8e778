package discovery

import (
	"fmt"
	"net/netip"
	"sort"
	"strings"

	"github.com/miekg/dns"
)

const (
	mdnsPort = 5353
	// maxPacket is the largest mDNS message we look at (RFC 6762 §17).
	maxPacket = 9000
	// maxRecords caps the records we look at in one message.
	maxRecords = 256
)

// addrRecord is one A or AAAA record for a host.
type addrRecord struct {
	addr  netip.Addr // no zone: that depends on the receiving interface
	ttl   uint32
	flush bool // cache-flush bit set
}

// claim is what one mDNS response says about one instance of our service
// type. A TTL of zero in a present record is a goodbye.
type claim struct {
	key   string // lower-cased instance FQDN, the table key
	label string // unescaped instance label

	hasPTR bool
	ptrTTL uint32

	hasSRV bool
	srvTTL uint32
	host   string // lower-cased SRV target FQDN
	port   uint16

	hasTXT bool
	txtTTL uint32
	txt    map[string]string

	// addrs are the address records in the same message for host.
	addrs []addrRecord
}

func (c *claim) goodbye() bool {
	return c.hasPTR && c.ptrTTL == 0 || c.hasSRV && c.srvTTL == 0 || c.hasTXT && c.txtTTL == 0
}

// response is what a received mDNS response says about our service type.
type response struct {
	claims []claim // sorted by key
	// hostAddrs holds address records for hosts that no SRV in the same
	// message points at, keyed by lower-cased host FQDN.
	hostAddrs map[string][]addrRecord
	// ignored counts records that are not about our service type (other
	// service types, other hosts, unknown types).
	ignored int
}

// unpack decodes a packet, refusing oversized ones. It never panics on
// hostile input (miekg/dns bounds every read).
func unpack(b []byte) (*dns.Msg, error) {
	if len(b) > maxPacket {
		return nil, fmt.Errorf("%w: %d bytes", ErrMalformed, len(b))
	}
	m := new(dns.Msg)
	if err := m.Unpack(b); err != nil {
		return nil, fmt.Errorf("%w: %v", ErrMalformed, err)
	}
	return m, nil
}

// parseResponse extracts what an mDNS response says about _lanshare._tcp
// instances. It only looks at records whose names belong to our service type
// (PTR _lanshare._tcp.local., SRV and TXT of "<one label>._lanshare._tcp.local.")
// and at address records; everything else (other service types included) is
// counted as ignored. Messages that are not responses (QR clear), or have a
// non-zero opcode or rcode, are rejected (RFC 6762 §18).
func parseResponse(m *dns.Msg) (response, error) {
	var r response
	if !m.Response {
		return r, fmt.Errorf("%w: not a response", ErrMalformed)
	}
	if m.Opcode != dns.OpcodeQuery || m.Rcode != dns.RcodeSuccess {
		return r, fmt.Errorf("%w: opcode %d rcode %d", ErrMalformed, m.Opcode, m.Rcode)
	}
	rrs := make([]dns.RR, 0, len(m.Answer)+len(m.Extra))
	rrs = append(rrs, m.Answer...)
	rrs = append(rrs, m.Ns...)
	rrs = append(rrs, m.Extra...)
	if len(rrs) > maxRecords {
		r.ignored += len(rrs) - maxRecords
		rrs = rrs[:maxRecords]
	}
	claims := map[string]*claim{}
	get := func(fqdn string) *claim {
		// Names that differ only in case are equally valid: check and
		// unescape a name once per message.
		key := lowerASCII(fqdn)
		if c := claims[key]; c != nil {
			return c
		}
		label, ok := splitInstance(fqdn)
		if !ok {
			return nil
		}
		c := &claim{key: key, label: label}
		claims[key] = c
		return c
	}
	addrs := map[string][]addrRecord{}
	for _, rr := range rrs {
		h := rr.Header()
		if h.Class&^cacheFlush != dns.ClassINET {
			r.ignored++
			continue
		}
		flush := h.Class&cacheFlush != 0
		switch rr := rr.(type) {
		case *dns.PTR:
			if !strings.EqualFold(h.Name, serviceFQDN) {
				r.ignored++
				continue
			}
			c := get(rr.Ptr)
			if c == nil {
				r.ignored++
				continue
			}
			c.hasPTR, c.ptrTTL = true, h.Ttl
		case *dns.SRV:
			c := get(h.Name)
			if c == nil || rr.Port == 0 || !validTarget(rr.Target) {
				r.ignored++
				continue
			}
			c.hasSRV, c.srvTTL = true, h.Ttl
			c.host, c.port = lowerASCII(rr.Target), rr.Port
		case *dns.TXT:
			c := get(h.Name)
			if c == nil {
				r.ignored++
				continue
			}
			c.hasTXT, c.txtTTL = true, h.Ttl
			c.txt = decodeTXT(rr.Txt)
		case *dns.A:
			a, ok := netip.AddrFromSlice(rr.A)
			if !ok || !usableAddr(a.Unmap()) {
				r.ignored++
				continue
			}
			n := lowerASCII(h.Name)
			addrs[n] = append(addrs[n], addrRecord{addr: a.Unmap(), ttl: h.Ttl, flush: flush})
		case *dns.AAAA:
			a, ok := netip.AddrFromSlice(rr.AAAA)
			if !ok || !usableAddr(a) {
				r.ignored++
				continue
			}
			n := lowerASCII(h.Name)
			addrs[n] = append(addrs[n], addrRecord{addr: a, ttl: h.Ttl, flush: flush})
		default:
			r.ignored++
		}
	}
	used := map[string]bool{}
	for _, c := range claims {
		if c.hasSRV {
			c.addrs = addrs[c.host]
			used[c.host] = true
		}
		r.claims = append(r.claims, *c)
	}
	sort.Slice(r.claims, func(i, j int) bool { return r.claims[i].key < r.claims[j].key })
	for host, as := range addrs {
		if !used[host] {
			if r.hostAddrs == nil {
				r.hostAddrs = map[string][]addrRecord{}
			}
			r.hostAddrs[host] = as
		}
	}
	return r, nil
}

func validTarget(t string) bool {
	return t != "" && t != "." && dns.IsFqdn(t) && len(t) <= 255
}

// usableAddr rejects addresses nobody can dial.
func usableAddr(a netip.Addr) bool {
	return a.IsValid() && !a.IsUnspecified() && !a.IsMulticast()
}
