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
// resolved. SRV, TXT, A and AAAA have the cache-flush bit. Every record has
// the configured TTL (DefaultTTL, 120 s).
//
// # Behaviour
//
// A Service (New, then Run):
//   - serves every up, multicast-capable interface with an address (the
//     loopback only when there is nothing else), or the interfaces named in
//     Config.Ifaces, and notices interfaces coming and going (it polls every
//     two seconds);
//   - shares UDP port 5353 with other responders (SO_REUSEADDR and
//     SO_REUSEPORT), so avahi or a second agent can run on the same host;
//   - announces itself on each interface at start (three unsolicited
//     responses, 0 s, 1 s and 3 s after) and sends goodbyes (TTL 0) when Run
//     ends;
//   - answers queries by multicast (unicast only for QU questions and legacy
//     queries from ports other than 5353), with IP TTL 255, honouring known
//     answers; multicast answers on an interface are at least 250 ms apart
//     (queries in between are answered together), so a query flood cannot
//     turn into a response flood;
//   - browses continuously: queries at start and then after 1 s, 2 s, 4 s
//     ... up to a minute, plus a cache refresh at 80-95 % of a peer's TTL;
//     a peer that says goodbye leaves the table at once, one that vanishes
//     leaves when its TTL runs out. An address record with the cache-flush
//     bit replaces the peer's addresses of its own type (A or AAAA) heard on
//     that interface more than a second before, which expire a second later
//     (RFC 6762 §10.2): avahi answers over IPv6 with AAAA records only.
//
// Browse is a one-shot lookup without advertising (no agent needed): it
// queries twice (at 0 and 250 ms) and returns what answered within the wait.
// Watch browses continuously without advertising and reports events.
//
// # Trust
//
// mDNS is unauthenticated, and the TXT id is public, so nothing here stops a
// determined liar on the LAN; the table only keeps honest mistakes and cheap
// tricks from doing harm. Malformed packets are counted (Stats) and logged at
// most once per 30 s. Once an instance is known with an id, responses about
// it that do not carry the same id (a goodbye from someone else, a second
// agent with a colliding instance name) are ignored and counted as
// conflicts. Records about other service types are ignored. The table holds
// at most 1024 peers and honours TTLs up to 75 minutes.
//
// # hashicorp/mdns
//
// The library's Zone interface is how our responder asks for records, but
// its server and client are not used; mdns.go says why. All use of the
// library is in that one file.
package discovery
