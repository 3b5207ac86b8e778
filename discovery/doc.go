// Package discovery finds lanshare agents on the local network and announces
// ours, with multicast DNS (RFC 6762) and DNS service discovery (RFC 6763).
//
// # What goes on the wire
//
// An agent advertises one instance of service type _lanshare._tcp in
// local.:
//
//	_lanshare._tcp.local.            PTR  <instance>._lanshare._tcp.local.
//	<instance>._lanshare._tcp.local. SRV  0 0 <port> <host>.local.
//	<instance>._lanshare._tcp.local. TXT  "id=<id>" "v=<version>" "name=<display name>"
//	<host>.local.                    A    <IPv4 of the interface>
//	<host>.local.                    AAAA <IPv6 of the interface>
//
// The instance label is the display name plus a short id suffix, "bob
// (3fa2)" (see InstanceName), so two agents with the same display name never
// collide and no probing is needed; dots and other special characters in the
// label are escaped as RFC 6763 §4.3 requires. The host label is by default
// the machine's host name, a hyphen and the same four characters,
// "bobs-laptop-3fa2", never the bare machine name, which the machine's own
// responder (avahi) owns (see Config.Host). A and AAAA records carry the
// addresses of the interface the packet goes out on; the host name is never
// resolved. SRV, TXT, A and AAAA have the cache-flush bit. The host records
// (SRV, A, AAAA) have the configured TTL (DefaultTTL, 120 s); PTR and TXT
// have 75 minutes (ServiceTTL, RFC 6762 §10). A peer is listed only while
// its SRV lives, so one that dies without a goodbye leaves other tables
// after the SRV's TTL (120 s), whatever its PTR says.
//
// # Behaviour
//
// A Service (New, then Run):
//   - serves every up, multicast-capable interface with an address (the
//     loopback only when there is nothing else), or the interfaces named in
//     Config.Ifaces, and notices interfaces coming and going (it polls every
//     two seconds);
//   - shares UDP port 5353 with other responders (SO_REUSEADDR and
//     SO_REUSEPORT), so avahi or a second agent can run on the same host,
//     with 4 MiB socket receive buffers (the answers of hundreds of
//     responders arrive at once; without CAP_NET_ADMIN the kernel caps
//     the buffer at net.core.rmem_max);
//   - announces itself on each interface at start (two unsolicited
//     responses, 0 s and 1 s after a random 0-250 ms, so agents
//     started together do not speak at once) and sends goodbyes (TTL 0)
//     when Run ends;
//   - answers queries by multicast (unicast only for QU questions and legacy
//     queries from ports other than 5353; a unicast answer to a QU
//     question that cannot be sent is multicast), with IP TTL 255 for
//     unicast too, and from one source address per interface and family
//     (its first IPv4 address, its IPv6 link-local one: those the kernel
//     picks for multicast), so a peer's table, which keeps records per
//     source, ties our unicast answers to our multicast goodbye; honouring known
//     answers (RFC 6762 §7.1): multicast answers wait a random 20-120 ms
//     (§6), queries heard meanwhile get the same answer, an answer another
//     responder sends first is not repeated (§7.4), and answers on an
//     interface are at least 250 ms apart, so a query flood cannot turn
//     into a response flood, and none goes out when our announcement
//     follows within 500 ms; a query with the TC bit is answered once the
//     rest of its known answers have come, or after 400-500 ms (§7.2);
//     while packets we received wait to be handled, that answer and our
//     own queries wait for them (at most a second; a one-shot browse's
//     query 250 ms), so a host that falls behind neither asks for what it
//     has been told nor answers a query whose known answers it has not
//     read: at 200 agents starting together, the multicast answers to
//     such queries made every host fall further behind;
//   - browses continuously: queries at start (after a random 0-250 ms)
//     and then after 1 s, 2 s, 4 s ... up to an hour (§5.2), the first two
//     with the QU bit (§5.4: when agents start together, each one's
//     answers reach it alone; not while another socket of the host is
//     bound to port 5353, which would get all of a responder's unicast
//     answers as often as ours, §15.1) and sent over one family (IPv4 where the
//     interface has it: responders answer every copy they hear, each
//     with all their addresses), plus a cache
//     refresh at 80-95 % of a peer's TTL, after a random 0-2 s (refresh
//     queries at least 250 ms apart, so a flood of short TTLs cannot make
//     us flood the link with queries); another host's query that asks the
//     same and lists no known answer we would not counts as ours (§7.3),
//     so on a quiet link of a hundred agents one of them asks; known
//     answers that do not fit one packet go in several with the TC bit,
//     none over 1452 bytes (the MTU less IPv6 and UDP headers), so nothing
//     is fragmented; a peer that says goodbye leaves the table at once,
//     one that vanishes leaves when its SRV's TTL runs out. An address
//     record with the cache-flush bit replaces the addresses of its own
//     type (A or AAAA) that the same source gave on that interface more
//     than a second before, which expire a second later (RFC 6762 §10.2):
//     avahi answers over IPv6 with AAAA records only;
//   - takes packets only from the link they arrive on (RFC 6762 §11): a
//     query or response whose source address is outside the receiving
//     interface's subnets (IPv4 and IPv6 link-local sources are on-link;
//     anything on a loopback interface is) is dropped unanswered, and so
//     is a response that arrives with an IP TTL / hop limit other than
//     255, as one that crossed a router does (queries are not checked for
//     it: legacy queriers use any TTL). They are counted in Stats.OffLink.
//   - asks for what a response left out: the SRV and TXT of a bare PTR,
//     the addresses of an SRV without them (RFC 6763 §12), 100 ms after
//     the response, at most three times per record, 250 ms apart. avahi's
//     reflector answers from its cache with the asked records alone;
//     address records alone complete a record of their source that has
//     no addresses, but never change one that has.
//
// Across routers: avahi's reflector (enable-reflector=yes) repeats each
// segment's mDNS on the others from its own address there, with IP TTL
// 255, so what it forwards passes the on-link checks above; the records
// carry the other segment's addresses, which the peer layer dials through
// the routing table.
//
// Browse is a one-shot lookup without advertising (no agent needed): it
// queries twice (at 0 and 250 ms) and returns what answered within the wait.
// Its first query has the QU bit (RFC 6762 §5.4) and goes over one
// family, so responders answer it once, by unicast, at once: a hundred answers reach the browser alone instead of
// being multicast to, and processed by, every agent on the link. Its second
// asks for multicast answers and lists the answers already had, so only
// those that did not come answer (the unicast ones may have gone to
// another socket on port 5353 of this host, and avahi's reflector answers
// from its cache by multicast only). Agents answer a QU question by unicast
// even when they have not multicast the record within a quarter of its TTL
// (§5.4 says multicast then): with 75-minute PTRs that would be every
// browse on an idle link, the flood the bit is there to avoid.
// Watch browses continuously without advertising and reports events.
//
// # Trust
//
// mDNS is unauthenticated, and the TXT id is public, so discovery proves
// nothing: a Peer is a claim, and the peer layer proves the key behind each
// address it dials. What the table makes sure is that a liar on the link
// can add noise but never remove, repoint or hide a real peer:
//
//   - records are kept per instance and source address: a goodbye, a new
//     SRV or a cache-flush address record changes only what its own source
//     said, so copying a peer's id, label and records from another address
//     adds that address to the peer's Addrs (to be tried and refused by key)
//     and nothing else;
//   - a claim of a known instance with another id, name or version is
//     listed as another Peer with the same Instance; an id-less claim of an
//     instance another source claims with an id is ignored; both are
//     counted in Stats.Conflicts. Known answers in our queries leave out an
//     instance as soon as any source's record of it is past half its TTL,
//     so nobody repeating a peer's PTR keeps the peer itself quiet;
//   - Peer.LabelMismatch flags a record whose instance label is not the
//     one its own TXT name and id produce (InstanceName);
//   - floods are bounded: the table holds at most 1024 records, at most 32
//     per source address; when it is full, a new record evicts the least
//     recently heard record of the source holding the most, if that source
//     holds more than the newcomer's (Stats.Evicted), else it is refused
//     (Stats.Dropped), so a real peer gets in while strangers flood from
//     fewer than about a thousand addresses. TTLs are honoured up to 75
//     minutes, but only up to 2 minutes until the source repeats a record
//     (half a second or more later; responders announce twice and answer
//     refresh queries), so a flood sent once is gone after 2 minutes. A
//     record with an SRV lives as long as its SRV, so a 75-minute PTR
//     keeps nobody listed.
//
// What it cannot stop: a liar on the link who forges a peer's own source
// address can speak for it (remove or change its records); one who forges
// more than a thousand source addresses (IPv6 link-local ones cost nothing)
// can keep the table churning, though a real peer is re-admitted at its
// next answer. Malformed packets are counted (Stats) and logged at most
// once per 30 s. Records about other service types, and records carrying
// our own id, are ignored.
//
// # LocalSend
//
// LocalSend (localsend.go) speaks the multicast half of LocalSend's
// discovery, next to mDNS and on the same interfaces: it announces us on
// 224.0.0.167 and ff12::fd3a:e420, UDP port 53317 (shared), three times at
// start and every five minutes, and lists the LocalSend devices it hears
// or that the owner adds from their POST /register requests. LocalSend has
// no TTL and no goodbye: a device not heard for 12 minutes is forgotten
// (our re-announcements make live devices register again). It tells the
// owner, through OnAnnounce, which announcements to answer; the HTTP
// answer is the owner's. Its codec (ParseLocalSendAnnouncement,
// LocalSendAnnouncement.Marshal) is pure. The same rules as above hold:
// only on-link sources, datagrams capped at 4 KiB before decoding, rate
// limits per source and overall before decoding, a capped table (256
// devices, 8 per source), rate-limited answers and logs.
//
// # hashicorp/mdns
//
// The library's Zone interface is how our responder asks for records, but
// its server and client are not used; mdns.go says why. All use of the
// library is in that one file.
package discovery
