package discovery

import (
	"bytes"
	"hash/maphash"

	"github.com/miekg/dns"
)

// maxCachedResponses caps the parsed responses kept by a responseCache,
// and maxCachedPacket the size of those it keeps (an agent's answers are
// a few hundred bytes), so a flood of large distinct responses cannot make
// it hold more than some hundreds of KiB.
const (
	maxCachedResponses = 256
	maxCachedPacket    = 1500
)

// responseCache keeps the last responses parsed, by their bytes, so that a
// response heard again byte for byte is not unpacked and parsed again.
// That is most of them at start-up: each peer sends the same announcement
// three times and the same answer to every agent that starts (a multicast
// answer has ID 0), and unpacking with miekg/dns was most of the work of a
// packet that only repeats what the table holds. Parsing is a pure
// function of the bytes, so every check that depends on where a packet
// came from (on-link source, port 5353, IP TTL 255) is still made on each
// packet, and the table still applies it as from its own source. Entries
// are read-only: nothing may change a cached message or response. It is
// owned by Run's goroutine.
type responseCache struct {
	seed    maphash.Seed
	entries map[uint64]*parsedResponse
}

type parsedResponse struct {
	data []byte // a copy: the read buffer is reused
	msg  *dns.Msg
	resp response
}

// lookup returns the message and response parsed from data, if cached.
func (c *responseCache) lookup(data []byte) (*dns.Msg, response, bool) {
	if c == nil || c.entries == nil || !isResponse(data) {
		return nil, response{}, false
	}
	e := c.entries[maphash.Bytes(c.seed, data)]
	if e == nil || !bytes.Equal(e.data, data) {
		return nil, response{}, false
	}
	return e.msg, e.resp, true
}

// store keeps msg and resp, parsed from data, unless data is larger than
// maxCachedPacket; when full, it first drops an entry (any: a map's order
// is random).
func (c *responseCache) store(data []byte, msg *dns.Msg, resp response) {
	if len(data) > maxCachedPacket {
		return
	}
	if c.entries == nil {
		c.seed, c.entries = maphash.MakeSeed(), make(map[uint64]*parsedResponse)
	}
	if len(c.entries) >= maxCachedResponses {
		for h := range c.entries {
			delete(c.entries, h)
			break
		}
	}
	c.entries[maphash.Bytes(c.seed, data)] = &parsedResponse{data: bytes.Clone(data), msg: msg, resp: resp}
}

// isResponse reports whether data is a DNS message with the QR bit set.
func isResponse(data []byte) bool { return len(data) >= 12 && data[2]&0x80 != 0 }
