package discovery

// This is the only file that imports github.com/hashicorp/mdns.
//
// We use the library's Zone contract for answering: zone (records.go)
// implements mdns.Zone, and our responder asks it Records(question) exactly
// as mdns.Server would. We do not run mdns.Server or mdns.Query themselves,
// because their gaps cannot be patched from outside the library:
//
//   - mdns.Server answers every query unicast to the querier (sendResponse
//     ignores its unicast flag), so caches on the link, and any other mDNS
//     stack on our host such as avahi, never see the answer. We answer by
//     multicast unless the question has the QU bit or comes from a legacy
//     (non-5353) port.
//   - Its sockets keep the default IP TTL / hop limit (1 for multicast, 64
//     for unicast); RFC 6762 §11 wants 255 so receivers can check the packet
//     is on-link. Ours set 255.
//   - One server serves one interface, and net.ListenMulticastUDP binds the
//     group address with IP_MULTICAST_ALL on, so per-interface servers each
//     see every interface's queries and answer them all, without knowing
//     which interface a query came in on. We use one socket per family with
//     IP_PKTINFO to learn the interface and answer with that interface's
//     addresses (RFC 6762 §6.2).
//   - It has no announcements, goodbyes or continuous browsing, and logs
//     every unparsable packet (a log flood under hostile traffic). We count
//     them and rate-limit the log line.
//   - Names are not escaped (an instance "a.b" becomes two labels) and an
//     empty TXT is sent with zero-length rdata; zone builds escaped names and
//     always has at least one TXT string.
//   - mdns.Query drops results when the reader lags (non-blocking send on
//     the entries channel), writes entries after sending them (a data race),
//     and returns records of any service type. Our browser keeps a table
//     (table.go) filtered to _lanshare._tcp, and subscribers get coalesced
//     events that are never dropped.
//
// The interop tests check that mdns.Query still finds our service.

import "github.com/hashicorp/mdns"

var _ mdns.Zone = (*zone)(nil)
