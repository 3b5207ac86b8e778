package discovery

import (
	"net/netip"
	"reflect"
	"sort"
	"strings"
	"time"
)

// maxPeers caps the table, so a flood of made-up instances cannot eat memory.
const maxPeers = 1024

// refreshPoints are the fractions of a record's TTL at which we query again
// for it (RFC 6762 §5.2).
var refreshPoints = []float64{0.80, 0.85, 0.90, 0.95}

// table is the live peer table: the records we heard, with their expiry,
// grouped per instance. It holds no locks and does no I/O; the caller passes
// the clock. It is the place that decides whom to believe:
//
//   - once an instance is known with an id, a response about that instance
//     only applies if it carries a TXT record with the same id; anything
//     else (a spoofed goodbye, a second agent claiming the same instance
//     name) is counted as a conflict and changes nothing, so the legitimate
//     entry stays until its own goodbye or TTL;
//   - address records that arrive without the SRV that points at their host
//     only apply to entries without an id (foreign records);
//   - records carrying our own id are ignored (our own announcements loop
//     back).
type table struct {
	selfID    string
	peers     map[string]*entry
	conflicts int // claims ignored because their id did not match
	dropped   int // new instances refused because the table was full
	evicted   int
}

type entry struct {
	key   string
	label string

	id, name, version string
	txt               map[string]string
	host              string // lower-cased FQDN
	port              uint16
	ttl               time.Duration
	iface             string

	ptrExp, srvExp, txtExp time.Time
	addrs                  map[netip.Addr]addrState // addresses carry their zone

	// refreshBase/refreshTTL/stage drive the refresh queries.
	refreshBase time.Time
	refreshTTL  time.Duration
	stage       int
}

type addrState struct {
	exp   time.Time
	seen  time.Time // when a record for it was last heard
	iface string
}

// flushGrace is how long a cache-flush record spares the records it replaces
// (RFC 6762 §10.2): those heard within the last second are kept, since a
// responder may split one record set across packets; older ones expire one
// second later.
const flushGrace = time.Second

func newTable(selfID string) *table {
	return &table{selfID: selfID, peers: map[string]*entry{}}
}

// maxTTL caps the TTL we honour in received records (RFC 6762 §10 suggests
// 75 minutes for most records), so a hostile record cannot pin an entry
// forever.
const maxTTL = 75 * time.Minute

func ttlDur(s uint32) time.Duration { return min(time.Duration(s)*time.Second, maxTTL) }

func (e *entry) expiry() time.Time {
	t := e.ptrExp
	if e.srvExp.After(t) {
		t = e.srvExp
	}
	if e.txtExp.After(t) {
		t = e.txtExp
	}
	return t
}

// peer renders the entry as a Peer snapshot.
func (e *entry) peer() Peer {
	p := Peer{
		Instance: e.label,
		Name:     e.name,
		ID:       e.id,
		Version:  e.version,
		Host:     strings.TrimSuffix(e.host, "."),
		Port:     int(e.port),
		Iface:    e.iface,
		TTL:      e.ttl,
		TXT:      make(map[string]string, len(e.txt)),
	}
	if p.Name == "" {
		p.Name = e.label
	}
	for k, v := range e.txt {
		p.TXT[k] = v
	}
	if e.port != 0 {
		for a := range e.addrs {
			p.Addrs = append(p.Addrs, netip.AddrPortFrom(a, e.port))
		}
		sortAddrsStable(p.Addrs)
	}
	return p
}

// apply merges one response received on iface at now and returns the
// resulting events.
func (t *table) apply(r response, iface string, now time.Time) []Event {
	var evs []Event
	for i := range r.claims {
		evs = append(evs, t.applyClaim(&r.claims[i], iface, now)...)
	}
	for host, recs := range r.hostAddrs {
		for _, e := range t.sortedEntries() {
			if e.id != "" || e.host != host {
				continue
			}
			before := e.peer()
			e.mergeAddrs(recs, iface, now)
			evs = append(evs, diff(before, e.peer())...)
		}
	}
	return evs
}

func (t *table) applyClaim(c *claim, iface string, now time.Time) []Event {
	claimID := ""
	if c.hasTXT {
		claimID = c.txt[txtID]
	}
	if t.selfID != "" && claimID == t.selfID {
		return nil
	}
	e := t.peers[c.key]
	if e != nil && !now.Before(e.expiry()) {
		// Expired but not yet collected: forget it before judging the claim.
		delete(t.peers, c.key)
		e = nil
	}
	if e != nil && e.id != "" && (!c.hasTXT || claimID != e.id) {
		t.conflicts++
		return nil
	}
	if c.goodbye() {
		if e == nil {
			return nil
		}
		delete(t.peers, c.key)
		return []Event{{Kind: PeerDown, Peer: e.peer()}}
	}
	created := false
	if e == nil {
		if len(t.peers) >= maxPeers {
			t.dropped++
			return nil
		}
		e = &entry{key: c.key, label: c.label, iface: iface, addrs: map[netip.Addr]addrState{}}
		t.peers[c.key] = e
		created = true
	}
	before := e.peer()
	renewed := false
	if c.hasPTR {
		e.ptrExp = now.Add(ttlDur(c.ptrTTL))
		e.ttl = ttlDur(c.ptrTTL)
		renewed = true
	}
	if c.hasSRV {
		if e.host != c.host {
			clear(e.addrs)
		}
		e.host, e.port = c.host, c.port
		e.srvExp = now.Add(ttlDur(c.srvTTL))
		e.ttl = ttlDur(c.srvTTL)
		renewed = true
	}
	if c.hasTXT {
		e.txt = c.txt
		e.id, e.name, e.version = c.txt[txtID], c.txt[txtName], c.txt[txtVersion]
		e.txtExp = now.Add(ttlDur(c.txtTTL))
	}
	if renewed {
		e.refreshBase, e.refreshTTL, e.stage = now, e.ttl, 0
	}
	e.mergeAddrs(c.addrs, iface, now)
	if created {
		return []Event{{Kind: PeerUp, Peer: e.peer()}}
	}
	return diff(before, e.peer())
}

// mergeAddrs applies address records heard on iface. A record with the
// cache-flush bit replaces the record set it belongs to: the A records (for
// an A) or the AAAA records (for an AAAA) we heard on iface, except those
// heard within flushGrace, which are kept. Flushing only the record's own
// type matters: avahi, by default, answers over IPv6 with AAAA records alone,
// and must not wipe the A records its IPv4 answer brought.
func (e *entry) mergeAddrs(recs []addrRecord, iface string, now time.Time) {
	var flush4, flush6 bool
	for _, r := range recs {
		if r.flush {
			flush4 = flush4 || r.addr.Is4()
			flush6 = flush6 || r.addr.Is6()
		}
	}
	for a, st := range e.addrs {
		if st.iface != iface || now.Sub(st.seen) < flushGrace || !(a.Is4() && flush4 || a.Is6() && flush6) {
			continue
		}
		if end := now.Add(flushGrace); st.exp.After(end) {
			st.exp = end
			e.addrs[a] = st
		}
	}
	for _, r := range recs {
		a := r.addr
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(iface)
		}
		if r.ttl == 0 {
			delete(e.addrs, a)
			continue
		}
		e.addrs[a] = addrState{exp: now.Add(ttlDur(r.ttl)), seen: now, iface: iface}
	}
}

// expire drops what has expired at now.
func (t *table) expire(now time.Time) []Event {
	var evs []Event
	for _, e := range t.sortedEntries() {
		if !now.Before(e.expiry()) {
			delete(t.peers, e.key)
			evs = append(evs, Event{Kind: PeerDown, Peer: e.peer()})
			continue
		}
		before := e.peer()
		changed := false
		for a, st := range e.addrs {
			if !now.Before(st.exp) {
				delete(e.addrs, a)
				changed = true
			}
		}
		if changed {
			evs = append(evs, diff(before, e.peer())...)
		}
	}
	return evs
}

// dropIface forgets everything learned only on iface (it went away).
func (t *table) dropIface(iface string) []Event {
	var evs []Event
	for _, e := range t.sortedEntries() {
		before := e.peer()
		for a, st := range e.addrs {
			if st.iface == iface {
				delete(e.addrs, a)
			}
		}
		if e.iface == iface && len(e.addrs) == 0 {
			delete(t.peers, e.key)
			evs = append(evs, Event{Kind: PeerDown, Peer: before})
			continue
		}
		if e.iface == iface {
			for _, st := range e.addrs {
				e.iface = st.iface
				break
			}
		}
		evs = append(evs, diff(before, e.peer())...)
	}
	return evs
}

// next returns when the table next needs attention (an expiry or a refresh
// query), or the zero time if never.
func (t *table) next() time.Time {
	var n time.Time
	upd := func(x time.Time) {
		if !x.IsZero() && (n.IsZero() || x.Before(n)) {
			n = x
		}
	}
	for _, e := range t.peers {
		upd(e.expiry())
		for _, st := range e.addrs {
			upd(st.exp)
		}
		upd(e.refreshAt())
	}
	return n
}

func (e *entry) refreshAt() time.Time {
	if e.stage >= len(refreshPoints) || e.refreshTTL <= 0 {
		return time.Time{}
	}
	return e.refreshBase.Add(time.Duration(float64(e.refreshTTL) * refreshPoints[e.stage]))
}

// refreshDue reports whether some entry reached a refresh point at now, and
// advances those entries to their next point.
func (t *table) refreshDue(now time.Time) bool {
	due := false
	for _, e := range t.peers {
		for at := e.refreshAt(); !at.IsZero() && !now.Before(at); at = e.refreshAt() {
			e.stage++
			due = true
		}
	}
	return due
}

// known returns the instances seen on iface whose PTR has more than half its
// TTL left, with the seconds left, for known-answer suppression.
func (t *table) known(iface string, now time.Time) map[string]uint32 {
	out := map[string]uint32{}
	for _, e := range t.peers {
		if e.iface != iface || e.ttl <= 0 {
			continue
		}
		left := e.ptrExp.Sub(now)
		if left > e.ttl/2 {
			out[e.label] = uint32(left / time.Second)
		}
	}
	return out
}

func (t *table) sortedEntries() []*entry {
	out := make([]*entry, 0, len(t.peers))
	for _, e := range t.peers {
		out = append(out, e)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].key < out[j].key })
	return out
}

// snapshot returns all peers, sorted by instance.
func (t *table) snapshot() []Peer {
	var out []Peer
	for _, e := range t.sortedEntries() {
		out = append(out, e.peer())
	}
	return out
}

// diff returns a PeerUpdate event when the peer changed.
func diff(before, after Peer) []Event {
	if reflect.DeepEqual(before, after) {
		return nil
	}
	return []Event{{Kind: PeerUpdate, Peer: after}}
}
