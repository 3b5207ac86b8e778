package netlab

// Link shaping that needs no more than tools and sockets: tc's rate
// limits, and a measure of the round trip. The delay line (Lab.Delay) and
// Host.Do are in link_linux.go.

import (
	"fmt"
	"net"
	"slices"
	"strconv"
	"time"
)

// TC runs "tc -n NS args..." (traffic control) for the host, failing the
// lab's user on error, and returns the output.
func (h *Host) TC(args ...string) string {
	h.t.Helper()
	return h.lab.run("tc", append([]string{"-n", h.NS}, args...)...)
}

// LimitRate shapes what h sends out of its interface ifname to
// bitsPerSecond with a token bucket (tc htb, whose bucket is refilled by
// a high-resolution timer and which passes segmentation-offload packets
// whole; tbf would cut them up). The bucket holds 64 KiB, one such
// packet. Call it once per interface.
func (h *Host) LimitRate(ifname string, bitsPerSecond uint64) {
	h.t.Helper()
	rate := strconv.FormatUint(bitsPerSecond, 10) + "bit"
	h.TC("qdisc", "add", "dev", ifname, "root", "handle", "1:", "htb", "default", "1")
	h.TC("class", "add", "dev", ifname, "parent", "1:", "classid", "1:1", "htb",
		"rate", rate, "ceil", rate, "burst", "64k", "cburst", "64k")
}

// Handshake returns the median time of n TCP handshakes (connect, then
// close) from h to addr, which something must be accepting on: a measure
// of the round trip that includes no program's own latency.
func (h *Host) Handshake(addr string, n int) (time.Duration, error) {
	var times []time.Duration
	err := h.Do(func() error {
		for range n {
			start := time.Now()
			c, err := net.DialTimeout("tcp", addr, 5*time.Second)
			if err != nil {
				return err
			}
			times = append(times, time.Since(start))
			c.Close()
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("dialling %s from %s: %w", addr, h.NS, err)
	}
	slices.Sort(times)
	return times[len(times)/2], nil
}
