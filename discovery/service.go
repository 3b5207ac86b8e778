package discovery

import (
	"context"
	"errors"
	"hash/maphash"
	"math/rand/v2"
	"net"
	"net/netip"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/miekg/dns"
)

const (
	// pollInterval is how often we look for interfaces that came or went.
	pollInterval = 2 * time.Second
	// maxQueryDelay caps the browse backoff (1s, 2s, 4s, ... an hour, RFC
	// 6762 §5.2); records in use are refreshed at 80 % of their TTL
	// anyway, and other hosts' queries count as ours (§7.3).
	maxQueryDelay = 60 * time.Minute
	logEvery      = 30 * time.Second
	// minAnswerGap spaces our multicast answers on one interface, so a
	// query flood cannot make us flood the link. RFC 6762 §6 asks for one
	// second per record; we use less so that a one-shot Browse with a one
	// second wait always hears us, and answer the queries of the gap
	// together at its end.
	minAnswerGap = 250 * time.Millisecond
)

// maxAnswerDelay is the longest a multicast answer may wait (RFC 6762
// §6): an announcement due within it answers for us (see answerQuery).
const maxAnswerDelay = 500 * time.Millisecond

// Random delays (RFC 6762 §6, §7.2, §8.1), each drawn between the two
// values: before a multicast answer with a shared record (our PTR), so
// the answers of a hundred responders to one query are spread out and
// those asked several times are sent once; for the rest of a query's known
// answers when it has the TC bit; before our first query and announcement,
// so agents started together do not all speak at once; and after a cache
// refresh is due, so that one of the hosts that share the refresh point
// asks and the others hear it (§7.3) rather than all asking at once (at
// most 2 % of the record's TTL, §5.2).
var (
	answerDelay  = [2]time.Duration{20 * time.Millisecond, 120 * time.Millisecond}
	tcDelay      = [2]time.Duration{400 * time.Millisecond, 500 * time.Millisecond}
	startDelay   = [2]time.Duration{0, 250 * time.Millisecond}
	refreshDelay = [2]time.Duration{0, 2 * time.Second}
)

// resolveDelay is how long after a response we look for records it left
// incomplete (see table.unresolved).
const resolveDelay = 100 * time.Millisecond

// maxResolveQuestions caps the questions of one resolve query.
const maxResolveQuestions = 32

func randIn(r [2]time.Duration) time.Duration {
	if r[1] <= r[0] {
		return r[0]
	}
	return r[0] + rand.N(r[1]-r[0])
}

const (
	// maxPartialQueries caps the truncated queries we wait on at once
	// (one per source and query ID); more are answered without waiting.
	maxPartialQueries = 64
	// maxPartialPerSource caps those of one source address: agents on one
	// host share it, but one source varying its query IDs must not take
	// every slot.
	maxPartialPerSource = 4
	// maxKnownAnswers caps the known answers we collect for one
	// truncated query.
	maxKnownAnswers = 1024
	// recvBuffer is the socket receive buffer we ask for: the answers of
	// a few hundred responders to one query arrive within 100 ms, and the
	// kernel's default (about 200 KiB, some 100 small packets) overflowed
	// at a hundred agents. Without privileges the kernel caps it at
	// net.core.rmem_max.
	recvBuffer = 4 << 20
)

// minRefreshGap spaces our cache-refresh queries: records whose refresh
// points fall close together (a flood of short TTLs) are refreshed by one
// query, so strangers cannot make us flood the link with queries. Any
// query asks for every instance, so it refreshes them all.
const minRefreshGap = 250 * time.Millisecond

// announceOffsets are when we announce after starting on an interface:
// twice, one second apart, as RFC 6762 §8.3 asks at least. Every host on
// the link takes each announcement over each family, and the third we
// used to send, at 3 s, was a fifth of what every agent received while a
// hundred started together. A peer that missed both learns of us from our
// answer to its next query, which does not list us (§7.1): its browse
// backoff, or at the latest its refresh of the others' records (80 % of
// their 2-minute SRV TTL).
var announceOffsets = []time.Duration{0, time.Second}

// Stats counts what the service saw; useful to check that hostile traffic
// was noticed without reading logs.
type Stats struct {
	Received  uint64 // packets read on served interfaces
	Malformed uint64 // packets or responses that could not be used
	Ignored   uint64 // records about other services, or responses from a port other than 5353
	// OffLink counts packets dropped because they did not come from the
	// link they arrived on (RFC 6762 §11): a source address outside the
	// interface's subnets (queries and responses), or a response whose IP
	// TTL / hop limit was not 255.
	OffLink uint64
	// Conflicts counts claims of a known instance with another id, or
	// without an id; the known peer is never hidden by them (see Peer).
	Conflicts uint64
	// Dropped counts new records refused because their source already
	// held 32 records, or the table held 1024 and no source held more
	// than theirs.
	Dropped uint64
	// Evicted counts records dropped from a full table to make room for a
	// record of a source holding fewer.
	Evicted uint64
	Sent    uint64 // packets sent
}

// Service advertises one agent and keeps a live table of the other agents,
// or (made by Browse and Watch) only browses. Build it with New, then call
// Run; Peers and Subscribe may be used at any time. All methods are safe for
// concurrent use.
type Service struct {
	cfg       Config
	advertise bool
	instance  string
	txt       []string
	// browseOffsets, if set, replaces continuous browsing with queries at
	// these offsets from the start (one-shot Browse).
	browseOffsets []time.Duration
	// onReady, if set, is called once the sockets are open and the first
	// interfaces joined (tests).
	onReady func()
	// queryID marks our own queries, so we recognise them when multicast
	// loopback brings them back and do not answer ourselves. RFC 6762
	// §18.1 only says the ID of a multicast query SHOULD be zero.
	queryID uint16

	log *logLimiter

	received, malformed, ignored, offLink, sent atomic.Uint64

	mu      sync.Mutex
	table   *table
	own     []netip.AddrPort // our advertised addresses (Addrs)
	subs    map[*subscriber]struct{}
	closed  bool
	running bool
	cancel  context.CancelFunc
	done    chan struct{}
	subWG   sync.WaitGroup
}

// New checks cfg (see Config.Validate; zero Host and TTL get defaults) and
// returns a Service that will advertise it. It opens nothing: Run does.
func New(cfg Config) (*Service, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	cfg = cfg.withDefaults()
	s := newService(cfg, true)
	s.instance = InstanceName(cfg.Name, cfg.ID)
	s.txt = encodeTXT(cfg.txtPairs())
	s.table.selfID = cfg.ID
	return s, nil
}

func newService(cfg Config, advertise bool) *Service {
	cfg = cfg.withDefaults()
	return &Service{
		cfg:       cfg,
		advertise: advertise,
		log:       newLogLimiter(cfg.Logf, logEvery),
		queryID:   newQueryID(0),
		table:     newTable(""),
		subs:      map[*subscriber]struct{}{},
	}
}

// Instance returns the instance label we advertise, e.g. "bob (3fa2)".
func (s *Service) Instance() string { return s.instance }

// Peers returns the current peer table, sorted by instance; our own record
// is not in it.
func (s *Service) Peers() []Peer {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.table.snapshot()
}

// Stats returns counters since New.
func (s *Service) Stats() Stats {
	s.mu.Lock()
	conflicts, full, evicted := s.table.conflicts, s.table.dropped, s.table.evicted
	s.mu.Unlock()
	return Stats{
		Received:  s.received.Load(),
		Malformed: s.malformed.Load(),
		Ignored:   s.ignored.Load(),
		OffLink:   s.offLink.Load(),
		Conflicts: uint64(conflicts),
		Dropped:   uint64(full),
		Evicted:   uint64(evicted),
		Sent:      s.sent.Load(),
	}
}

// Subscribe returns a channel of peer events, starting with a PeerUp for
// every peer already known, and a function that ends the subscription. The
// channel is closed by that function or by Close. Events are never dropped:
// while the reader lags, pending events for the same peer are merged, so it
// always ends up with the latest state of every peer. The caller must keep
// reading or cancel.
func (s *Service) Subscribe() (<-chan Event, func()) {
	sub := newSubscriber()
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		close(sub.out)
		return sub.out, func() {}
	}
	for _, p := range s.table.snapshot() {
		sub.push(Event{Kind: PeerUp, Peer: p})
	}
	s.subs[sub] = struct{}{}
	s.subWG.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.subWG.Done()
		sub.pump()
	}()
	return sub.out, func() {
		s.mu.Lock()
		delete(s.subs, sub)
		s.mu.Unlock()
		sub.stop()
	}
}

// publish hands events to subscribers; s.mu must be held.
func (s *Service) publish(evs []Event) {
	for _, ev := range evs {
		for sub := range s.subs {
			sub.push(Event{Kind: ev.Kind, Peer: ev.Peer.clone()})
		}
	}
}

// Close stops Run (which sends goodbyes), ends all subscriptions and waits
// for every goroutine of the service. It is safe to call more than once and
// before or without Run.
func (s *Service) Close() error {
	s.mu.Lock()
	s.closed = true
	cancel, done, subs := s.cancel, s.done, s.subs
	s.subs = map[*subscriber]struct{}{}
	s.mu.Unlock()
	if cancel != nil {
		cancel()
		<-done
	}
	for sub := range subs {
		sub.stop()
	}
	s.subWG.Wait()
	return nil
}

// ifState is one served interface.
type ifState struct {
	info ifaceInfo
	// src4 and src6 are the addresses everything we send on the
	// interface leaves from (see sources), or invalid if it has none of
	// the family.
	src4, src6 netip.Addr
	j4, j6     bool        // joined the group for this family
	v4, v6     bool        // joined, and sending works for this family
	announceAt []time.Time // pending announcements

	// Multicast answers per family (0 IPv4, 1 IPv6) are spaced at least
	// minAnswerGap apart; queries arriving sooner are answered together,
	// once, when the gap has passed.
	answerNext    [2]time.Time
	answerPending [2]bool
	// answerAt is when the pending answer goes out, answerRRs what it
	// holds: the answers to every query heard meanwhile, together.
	answerAt  [2]time.Time
	answerRRs [2][]dns.RR
}

// partialQuery is a query with the TC bit whose known answers we collect
// from its source's next packets before answering (RFC 6762 §7.2).
type partialQuery struct {
	st  *ifState
	msg *dns.Msg
	due time.Time
	// held is when we first held back answering it (see hold).
	held time.Time
}

// partialKey tells truncated queries apart: by source (RFC 6762 §7.2)
// and query ID. Agents on one host (users of one machine) send from one
// address and port, each with its own ID in every packet of a query, and
// the rest of one's query was taken for the rest of another's; stacks
// that send ID 0 (§18.1) are told apart by source alone.
type partialKey struct {
	src netip.AddrPort
	id  uint16
}

// partialFrom counts the truncated queries from addr we wait on.
func (rs *runState) partialFrom(addr netip.Addr) int {
	n := 0
	for k := range rs.partial {
		if k.src.Addr() == addr {
			n++
		}
	}
	return n
}

// runState is owned by Run's goroutine.
type runState struct {
	socks *sockets
	// sentQueries holds a hash of each query we sent lately, and when:
	// how ownQuery tells our own looped-back queries from those of an
	// agent beside us that drew the same query ID.
	sentQueries map[uint64]time.Time
	ifs         map[int]*ifState
	start       time.Time
	nextQuery   time.Time // zero: no query planned
	// refreshPending: a record reached a refresh point, and the query
	// waits for minRefreshGap since lastQuery.
	refreshPending bool
	lastQuery      time.Time
	queryDelay     time.Duration
	browseIdx      int
	nextPoll       time.Time
	// refreshAt is when the pending refresh query may go (see
	// refreshDelay).
	refreshAt time.Time
	// queries counts the browse queries sent (see askUnicast).
	queries int
	partial map[partialKey]*partialQuery
	// resolveAt is when we look for records that lack an SRV, a TXT or
	// addresses, and ask for them (zero: not planned).
	resolveAt time.Time
	// responses keeps responses parsed lately (see responseCache).
	responses responseCache
	// unread reports whether packets wait to be handled (nil: never);
	// queryHeld is when the query now due was first held back for them
	// (zero: not held), heldUntil when we look again, maxHold how long
	// at most (see hold).
	unread               func() bool
	queryHeld, heldUntil time.Time
	maxHold              time.Duration
}

// Run opens the mDNS sockets (sharing UDP port 5353 with other responders),
// joins the multicast groups on the selected interfaces, announces us,
// answers queries and browses until ctx is done or Close is called. Then it
// sends goodbyes, closes the sockets and returns nil. It fails at once with
// ErrNoSocket if no socket can be opened, ErrClosed after Close, or
// ErrRunning if Run is already running.
func (s *Service) Run(ctx context.Context) error {
	s.mu.Lock()
	switch {
	case s.closed:
		s.mu.Unlock()
		return ErrClosed
	case s.running:
		s.mu.Unlock()
		return ErrRunning
	}
	ctx, cancel := context.WithCancel(ctx)
	done := make(chan struct{})
	s.running, s.cancel, s.done = true, cancel, done
	s.mu.Unlock()
	defer func() {
		cancel()
		s.mu.Lock()
		s.running, s.cancel, s.done = false, nil, nil
		s.mu.Unlock()
		close(done)
	}()

	socks, err := openSockets(mdnsPort)
	if err != nil && !s.advertise {
		// A querier does not need port 5353: fall back to a legacy
		// (ephemeral port) query, answered by unicast.
		socks, err = openSockets(0)
	}
	if err != nil {
		return err
	}
	pkts := make(chan packet, 128)
	var wg sync.WaitGroup
	reader := func(read func([]byte) (packet, error)) {
		defer wg.Done()
		readPackets(ctx, read, 65536, pkts, func(err error) { s.log.printf("read", "reading mDNS socket: %v", err) })
	}
	if socks.p4 != nil {
		wg.Add(1)
		go reader(socks.read4)
	}
	if socks.p6 != nil {
		wg.Add(1)
		go reader(socks.read6)
	}
	defer func() {
		socks.close()
		wg.Wait()
	}()

	now := time.Now()
	rs := &runState{socks: socks, ifs: map[int]*ifState{}, start: now, queryDelay: time.Second,
		partial: map[partialKey]*partialQuery{},
		unread:  func() bool { return len(pkts) > 0 || socks.unread() }, maxHold: maxHold}
	if s.browseOffsets != nil {
		rs.maxHold = maxBrowseHold
	}
	s.syncIfaces(rs, now)
	if len(rs.ifs) == 0 {
		want := "none is up with multicast and an address"
		if len(s.cfg.Ifaces) > 0 {
			want = "none of " + strings.Join(s.cfg.Ifaces, ", ") + " is up with multicast and an address"
		}
		s.log.printf("noiface", "no usable interface yet (%s); will keep looking", want)
	}
	rs.nextQuery = now
	if s.advertise {
		rs.nextQuery = now.Add(randIn(startDelay))
	}
	if s.onReady != nil {
		s.onReady()
	}

	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		now := time.Now()
		s.due(rs, now)
		wake := s.nextWake(rs)
		timer.Reset(max(time.Until(wake), 0))
		select {
		case <-ctx.Done():
			s.sayGoodbye(rs)
			return nil
		case p := <-pkts:
			s.handle(rs, p, time.Now())
		case <-timer.C:
		}
	}
}

// due does every piece of timed work whose time has come.
func (s *Service) due(rs *runState, now time.Time) {
	if !now.Before(rs.nextPoll) {
		s.syncIfaces(rs, now)
		rs.nextPoll = now.Add(pollInterval)
	}
	if s.advertise {
		for _, st := range rs.ifs {
			if len(st.announceAt) > 0 && !now.Before(st.announceAt[0]) {
				st.announceAt = st.announceAt[1:]
				s.sendAll(rs, st, s.zoneFor(st.info).announcement())
				// It carries every record a pending answer holds.
				st.answerPending, st.answerRRs = [2]bool{}, [2][]dns.RR{}
			}
			s.sendPendingAnswers(rs, st, now)
		}
	}
	for key, pq := range rs.partial {
		if !now.Before(pq.due) && !rs.hold(&pq.held, now) {
			delete(rs.partial, key)
			s.answerQuery(rs, pq.st, pq.msg, key.src, now)
		}
	}
	if !rs.resolveAt.IsZero() && !now.Before(rs.resolveAt) {
		rs.resolveAt = time.Time{}
		for _, st := range rs.ifs {
			s.resolve(rs, st, now)
		}
	}
	s.mu.Lock()
	s.publish(s.table.expire(now))
	// Advance the refresh points even for a one-shot browse, which does not
	// act on them, so they never stay due (and wake us) forever.
	if s.table.refreshDue(now) && s.browseOffsets == nil && !rs.refreshPending {
		// At most 2 % of the TTL (RFC 6762 §5.2), so short TTLs are
		// refreshed in time.
		jitter := [2]time.Duration{0, min(refreshDelay[1], s.table.refreshTTL/50)}
		rs.refreshPending, rs.refreshAt = true, now.Add(randIn(jitter))
	}
	s.mu.Unlock()
	refresh := rs.refreshPending && !now.Before(rs.refreshAt) && !now.Before(rs.lastQuery.Add(minRefreshGap))
	if (refresh || (!rs.nextQuery.IsZero() && !now.Before(rs.nextQuery))) && !rs.hold(&rs.queryHeld, now) {
		qu := s.askUnicast(rs)
		for _, st := range rs.ifs {
			for _, m := range s.query(st, now, qu) {
				if qu {
					s.sendOneFamily(rs, st, m)
				} else {
					s.sendAll(rs, st, m)
				}
			}
		}
		rs.refreshPending, rs.lastQuery = false, now
		rs.queries++
		s.planQuery(rs, now, refresh)
	}
}

// maxHold bounds how long timed work that depends on what peers told us
// waits for the packets received before it to be handled (see hold);
// a one-shot browse, which waits a second in all, holds its second query
// at most maxBrowseHold. holdStep is how soon we look again when no
// packet comes meanwhile.
const (
	maxHold       = time.Second
	maxBrowseHold = 250 * time.Millisecond
	holdStep      = 10 * time.Millisecond
)

// hold reports whether work due at now waits because packets we have
// received are not handled yet: a query of ours, which lists what we know
// as known answers (RFC 6762 §7.1), and our answer to a query with the
// TC bit, which waits for the rest of its known answers (§7.2). *since
// is when the work was first held (zero: not yet); it waits at most
// rs.maxHold, so a flood cannot keep us silent. Every peer a query leaves
// out answers it, and a query answered before its last known answers are
// read is answered by every peer it lists: by multicast to every host on
// the link, for a question without the QU bit. When 200 agents started
// together on two cores, agents whose packets had queued up sent such
// queries and such answers, which queued up the packets of every agent
// further.
func (rs *runState) hold(since *time.Time, now time.Time) bool {
	if rs.unread == nil || (!since.IsZero() && now.Sub(*since) >= rs.maxHold) || !rs.unread() {
		return false
	}
	if since.IsZero() {
		*since = now
	}
	rs.heldUntil = now.Add(holdStep)
	return true
}

// askUnicast reports whether the query about to go asks for unicast
// answers (the QU bit, RFC 6762 §5.4): a running agent's first queries
// after it starts (see startUnicastQueries), and a one-shot browse's first. The answers then come to the
// one who asks instead of to every host on the link: when a hundred agents
// start together, multicast answers to each starting agent's first query
// made every agent take a hundred answers per agent started (the start-up
// storm of issue 19), and a one-shot browse cost every agent two hundred
// packets per `peers` call. Their next query asks for multicast answers,
// in case unicast ones went to another socket on port 5353 of the host
// (SO_REUSEPORT gives a unicast datagram to one of them). Our responders
// send their unicast answers from the address their multicasts leave from
// (see sources), so the goodbye of a peer removes what its unicast answer
// told us. While another socket of this host is bound to port 5353
// (another agent, avahi; see sockets.shared), only the first query asks
// for unicast answers: the kernel gives each unicast answer to one of the
// sockets by a hash of the addresses, the same one for every answer of a
// responder, so an agent started on a host where another ran missed the
// peers of other hosts whose answers went to the other's socket until its
// third query, 3 s after it started, in a third to two thirds of the runs
// (2026-12-03). Its second query, a second later, asks them for multicast
// answers; the first still asks for unicast ones, since avahi runs on
// most desktops, and a multicast answer to every starting agent's first
// query is the storm above. A one-shot browse asks for unicast answers all the same: its second
// query, 250 ms later, lists what came and asks the others for multicast
// answers (next to two agents it found every peer in 45 runs of 45 under
// load), and a multicast answer from every peer to every `peers` call
// costs every host on the link a packet per peer.
func (s *Service) askUnicast(rs *runState) bool {
	if s.browseOffsets != nil {
		return rs.browseIdx == 0
	}
	switch {
	case rs.queries >= startUnicastQueries:
		return false
	case rs.queries == 0:
		return true
	default:
		return !rs.socks.shared()
	}
}

// startUnicastQueries is how many of a running agent's first queries ask
// for unicast answers: the one at start and the one a second later. When
// agents start together, some start after others' first query went, or
// answer it late: the second query then lacks them in its known answers,
// and at a hundred agents multicast answers to those second queries were
// most of what every agent received (4,300 of its 5,500 packets). The
// third, two seconds later, asks for multicast answers.
const startUnicastQueries = 2

// planQuery schedules the next browse query after one was sent at now
// (or another host's counted as ours).
func (s *Service) planQuery(rs *runState, now time.Time, refreshOnly bool) {
	rs.queryHeld = time.Time{}
	if s.browseOffsets != nil {
		rs.nextQuery = time.Time{}
		for rs.browseIdx < len(s.browseOffsets) {
			at := rs.start.Add(s.browseOffsets[rs.browseIdx])
			rs.browseIdx++
			if at.After(now) {
				rs.nextQuery = at
				break
			}
		}
		return
	}
	if refreshOnly && rs.nextQuery.After(now) {
		return // a cache refresh does not restart the backoff
	}
	rs.nextQuery = now.Add(rs.queryDelay)
	rs.queryDelay = min(2*rs.queryDelay, maxQueryDelay)
}

func (s *Service) nextWake(rs *runState) time.Time {
	w := rs.nextPoll
	upd := func(t time.Time) {
		if !t.IsZero() && t.Before(w) {
			w = t
		}
	}
	// Work held back (see hold) is looked at again at heldUntil, or as
	// soon as a packet comes.
	updHeld := func(t, held time.Time) {
		if !held.IsZero() && t.Before(rs.heldUntil) {
			t = rs.heldUntil
		}
		upd(t)
	}
	updQuery := func(t time.Time) { updHeld(t, rs.queryHeld) }
	updQuery(rs.nextQuery)
	if rs.refreshPending {
		t := rs.refreshAt
		if gap := rs.lastQuery.Add(minRefreshGap); gap.After(t) {
			t = gap
		}
		updQuery(t)
	}
	for _, pq := range rs.partial {
		updHeld(pq.due, pq.held)
	}
	upd(rs.resolveAt)
	for _, st := range rs.ifs {
		if len(st.announceAt) > 0 {
			upd(st.announceAt[0])
		}
		for fam := range st.answerPending {
			if st.answerPending[fam] {
				upd(st.answerAt[fam])
			}
		}
	}
	s.mu.Lock()
	upd(s.table.next())
	s.mu.Unlock()
	return w
}

// query builds our browse query for one interface (asking for unicast
// answers if qu), with known answers:
// one message, or several with the TC bit when the known answers do not
// fit in one unfragmented packet (see splitQuery).
func (s *Service) query(st *ifState, now time.Time, qu bool) []*dns.Msg {
	s.mu.Lock()
	known := s.table.known(st.info.Name, now)
	s.mu.Unlock()
	insts := make([]string, 0, len(known))
	for inst := range known {
		insts = append(insts, inst)
	}
	slices.Sort(insts)
	rrs := make([]dns.RR, 0, len(insts))
	for _, inst := range insts {
		rrs = append(rrs, knownPTR(inst, known[inst]))
	}
	msgs := splitQuery(browseQuery(nil, qu).Question, rrs, st.info.maxMessage())
	for _, m := range msgs {
		m.Id = s.queryID
	}
	return msgs
}

// resolve asks, on st, for the SRV, TXT and addresses that records heard
// there lack (see table.unresolved).
func (s *Service) resolve(rs *runState, st *ifState, now time.Time) {
	s.mu.Lock()
	needs := s.table.unresolved(st.info.Name, now)
	s.mu.Unlock()
	if len(needs) == 0 {
		return
	}
	m := new(dns.Msg)
	m.Id = s.queryID
	m.Compress = true
	ask := func(name string, t uint16) {
		q := dns.Question{Name: name, Qtype: t, Qclass: dns.ClassINET}
		if len(m.Question) < maxResolveQuestions && !slices.Contains(m.Question, q) {
			m.Question = append(m.Question, q)
		}
	}
	for _, n := range needs {
		if n.srv {
			ask(n.instance, dns.TypeSRV)
		}
		if n.txt {
			ask(n.instance, dns.TypeTXT)
		}
		if n.addrs && n.host != "" {
			ask(n.host, dns.TypeA)
			ask(n.host, dns.TypeAAAA)
		}
	}
	s.sendAll(rs, st, m)
}

func (s *Service) zoneFor(info ifaceInfo) *zone {
	return &zone{
		instance: s.instance,
		host:     s.cfg.Host,
		port:     uint16(s.cfg.Port),
		txt:      s.txt,
		addrs:    info.Addrs,
		ttl:      uint32(s.cfg.TTL / time.Second),

		serviceTTL: uint32(ServiceTTL / time.Second),
	}
}

// sources returns the addresses we send from on the interface info: its
// first IPv4 address, and its first IPv6 link-local address, else its first
// IPv6 address, the ones the kernel itself picks for a multicast packet
// (RFC 6724 prefers a link-local source for the link-local group ff02::fb).
// Unicast answers leave from them too, rather than from the address the
// route to the querier would pick, which can differ (0.0.0.0 against
// 127.0.0.1 on loopback, or a secondary address): peers keep records per
// source, and only a goodbye from the same source removes what an answer
// said (see table).
func sources(info ifaceInfo) (src4, src6 netip.Addr) {
	for _, a := range info.Addrs {
		switch {
		case a.Is4() && !src4.IsValid():
			src4 = a
		case a.Is6() && a.IsLinkLocalUnicast() && (!src6.IsValid() || !src6.IsLinkLocalUnicast()):
			src6 = a
		case a.Is6() && !src6.IsValid():
			src6 = a
		}
	}
	return src4, src6
}

// sendAll multicasts m on every family joined on st.
func (s *Service) sendAll(rs *runState, st *ifState, m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		s.log.printf("pack", "packing message: %v", err)
		return
	}
	if !m.Response {
		rs.noteSentQuery(b, time.Now())
	}
	if st.v4 {
		s.send(rs, b, st, group4)
	}
	if st.v6 {
		s.send(rs, b, st, group6)
	}
}

// sendOneFamily multicasts m on one family joined on st: IPv4 if it can,
// else IPv6. A query asking for unicast answers goes out this way: every
// responder would answer each copy it hears, by unicast to the family it
// came over, with the same records (its A and AAAA records together), so
// a copy over each family doubled the answers, and the copy itself cost
// every host on the link a packet more. An agent that listens over IPv6
// alone still hears our next multicast query (see askUnicast), and its
// announcements reach us anyway.
func (s *Service) sendOneFamily(rs *runState, st *ifState, m *dns.Msg) {
	b, err := m.Pack()
	if err != nil {
		s.log.printf("pack", "packing message: %v", err)
		return
	}
	if !m.Response {
		rs.noteSentQuery(b, time.Now())
	}
	switch {
	case st.v4:
		s.send(rs, b, st, group4)
	case st.v6:
		s.send(rs, b, st, group6)
	}
}

// send sends b to dst out of st's interface from its source address of
// dst's family, and reports whether it went; a failure is logged (rate
// limited).
func (s *Service) send(rs *runState, b []byte, st *ifState, dst netip.AddrPort) bool {
	src := st.src6
	if dst.Addr().Unmap().Is4() {
		src = st.src4
	}
	if err := rs.socks.send(b, st.info.Index, src, dst); err != nil {
		if errors.Is(err, syscall.ENETUNREACH) && dst.Addr().IsMulticast() {
			// No multicast route for this family here (IPv6 on a bare
			// loopback, say): stop using the family on this interface
			// until it changes.
			if dst.Addr().Is4() {
				st.v4 = false
			} else {
				st.v6 = false
			}
		}
		if errors.Is(err, syscall.ENODEV) || errors.Is(err, syscall.ENXIO) {
			rs.nextPoll = time.Now() // the interface went away: resync now
		}
		s.log.printf("send:"+st.info.Name, "sending to %v on %s: %v", dst, st.info.Name, err)
		return false
	}
	s.sent.Add(1)
	return true
}

func (s *Service) sayGoodbye(rs *runState) {
	if !s.advertise {
		return
	}
	for _, st := range rs.ifs {
		s.sendAll(rs, st, s.zoneFor(st.info).goodbye())
	}
}

// handle processes one received packet.
func (s *Service) handle(rs *runState, p packet, now time.Time) {
	st := rs.ifs[p.ifindex]
	if st == nil {
		return // an interface we do not serve
	}
	s.received.Add(1)
	if !st.info.onLink(p.src.Addr()) {
		// RFC 6762 §5.5 and §11: neither believe nor answer a packet from
		// off the link; answering would make us an amplifier for anyone
		// who can route a packet to us.
		s.offLink.Add(1)
		s.log.printf("offlink", "ignoring mDNS packet from %v on %s: not on the link", p.src, st.info.Name)
		return
	}
	m, r, cached := rs.responses.lookup(p.data)
	if !cached {
		var err error
		if m, err = unpack(p.data); err != nil {
			s.malformed.Add(1)
			s.log.printf("malformed", "ignoring packet from %v on %s: %v", p.src, st.info.Name, err)
			return
		}
	}
	if m.Response {
		if p.src.Port() != mdnsPort {
			// RFC 6762 §6: responses not from port 5353 are ignored.
			s.ignored.Add(1)
			return
		}
		if p.hops >= 0 && p.hops != 255 {
			// RFC 6762 §11: responders send with IP TTL 255, so a response
			// that arrives with less crossed a router (its on-link source
			// address is forged) or comes from a stack that ignores the
			// RFC. Queries are not checked: legacy queriers use any TTL.
			s.offLink.Add(1)
			s.log.printf("offlink", "ignoring mDNS response from %v on %s: IP TTL %d, not 255", p.src, st.info.Name, p.hops)
			return
		}
		if !cached {
			var err error
			if r, err = parseResponse(m); err != nil {
				s.malformed.Add(1)
				s.log.printf("malformed", "ignoring response from %v on %s: %v", p.src, st.info.Name, err)
				return
			}
			rs.responses.store(p.data, m, r)
		}
		s.ignored.Add(uint64(r.ignored))
		s.suppressDuplicateAnswers(st, m, p.src)
		if rs.resolveAt.IsZero() {
			// The rest of a split answer may follow: look a little later.
			rs.resolveAt = now.Add(resolveDelay)
		}
		s.mu.Lock()
		before := s.table.conflicts
		s.publish(s.table.apply(r, st.info.Name, p.src.Addr(), now))
		if s.table.conflicts != before {
			s.log.printf("conflict", "response from %v on %s claims a known instance with another id, or none (the known peer is kept)", p.src, st.info.Name)
		}
		s.mu.Unlock()
		return
	}
	if s.ownQuery(rs, st, m, p, now) {
		return
	}
	s.takeQuery(rs, st, m, p.src, now)
}

// takeQuery handles a query from src: at once, or, when it has the TC bit,
// once the rest of its known answers have come (RFC 6762 §7.2) or after
// 400-500 ms.
func (s *Service) takeQuery(rs *runState, st *ifState, m *dns.Msg, src netip.AddrPort, now time.Time) {
	key := partialKey{src, m.Id}
	if len(m.Question) == 0 {
		// More known answers of a truncated query.
		pq := rs.partial[key]
		if pq == nil {
			return
		}
		room := maxKnownAnswers - len(pq.msg.Answer)
		pq.msg.Answer = append(pq.msg.Answer, m.Answer[:min(len(m.Answer), max(room, 0))]...)
		if m.Truncated {
			pq.due = now.Add(randIn(tcDelay))
			return
		}
		delete(rs.partial, key)
		s.answerQuery(rs, pq.st, pq.msg, src, now)
		return
	}
	if m.Truncated && (rs.partial[key] != nil || len(rs.partial) < maxPartialQueries && rs.partialFrom(src.Addr()) < maxPartialPerSource) {
		m.Answer = m.Answer[:min(len(m.Answer), maxKnownAnswers)]
		rs.partial[key] = &partialQuery{st: st, msg: m, due: now.Add(randIn(tcDelay))}
		return
	}
	s.answerQuery(rs, st, m, src, now)
}

// answerQuery answers a whole query (its known answers all in): unicast
// at once when asked (unless the querier is on this host), else by multicast after a random 20-120 ms,
// together with any other answer pending on the interface and no sooner
// than minAnswerGap after the last. A unicast answer to a querier on port
// 5353 that cannot be sent (the kernel may have no room left in its
// neighbour table, say) is multicast instead, so the querier still hears
// it. It also notes a query that asks what ours would (RFC 6762 §7.3).
func (s *Service) answerQuery(rs *runState, st *ifState, m *dns.Msg, src netip.AddrPort, now time.Time) {
	s.noteDuplicateQuestion(rs, st, m, src, now)
	if !s.advertise {
		return
	}
	resp, unicast := buildResponse(s.zoneFor(st.info), m, int(src.Port()))
	if resp == nil {
		return
	}
	if unicast && src.Port() == mdnsPort && st.info.own(src.Addr()) {
		// A querier on this host: the kernel gives a unicast datagram to
		// port 5353 to one of the host's sockets bound to it (SO_REUSEPORT
		// picks one by a hash of the addresses), which may be ours, not
		// the querier's (RFC 6762 §15.1). A multicast answer reaches every
		// one of them.
		unicast = false
	}
	if unicast {
		b, err := resp.Pack()
		if err != nil {
			s.log.printf("pack", "packing response: %v", err)
			return
		}
		if s.send(rs, b, st, src) || src.Port() != mdnsPort {
			return // sent; or lost, for a legacy querier hears no multicast
		}
	}
	if len(st.announceAt) > 0 && st.announceAt[0].Sub(now) <= maxAnswerDelay {
		// Our announcement, due soon, carries every record to every
		// host on the link: a multicast answer before it would be a
		// packet more for each (RFC 6762 §6 lets an answer wait 500
		// ms). When agents start a few milliseconds apart, each one's
		// first queries reach many that have not announced yet.
		return
	}
	fam := 0
	if src.Addr().Is6() {
		fam = 1
	}
	if !st.answerPending[fam] {
		st.answerPending[fam] = true
		st.answerAt[fam] = now.Add(randIn(answerDelay))
		if st.answerAt[fam].Before(st.answerNext[fam]) {
			st.answerAt[fam] = st.answerNext[fam]
		}
		st.answerRRs[fam] = nil
	}
	for _, rr := range resp.Answer {
		if len(without([]dns.RR{rr}, st.answerRRs[fam])) == 1 {
			st.answerRRs[fam] = append(st.answerRRs[fam], rr)
		}
	}
}

// noteDuplicateQuestion treats another host's query as our own next one
// when it asks our question (PTR _lanshare._tcp, multicast answers), lists
// no known answer we would not list ourselves, and comes from a peer
// whose records we hold: its answers will bring us all that ours would
// (RFC 6762 §7.3) but the asker's own, which it does not answer. Without
// this every agent queried on its own schedule, each listing all the
// others. Without the last condition an agent that started after the
// asker's announcements, and so lacked the asker, took each of the
// asker's queries for its own next one, and could miss it for minutes
// (two agents on one host, 2026-12-03). A query from this host's own
// address is never taken: any agent beside us may have sent it. Nor is
// one from an address where we know only agents the query lists: they
// did not ask it, another agent of that host did (see table.holdsAsker).
func (s *Service) noteDuplicateQuestion(rs *runState, st *ifState, m *dns.Msg, src netip.AddrPort, now time.Time) {
	if s.browseOffsets != nil || src.Port() != mdnsPort || !asksForService(m) || st.info.own(src.Addr()) {
		return
	}
	s.mu.Lock()
	holds := s.table.holdsAsker(src.Addr(), st.info.Name, m.Answer, now)
	s.mu.Unlock()
	if !holds || !s.wouldList(m.Answer, st.info.Name, now) {
		return
	}
	rs.refreshPending = false
	rs.lastQuery = now
	if !rs.nextQuery.IsZero() {
		s.planQuery(rs, now, false)
	}
}

// wouldList reports whether every instance the PTR records among known
// list is one our own query on iface would list: ours, or one the table
// lists (see table.known). Each is looked up by its key rather than by
// building our whole list: at a hundred peers that was most of the work
// of taking a query.
func (s *Service) wouldList(known []dns.RR, iface string, now time.Time) bool {
	own := lowerASCII(s.instance)
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, rr := range known {
		ptr, ok := rr.(*dns.PTR)
		if !ok || !strings.EqualFold(ptr.Hdr.Name, serviceFQDN) || s.table.knownOn(lowerASCII(ptr.Ptr), iface, now) {
			continue
		}
		if inst, ok := splitInstance(ptr.Ptr); !ok || s.instance == "" || lowerASCII(inst) != own {
			return false // not a name we would list
		}
	}
	return true
}

// asksForService reports whether q asks for PTR _lanshare._tcp.local.
// with multicast answers.
func asksForService(q *dns.Msg) bool {
	for _, qq := range q.Question {
		if (qq.Qtype == dns.TypePTR || qq.Qtype == dns.TypeANY) && qq.Qclass&unicastResponse == 0 &&
			strings.EqualFold(qq.Name, serviceFQDN) {
			return true
		}
	}
	return false
}

// suppressDuplicateAnswers drops from our pending multicast answer the
// records another responder just sent with at least half our TTL (RFC
// 6762 §7.4).
func (s *Service) suppressDuplicateAnswers(st *ifState, m *dns.Msg, src netip.AddrPort) {
	fam := 0
	if src.Addr().Is6() {
		fam = 1
	}
	if !st.answerPending[fam] || st.info.own(src.Addr()) {
		return
	}
	st.answerRRs[fam] = slices.DeleteFunc(st.answerRRs[fam], func(rr dns.RR) bool {
		return knownAnswer(rr, m.Answer)
	})
	if len(st.answerRRs[fam]) == 0 {
		st.answerPending[fam] = false
	}
}

// ownQuery reports whether q, received as p, is one of our own queries,
// looped back: our query ID, from our address and port, and the very
// bytes of a query we sent. Another agent on this host that drew the
// same ID (one pair in 65,535) sends other bytes, at the latest once
// either knows of the other: we then draw another ID, and take its query
// as any other's. Without the bytes, each would ignore every query of
// the other for good.
func (s *Service) ownQuery(rs *runState, st *ifState, q *dns.Msg, p packet, now time.Time) bool {
	if p.src.Port() != mdnsPort || !st.info.own(p.src.Addr()) {
		return false
	}
	// The bytes first: after a new ID is drawn, our queries sent with the
	// old one may still be on their way back.
	if at, ok := rs.sentQueries[maphash.Bytes(querySeed, p.data)]; ok && now.Sub(at) < sentQueryAge {
		return true
	}
	if q.Id == s.queryID {
		s.queryID = newQueryID(s.queryID)
	}
	return false
}

// querySeed hashes our sent queries (see runState.sentQueries).
var querySeed = maphash.MakeSeed()

// sentQueryAge is how long a sent query is known as ours: far longer
// than the loopback takes, even on a loaded host.
const sentQueryAge = 10 * time.Second

// noteSentQuery records b, a query we send, for ownQuery, and forgets
// those older than sentQueryAge.
func (rs *runState) noteSentQuery(b []byte, now time.Time) {
	if rs.sentQueries == nil {
		rs.sentQueries = map[uint64]time.Time{}
	}
	for h, at := range rs.sentQueries {
		if now.Sub(at) >= sentQueryAge {
			delete(rs.sentQueries, h)
		}
	}
	rs.sentQueries[maphash.Bytes(querySeed, b)] = now
}

// newQueryID draws a query ID other than 0 (which RFC 6762 §18.1 asks
// of other stacks' queries) and old.
func newQueryID(old uint16) uint16 {
	for {
		if id := uint16(rand.N(65535) + 1); id != old {
			return id
		}
	}
}

// sendPendingAnswers sends the multicast answers whose time has come.
func (s *Service) sendPendingAnswers(rs *runState, st *ifState, now time.Time) {
	for fam, dst := range [2]netip.AddrPort{group4, group6} {
		if !st.answerPending[fam] || now.Before(st.answerAt[fam]) {
			continue
		}
		st.answerPending[fam] = false
		st.answerNext[fam] = now.Add(minAnswerGap)
		resp := responseMsg()
		resp.Answer = st.answerRRs[fam]
		resp.Extra = s.zoneFor(st.info).additional(resp.Answer)
		st.answerRRs[fam] = nil
		b, err := resp.Pack()
		if err != nil {
			s.log.printf("pack", "packing response: %v", err)
			continue
		}
		s.send(rs, b, st, dst)
	}
}

// syncIfaces brings the served interfaces in line with the system's.
func (s *Service) syncIfaces(rs *runState, now time.Time) {
	all, err := listIfaces()
	if err != nil {
		s.log.printf("ifaces", "%v", err)
		return
	}
	sel := selectIfaces(all, s.cfg.Ifaces)
	byIndex := map[int]ifaceInfo{}
	for _, info := range sel {
		byIndex[info.Index] = info
	}
	for idx, st := range rs.ifs {
		if info, ok := byIndex[idx]; ok && info.Name == st.info.Name {
			continue
		}
		rs.socks.leave(st.info.netInterface())
		delete(rs.ifs, idx)
		s.mu.Lock()
		s.publish(s.table.dropIface(st.info.Name))
		s.mu.Unlock()
	}
	changed := false
	for _, info := range sel {
		st := rs.ifs[info.Index]
		if st != nil && slices.Equal(st.info.Addrs, info.Addrs) {
			st.info.Prefixes = info.Prefixes
			continue
		}
		if st == nil {
			st = &ifState{}
			rs.ifs[info.Index] = st
		}
		st.info = info
		st.src4, st.src6 = sources(info)
		want4, want6 := info.has4() && !st.j4, info.has6() && !st.j6
		if want4 || want6 {
			ok4, ok6, err := rs.socks.join(info.netInterface(), want4, want6)
			if err != nil {
				s.log.printf("join:"+info.Name, "%v", err)
			}
			st.j4, st.j6 = st.j4 || ok4, st.j6 || ok6
		}
		st.v4, st.v6 = st.j4 && info.has4(), st.j6 && info.has6()
		st.announceAt = st.announceAt[:0]
		if s.advertise {
			start := now.Add(randIn(startDelay))
			for _, off := range announceOffsets {
				st.announceAt = append(st.announceAt, start.Add(off))
			}
		}
		changed = true
	}
	if changed && s.browseOffsets == nil {
		// New interface or addresses: browse again from the start.
		rs.nextQuery, rs.queryDelay = now.Add(randIn(startDelay)), time.Second
	}
	var own []netip.AddrPort
	for _, st := range rs.ifs {
		for _, a := range st.info.Addrs {
			if (a.Is4() && st.v4) || (a.Is6() && st.v6) {
				if a.Is6() && a.IsLinkLocalUnicast() {
					a = a.WithZone(st.info.Name)
				}
				own = append(own, netip.AddrPortFrom(a, uint16(s.cfg.Port)))
			}
		}
	}
	sortAddrsStable(own)
	s.mu.Lock()
	s.own = own
	s.mu.Unlock()
}

// Addrs returns the addresses we advertise now, with our port: those of
// the interfaces served (IPv6 link-local ones with their zone).
func (s *Service) Addrs() []netip.AddrPort {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.own)
}

// readPackets reads packets with read into a buffer of size bytes and
// hands them to pkts until the socket is closed or ctx is done. It blocks
// rather than drops: while the consumer is busy, packets wait in the
// socket buffer, and only a real flood overflows it. Other read errors go
// to logErr, with a pause so that a persistent one does not spin.
func readPackets(ctx context.Context, read func([]byte) (packet, error), size int, pkts chan<- packet, logErr func(error)) {
	buf := make([]byte, size)
	for {
		p, err := read(buf)
		if err != nil {
			if errors.Is(err, net.ErrClosed) || ctx.Err() != nil {
				return
			}
			logErr(err)
			time.Sleep(10 * time.Millisecond) // don't spin on a persistent error
			continue
		}
		select {
		case pkts <- p:
		case <-ctx.Done():
			return
		}
	}
}
