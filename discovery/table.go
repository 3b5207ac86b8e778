package discovery

import (
	"maps"
	"net/netip"
	"reflect"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/miekg/dns"
)

const (
	// maxEntries caps the records in the table (one per instance and
	// source address), so a flood of made-up instances cannot eat memory.
	maxEntries = 1024
	// maxPerSource caps the records one source address may hold, so one
	// host cannot fill the table: a real host runs one agent per user.
	maxPerSource = 32
	// maxTTL caps the TTL we honour in received records (RFC 6762 §10
	// suggests 75 minutes for most records), so a hostile record cannot
	// pin an entry forever.
	maxTTL = 75 * time.Minute
	// newRecordTTL caps the TTLs of a record heard only once: a flood sent
	// once with long TTLs is gone after two minutes. A record is confirmed,
	// and honoured up to maxTTL, when its source repeats it at least
	// confirmAfter later (responders announce at least twice a second
	// apart, RFC 6762 §8.3, and answer our refresh queries).
	newRecordTTL = DefaultTTL
	confirmAfter = 500 * time.Millisecond
)

// refreshPoints are the fractions of a record's TTL at which we query again
// for it (RFC 6762 §5.2).
var refreshPoints = []float64{0.80, 0.85, 0.90, 0.95}

// table is the live peer table: what each source address said about each
// instance, with expiries. It holds no locks and does no I/O; the caller
// passes the clock and the source of every response. It decides whom to
// believe, so that someone who copies a peer's public id and instance
// label can add noise but never remove or hide the peer:
//
//   - records are kept per (instance, source address): a response changes
//     only what its own source said before, so a goodbye removes only its
//     source's record and a new SRV or address record from elsewhere adds
//     a record rather than repointing the peer's;
//   - records of one instance that claim the same id, display name and
//     version are listed as one Peer whose Addrs are the union of theirs
//     (the peer layer proves the key of each address it dials); records
//     that claim another id, name or version are listed as another Peer
//     with the same Instance, so a conflicting claim never hides the
//     first one (counted in conflicts);
//   - a claim without an id of an instance that another source claims
//     with an id is ignored (a real agent always has one; counted in
//     conflicts);
//   - address records that arrive without the SRV that points at their
//     host only apply to records from the same source that are without an
//     id (foreign records) or without addresses;
//   - records carrying our own id are ignored (our own announcements loop
//     back);
//   - a source holds at most maxPerSource records; when the table holds
//     maxEntries, a new record evicts one of the source holding the most
//     records (ties: the one heard from least recently), as long as that
//     source holds more than the newcomer's, so a real peer gets in while
//     strangers flood; records heard only once keep at most newRecordTTL.
type table struct {
	selfID    string
	labels    map[string][]*record     // by instance key
	bySource  map[netip.Addr][]*record // by source address (with zone)
	n         int
	conflicts int // claims of a known instance with another id, or without one
	dropped   int // new records refused (source or table full)
	evicted   int // records dropped to make room for another source's

	// due is never later than the earliest deadline (an expiry of a
	// record or address, or a refresh point) of any record, and is zero
	// when there is none. Mutations only move it earlier; expire and
	// refreshDue look at the records only once it has passed, and then
	// make it exact again. So a packet costs O(its records), not O(table):
	// at a hundred peers, scanning the table on every packet was most of
	// an agent's CPU.
	due   time.Time
	scans int // full scans of the table (tests)
	// refreshTTL is the shortest TTL of the records the last refreshDue
	// found due (it bounds the refresh jitter).
	refreshTTL time.Duration

	// rendered caches the Peers of each instance key (see peersOf); an
	// entry is dropped whenever a record of the key changes in a way a
	// Peer shows. Most packets at start-up repeat what the table holds
	// and only move expiry times: with the cache they are turned into
	// no events without rendering any Peer.
	rendered map[string]*rendering
}

// rendering is the Peers of one instance key, by group. It is never
// changed once made: a change of the key's records makes a new one.
type rendering struct {
	peers map[groupKey]Peer
}

// record is what one source said about one instance.
type record struct {
	key   string // lower-cased instance FQDN
	label string // unescaped instance label, as received
	src   netip.Addr
	iface string // where it was last heard

	id, name, version string
	txt               map[string]string
	host              string // lower-cased FQDN
	port              uint16
	ttl               time.Duration

	ptrExp, srvExp, txtExp time.Time
	// ptrClaim is when the PTR expires by its own TTL, not capped for a
	// record heard once: what we list as a known answer, so that its
	// responder, whose PTR says 75 minutes, stays quiet (we keep it
	// shorter, and ask again in time: see known).
	ptrClaim time.Time
	addrs    map[netip.Addr]addrState // addresses carry their zone

	created, heard time.Time
	confirmed      bool // repeated by its source; see newRecordTTL

	// refreshBase/refreshTTL/stage drive the refresh queries.
	refreshBase time.Time
	refreshTTL  time.Duration
	stage       int

	// resolveTries counts the queries we sent for what r lacks (see
	// unresolved); resolveAt is when the next may go.
	resolveTries int
	resolveAt    time.Time
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
	return &table{selfID: selfID, labels: map[string][]*record{}, bySource: map[netip.Addr][]*record{},
		rendered: map[string]*rendering{}}
}

func ttlDur(s uint32) time.Duration { return min(time.Duration(s)*time.Second, maxTTL) }

// ttlOf is the TTL we honour for a record field of s seconds.
func (r *record) ttlOf(s uint32) time.Duration {
	d := ttlDur(s)
	if !r.confirmed {
		d = min(d, newRecordTTL)
	}
	return d
}

// expiry is when r goes: when its SRV expires, if it had one (the SRV is
// a host record, 120 s by default, RFC 6762 §10: the peer cannot be
// dialled without it, and a killed peer must vanish that soon, however
// long its PTR and TXT live), else when its PTR and TXT expire.
func (r *record) expiry() time.Time {
	if !r.srvExp.IsZero() {
		return r.srvExp
	}
	t := r.ptrExp
	if r.txtExp.After(t) {
		t = r.txtExp
	}
	return t
}

// groupKey is what a record claims to be: records with the same key are
// one Peer.
type groupKey struct{ key, id, name, version string }

func (r *record) group() groupKey {
	name := r.name
	if name == "" {
		name = r.label
	}
	return groupKey{r.key, r.id, name, r.version}
}

// peerKey is the identity of a Peer in the table, as groupKey.
func peerKey(p Peer) string {
	return lowerASCII(p.Instance) + "\x00" + p.ID + "\x00" + p.Name + "\x00" + p.Version
}

// peersOf returns the records of one instance key rendered as Peers, by
// group, or nil if the key has none. The rendering is cached until
// changed is called for the key: its Peers share their Addrs and TXT
// with the cache, so callers that hand them out must clone them.
func (t *table) peersOf(key string) *rendering {
	if rd := t.rendered[key]; rd != nil {
		return rd
	}
	recs := t.labels[key]
	if len(recs) == 0 {
		return nil
	}
	groups := make(map[groupKey][]*record, 1)
	for _, r := range recs {
		g := r.group()
		groups[g] = append(groups[g], r)
	}
	out := make(map[groupKey]Peer, len(groups))
	for g, rs := range groups {
		out[g] = render(rs)
	}
	rd := &rendering{peers: out}
	t.rendered[key] = rd
	return rd
}

// changed drops the cached Peers of key: call it after any change to its
// records that a Peer shows (see render).
func (t *table) changed(key string) { delete(t.rendered, key) }

// groups returns the Peers of rd (nil for none).
func (rd *rendering) groups() map[groupKey]Peer {
	if rd == nil {
		return nil
	}
	return rd.peers
}

// render makes the Peer of one group: fields from the most complete
// record (with an SRV, then with a TXT; a responder may split its answers
// across packets and families), heard first (ties: by source); addresses
// from all.
func render(rs []*record) Peer {
	sort.Slice(rs, func(i, j int) bool {
		if ci, cj := rs[i].completeness(), rs[j].completeness(); ci != cj {
			return ci > cj
		}
		if !rs[i].created.Equal(rs[j].created) {
			return rs[i].created.Before(rs[j].created)
		}
		return rs[i].src.Less(rs[j].src)
	})
	e := rs[0]
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
	p.LabelMismatch = e.id != "" && lowerASCII(e.label) != lowerASCII(InstanceName(e.name, e.id))
	for k, v := range e.txt {
		p.TXT[k] = v
	}
	for _, r := range rs {
		if r.port == 0 {
			continue
		}
		for a := range r.addrs {
			if ap := netip.AddrPortFrom(a, r.port); !slices.Contains(p.Addrs, ap) {
				p.Addrs = append(p.Addrs, ap)
			}
		}
	}
	sortAddrsStable(p.Addrs)
	return p
}

func (r *record) completeness() int {
	n := 0
	if r.port != 0 {
		n += 2
	}
	if r.txt != nil {
		n++
	}
	return n
}

// change collects the Peers of the instances a mutation touches, before
// it, to turn the mutation into events.
type change struct {
	t       *table
	touched []touched
	// index finds a key in touched once there are many (a hostile packet
	// may carry hundreds of claims).
	index map[string]int
}

type touched struct {
	key    string
	before *rendering
}

func (t *table) change() *change { return &change{t: t} }

// touch must be called before the records of key change.
func (c *change) touch(key string) {
	if c.index != nil {
		if _, ok := c.index[key]; ok {
			return
		}
	} else {
		for _, x := range c.touched {
			if x.key == key {
				return
			}
		}
	}
	c.touched = append(c.touched, touched{key: key, before: c.t.peersOf(key)})
	switch {
	case c.index != nil:
		c.index[key] = len(c.touched) - 1
	case len(c.touched) > 8:
		c.index = make(map[string]int, 2*len(c.touched))
		for i, x := range c.touched {
			c.index[x.key] = i
		}
	}
}

// events compares the touched instances now with before: a Peer that
// appeared is PeerUp, one that went is PeerDown (with its last state), one
// that changed is PeerUpdate. An instance whose rendering was not dropped
// since it was touched (see table.changed) is unchanged.
func (c *change) events() []Event {
	var keys []touched
	for _, x := range c.touched {
		if rd := c.t.rendered[x.key]; (rd != nil && rd == x.before) || (x.before == nil && len(c.t.labels[x.key]) == 0) {
			continue
		}
		keys = append(keys, x)
	}
	if len(keys) == 0 {
		return nil
	}
	sort.Slice(keys, func(i, j int) bool { return keys[i].key < keys[j].key })
	var evs []Event
	for _, x := range keys {
		before, after := x.before.groups(), c.t.peersOf(x.key).groups()
		var gs []groupKey
		for g := range before {
			gs = append(gs, g)
		}
		for g := range after {
			if _, ok := before[g]; !ok {
				gs = append(gs, g)
			}
		}
		sort.Slice(gs, func(i, j int) bool { return lessGroup(gs[i], gs[j]) })
		for _, g := range gs {
			b, hadB := before[g]
			a, hasA := after[g]
			switch {
			case hadB && !hasA:
				evs = append(evs, Event{Kind: PeerDown, Peer: b})
			case !hadB && hasA:
				evs = append(evs, Event{Kind: PeerUp, Peer: a})
			case !reflect.DeepEqual(a, b):
				evs = append(evs, Event{Kind: PeerUpdate, Peer: a})
			}
		}
	}
	return evs
}

func lessGroup(a, b groupKey) bool {
	if a.key != b.key {
		return a.key < b.key
	}
	if a.id != b.id {
		return a.id < b.id
	}
	if a.name != b.name {
		return a.name < b.name
	}
	return a.version < b.version
}

// apply merges one response from src received on iface at now and returns
// the resulting events.
func (t *table) apply(r response, iface string, src netip.Addr, now time.Time) []Event {
	ch := t.change()
	for i := range r.claims {
		t.applyClaim(ch, &r.claims[i], iface, src, now)
	}
	hosts := make([]string, 0, len(r.hostAddrs))
	for h := range r.hostAddrs {
		hosts = append(hosts, h)
	}
	sort.Strings(hosts)
	for _, host := range hosts {
		for _, rec := range t.bySource[src] {
			// Alone, address records complete a record of their source
			// that has none (avahi's reflector answers our question for
			// them with them alone), but never change a peer's addresses.
			if rec.host != host || (rec.id != "" && len(rec.addrs) > 0) {
				continue
			}
			ch.touch(rec.key)
			if rec.mergeAddrs(r.hostAddrs[host], iface, now) {
				t.changed(rec.key)
			}
			t.noteDeadlines(rec)
		}
	}
	return ch.events()
}

func (t *table) applyClaim(ch *change, c *claim, iface string, src netip.Addr, now time.Time) {
	claimID := ""
	if c.hasTXT {
		claimID = c.txt[txtID]
	}
	if t.selfID != "" && claimID == t.selfID {
		return
	}
	var r *record
	// conflicting: another source claims this instance with another id
	// (or this claim has none).
	conflicting := false
	for _, x := range t.labels[c.key] {
		if x.src == src {
			r = x
		} else if x.id != "" && x.id != claimID && now.Before(x.expiry()) {
			conflicting = true
		}
	}
	ch.touch(c.key)
	if r != nil && !now.Before(r.expiry()) {
		// Expired but not yet collected: forget it before judging the claim.
		t.remove(r)
		r = nil
	}
	if c.goodbye() {
		if r != nil {
			t.remove(r)
		} else if conflicting {
			t.conflicts++ // someone else's goodbye: changes nothing
		}
		return
	}
	if r == nil {
		if conflicting {
			t.conflicts++
			if claimID == "" {
				return // a real agent always has an id
			}
			// Another id: listed apart, the known peer stays.
		}
		if !t.makeRoom(ch, src) {
			t.dropped++
			return
		}
		r = &record{key: c.key, label: c.label, src: src, iface: iface, addrs: map[netip.Addr]addrState{}, created: now}
		t.labels[c.key] = append(t.labels[c.key], r)
		t.bySource[src] = append(t.bySource[src], r)
		t.n++
		t.changed(c.key)
	} else if !r.confirmed && now.Sub(r.created) >= confirmAfter {
		r.confirmed = true
	}
	was, wasTXT := r.shown(), r.txt
	r.iface, r.heard, r.label = iface, now, c.label
	renewed := false
	if c.hasPTR {
		d := r.ttlOf(c.ptrTTL)
		r.ptrExp = now.Add(d)
		r.ptrClaim = now.Add(ttlDur(c.ptrTTL))
		if r.srvExp.IsZero() {
			// Without an SRV the PTR is the record's life; with one, the
			// SRV is (see expiry).
			r.ttl = d
			renewed = true
		}
	}
	if c.hasSRV {
		if r.host != c.host {
			clear(r.addrs)
		}
		r.host, r.port = c.host, c.port
		r.ttl = r.ttlOf(c.srvTTL)
		r.srvExp = now.Add(r.ttl)
		renewed = true
	}
	if c.hasTXT {
		// The same TXT keeps the map the record has, so it stays unchanged
		// (see changed). The table never writes to a claim's map: parsed
		// responses may be reused (see responseCache).
		if wasTXT == nil || !maps.Equal(wasTXT, c.txt) {
			r.txt = c.txt
		}
		r.id, r.name, r.version = r.txt[txtID], r.txt[txtName], r.txt[txtVersion]
		r.txtExp = now.Add(r.ttlOf(c.txtTTL))
	}
	if renewed {
		r.refreshBase, r.refreshTTL, r.stage = now, r.ttl, 0
	}
	addrsChanged := r.mergeAddrs(c.addrs, iface, now)
	if addrsChanged || r.shown() != was || !sameMap(r.txt, wasTXT) {
		t.changed(c.key)
	}
	t.noteDeadlines(r)
}

// shownFields is what a Peer shows of a record (see render), but for its
// TXT and addresses.
type shownFields struct {
	label, iface, id, name, version, host string
	port                                  uint16
	ttl                                   time.Duration
}

func (r *record) shown() shownFields {
	return shownFields{r.label, r.iface, r.id, r.name, r.version, r.host, r.port, r.ttl}
}

// sameMap reports whether a and b are the same map (both nil included).
func sameMap(a, b map[string]string) bool {
	if a == nil || b == nil {
		return a == nil && b == nil
	}
	return reflect.ValueOf(a).UnsafePointer() == reflect.ValueOf(b).UnsafePointer()
}

// noteDeadlines moves t.due no later than r's earliest deadline; call it
// after any change to r's times.
func (t *table) noteDeadlines(r *record) {
	if d := r.earliest(); !d.IsZero() && (t.due.IsZero() || d.Before(t.due)) {
		t.due = d
	}
}

// earliest returns r's earliest deadline: an expiry or a refresh point.
func (r *record) earliest() time.Time {
	n := r.expiry()
	if n.IsZero() {
		return r.created // a record with no TTL at all is due at once
	}
	upd := func(x time.Time) {
		if !x.IsZero() && (n.IsZero() || x.Before(n)) {
			n = x
		}
	}
	for _, st := range r.addrs {
		upd(st.exp)
	}
	upd(r.refreshAt())
	return n
}

// rescan recomputes t.due exactly.
func (t *table) rescan() {
	t.due = time.Time{}
	for _, rs := range t.labels {
		for _, r := range rs {
			t.noteDeadlines(r)
		}
	}
}

// makeRoom reports whether a new record from src may enter, evicting
// another source's record if the table is full (see table).
func (t *table) makeRoom(ch *change, src netip.Addr) bool {
	mine := len(t.bySource[src])
	if mine >= maxPerSource {
		return false
	}
	if t.n < maxEntries {
		return true
	}
	var victim []*record
	var victimHeard time.Time
	var victimSrc netip.Addr
	for a, rs := range t.bySource {
		heard := lastHeard(rs)
		switch {
		case len(rs) > len(victim):
		case len(rs) < len(victim):
			continue
		case heard.Before(victimHeard):
		case heard.Equal(victimHeard) && a.Less(victimSrc):
		default:
			continue
		}
		victim, victimHeard, victimSrc = rs, heard, a
	}
	if len(victim) <= mine {
		return false
	}
	oldest := victim[0]
	for _, r := range victim[1:] {
		if r.heard.Before(oldest.heard) {
			oldest = r
		}
	}
	ch.touch(oldest.key)
	t.remove(oldest)
	t.evicted++
	return true
}

func lastHeard(rs []*record) time.Time {
	var t time.Time
	for _, r := range rs {
		if r.heard.After(t) {
			t = r.heard
		}
	}
	return t
}

// remove deletes r from the table.
func (t *table) remove(r *record) {
	t.changed(r.key)
	del := func(rs []*record) []*record {
		return slices.DeleteFunc(rs, func(x *record) bool { return x == r })
	}
	if rs := del(t.labels[r.key]); len(rs) > 0 {
		t.labels[r.key] = rs
	} else {
		delete(t.labels, r.key)
	}
	if rs := del(t.bySource[r.src]); len(rs) > 0 {
		t.bySource[r.src] = rs
	} else {
		delete(t.bySource, r.src)
	}
	t.n--
}

// mergeAddrs applies address records heard on iface. A record with the
// cache-flush bit replaces the record set it belongs to: the A records (for
// an A) or the AAAA records (for an AAAA) we heard on iface, except those
// heard within flushGrace, which are kept. Flushing only the record's own
// type matters: avahi, by default, answers over IPv6 with AAAA records alone,
// and must not wipe the A records its IPv4 answer brought.
//
// It reports whether the set of addresses changed.
func (r *record) mergeAddrs(recs []addrRecord, iface string, now time.Time) (changed bool) {
	var flush4, flush6 bool
	for _, ar := range recs {
		if ar.flush {
			flush4 = flush4 || ar.addr.Is4()
			flush6 = flush6 || ar.addr.Is6()
		}
	}
	for a, st := range r.addrs {
		if st.iface != iface || now.Sub(st.seen) < flushGrace || !(a.Is4() && flush4 || a.Is6() && flush6) {
			continue
		}
		if end := now.Add(flushGrace); st.exp.After(end) {
			st.exp = end
			r.addrs[a] = st
		}
	}
	for _, ar := range recs {
		a := ar.addr
		if a.Is6() && a.IsLinkLocalUnicast() {
			a = a.WithZone(iface)
		}
		_, had := r.addrs[a]
		if ar.ttl == 0 {
			delete(r.addrs, a)
			changed = changed || had
			continue
		}
		r.addrs[a] = addrState{exp: now.Add(r.ttlOf(ar.ttl)), seen: now, iface: iface}
		changed = changed || !had
	}
	return changed
}

// records returns the records keep accepts, by instance key and then
// source.
func (t *table) records(keep func(*record) bool) []*record {
	var out []*record
	for _, rs := range t.labels {
		for _, r := range rs {
			if keep(r) {
				out = append(out, r)
			}
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].key != out[j].key {
			return out[i].key < out[j].key
		}
		return out[i].src.Less(out[j].src)
	})
	return out
}

// expire drops what has expired at now. Before t.due it returns at once;
// after, it looks at every record once and sets t.due again.
func (t *table) expire(now time.Time) []Event {
	if t.due.IsZero() || now.Before(t.due) {
		return nil
	}
	t.scans++
	var due []*record
	for _, rs := range t.labels {
		for _, r := range rs {
			if r.expiredAt(now) {
				due = append(due, r)
			}
		}
	}
	if len(due) == 0 {
		t.rescan()
		return nil
	}
	sort.Slice(due, func(i, j int) bool {
		if due[i].key != due[j].key {
			return due[i].key < due[j].key
		}
		return due[i].src.Less(due[j].src)
	})
	ch := t.change()
	for _, r := range due {
		ch.touch(r.key)
		if !now.Before(r.expiry()) {
			t.remove(r)
			continue
		}
		for a, st := range r.addrs {
			if !now.Before(st.exp) {
				delete(r.addrs, a)
				t.changed(r.key)
			}
		}
	}
	t.rescan()
	return ch.events()
}

// expiredAt reports whether r or one of its addresses has expired at now.
func (r *record) expiredAt(now time.Time) bool {
	if !now.Before(r.expiry()) {
		return true
	}
	for _, st := range r.addrs {
		if !now.Before(st.exp) {
			return true
		}
	}
	return false
}

// dropIface forgets everything learned only on iface (it went away).
func (t *table) dropIface(iface string) []Event {
	ch := t.change()
	for _, r := range t.records(func(*record) bool { return true }) {
		if r.iface == iface {
			ch.touch(r.key)
			t.remove(r)
			continue
		}
		for a, st := range r.addrs {
			if st.iface == iface {
				ch.touch(r.key)
				delete(r.addrs, a)
				t.changed(r.key)
			}
		}
	}
	return ch.events()
}

// next returns when the table next needs attention (an expiry or a refresh
// query), or the zero time if never. It may be early (see table.due), never
// late.
func (t *table) next() time.Time { return t.due }

func (r *record) refreshAt() time.Time {
	if r.stage >= len(refreshPoints) || r.refreshTTL <= 0 {
		return time.Time{}
	}
	return r.refreshBase.Add(time.Duration(float64(r.refreshTTL) * refreshPoints[r.stage]))
}

// refreshDue reports whether some record reached a refresh point at now,
// and advances those records to their next point.
func (t *table) refreshDue(now time.Time) bool {
	if t.due.IsZero() || now.Before(t.due) {
		return false
	}
	t.scans++
	defer t.rescan()
	due := false
	t.refreshTTL = 0
	for _, rs := range t.labels {
		for _, r := range rs {
			for at := r.refreshAt(); !at.IsZero() && !now.Before(at); at = r.refreshAt() {
				r.stage++
				due = true
				if t.refreshTTL == 0 || r.refreshTTL < t.refreshTTL {
					t.refreshTTL = r.refreshTTL
				}
			}
		}
	}
	return due
}

// resolveGap spaces the queries for one record's missing parts.
const resolveGap = 250 * time.Millisecond

// maxResolveTries bounds the queries for one record's missing SRV, TXT or
// addresses, so a flood of bare PTRs cannot keep us asking.
const maxResolveTries = 3

// need is what a record lacks: the questions that would complete it.
type need struct {
	instance string // instance FQDN (lower case)
	host     string // host FQDN from its SRV, or ""
	srv, txt bool   // ask for the SRV, the TXT
	addrs    bool   // ask for A and AAAA (with the SRV: see apply)
}

// unresolved returns what the live records heard on iface lack, once per
// record at most every 250 ms and maxResolveTries times: a PTR without
// SRV or TXT, an SRV without addresses. Responders send them all together
// (RFC 6763 §12), but avahi's reflector answers a PTR question from its
// cache with the PTR alone, so a querier must ask for the rest (§12 lets
// it). Addresses are asked for with the SRV, since address records alone
// do not change a peer with an id.
func (t *table) unresolved(iface string, now time.Time) []need {
	var out []need
	for _, rs := range t.labels {
		for _, r := range rs {
			if r.iface != iface || r.resolveTries >= maxResolveTries || now.Before(r.resolveAt) || !now.Before(r.expiry()) {
				continue
			}
			n := need{instance: r.key, host: r.host, srv: r.port == 0, txt: r.txt == nil}
			if r.port != 0 && len(r.addrs) == 0 {
				n.srv, n.addrs = true, true
			}
			if !n.srv && !n.txt {
				continue
			}
			r.resolveTries++
			r.resolveAt = now.Add(resolveGap)
			out = append(out, n)
		}
	}
	sort.Slice(out, func(i, j int) bool { return out[i].instance < out[j].instance })
	return out
}

// known returns the instances seen on iface whose records, from every
// source heard there, have more than half their life left (see expiry:
// the SRV's TTL when there is one), with the seconds left of the soonest
// PTR by its own TTL (even while we keep it shorter), for known-answer
// suppression. An instance with a record past half
// its life is left out, so that its responder answers: someone repeating
// a peer's PTR must not keep the peer itself quiet, and a PTR of 75
// minutes must not keep an SRV of 2 minutes from being refreshed.
func (t *table) known(iface string, now time.Time) map[string]uint32 {
	out := map[string]uint32{}
	for _, rs := range t.labels {
		if label, least, ok := knownOf(rs, iface, now); ok {
			out[label] = uint32(least / time.Second)
		}
	}
	return out
}

// knownOn reports whether known(iface, now) lists the instance of key
// (a lower-cased instance FQDN), without building the whole list.
func (t *table) knownOn(key, iface string, now time.Time) bool {
	_, _, ok := knownOf(t.labels[key], iface, now)
	return ok
}

// holdsAsker reports whether we hold the records of the agent that asked
// a query from src on iface whose known answers are known: records from
// src were heard on iface, every one of them is one known(iface, now)
// lists, and exactly one of their instances is not among the query's
// known answers, its asker's, since no agent lists itself. Agents on one
// host (users of one machine) send from one address: a query that lists
// every instance we hold from src was asked by another, one we lack.
func (t *table) holdsAsker(src netip.Addr, iface string, known []dns.RR, now time.Time) bool {
	unlisted := 0
	for _, r := range t.bySource[src] {
		if r.iface != iface {
			continue
		}
		if !t.knownOn(r.key, iface, now) {
			return false
		}
		if !slices.ContainsFunc(known, func(rr dns.RR) bool {
			ptr, ok := rr.(*dns.PTR)
			return ok && strings.EqualFold(ptr.Hdr.Name, serviceFQDN) && strings.EqualFold(ptr.Ptr, r.key)
		}) {
			unlisted++
		}
	}
	return unlisted == 1
}

// knownOf is known for the records of one instance: its label and the
// time left of its soonest PTR, if it is listed.
func knownOf(rs []*record, iface string, now time.Time) (label string, least time.Duration, ok bool) {
	for _, r := range rs {
		if r.iface != iface {
			continue
		}
		left := r.ptrClaim.Sub(now)
		if r.ttl <= 0 || r.expiry().Sub(now) <= r.ttl/2 || !now.Before(r.ptrExp) {
			return "", 0, false
		}
		if !ok || left < least {
			label, least = r.label, left
		}
		ok = true
	}
	return label, least, ok
}

// snapshot returns all peers, sorted by instance (then id, name, version).
func (t *table) snapshot() []Peer {
	keys := make([]string, 0, len(t.labels))
	for k := range t.labels {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	var out []Peer
	for _, k := range keys {
		ps := t.peersOf(k).groups()
		gs := make([]groupKey, 0, len(ps))
		for g := range ps {
			gs = append(gs, g)
		}
		sort.Slice(gs, func(i, j int) bool { return lessGroup(gs[i], gs[j]) })
		for _, g := range gs {
			out = append(out, ps[g].clone())
		}
	}
	return out
}
