//go:build linux

package main

import (
	"encoding/binary"
	"io"
	"slices"
	"strings"
	"testing"
)

func TestParseFlags(t *testing.T) {
	for _, c := range []struct {
		args    []string
		only    []int
		runs    int
		wantErr string
	}{
		{args: nil, only: []int{1, 2, 3, 4, 5, 6, 7}, runs: 3},
		{args: []string{"-only", "4, 1,4", "-runs", "7"}, only: []int{1, 4}, runs: 7},
		{args: []string{"-only", "8"}, wantErr: "from 1 to 7"},
		{args: []string{"-only", "x"}, wantErr: "from 1 to 7"},
		{args: []string{"-runs", "0"}, wantErr: "at least 1"},
		{args: []string{"extra"}, wantErr: "unexpected argument"},
	} {
		cfg, err := parseFlags(c.args, io.Discard)
		if c.wantErr != "" {
			if err == nil || !strings.Contains(err.Error(), c.wantErr) {
				t.Errorf("parseFlags(%q) = %v, want an error with %q", c.args, err, c.wantErr)
			}
			continue
		}
		if err != nil || !slices.Equal(cfg.only, c.only) || cfg.runs != c.runs {
			t.Errorf("parseFlags(%q) = only %v, runs %d, %v; want %v, %d", c.args, cfg.only, cfg.runs, err, c.only, c.runs)
		}
	}
}

// segment builds an IPv4 (version 4) or IPv6 TCP segment to port with
// flags and n bytes of payload, headers only (as the sniffer reads them).
func segment(version int, port uint16, flags byte, n int) []byte {
	tcp := make([]byte, 20)
	binary.BigEndian.PutUint16(tcp[0:2], 40000)
	binary.BigEndian.PutUint16(tcp[2:4], port)
	tcp[12] = 5 << 4
	tcp[13] = flags
	if version == 4 {
		ip := make([]byte, 20)
		ip[0] = 0x45
		binary.BigEndian.PutUint16(ip[2:4], uint16(20+20+n))
		ip[9] = 6
		return append(ip, tcp...)
	}
	ip := make([]byte, 40)
	ip[0] = 0x60
	binary.BigEndian.PutUint16(ip[4:6], uint16(20+n))
	ip[6] = 6
	return append(ip, tcp...)
}

func TestTCPTo(t *testing.T) {
	const syn, ack, psh = 0x02, 0x10, 0x08
	for _, v := range []int{4, 6} {
		for _, c := range []struct {
			name      string
			p         []byte
			syn, data bool
		}{
			{"SYN", segment(v, 443, syn, 0), true, false},
			{"SYN-ACK", segment(v, 443, syn|ack, 0), false, false},
			{"bare ACK", segment(v, 443, ack, 0), false, false},
			{"data", segment(v, 443, ack|psh, 517), false, true},
			{"other port", segment(v, 444, ack|psh, 517), false, false},
			{"truncated", segment(v, 443, syn, 0)[:30], false, false},
			{"empty", nil, false, false},
		} {
			gotSYN, gotData := tcpTo(c.p, 443)
			if gotSYN != c.syn || gotData != c.data {
				t.Errorf("IPv%d %s: tcpTo = %v, %v; want %v, %v", v, c.name, gotSYN, gotData, c.syn, c.data)
			}
		}
	}
}

func TestLabUserFatalfEndsOnlyF(t *testing.T) {
	u := &labUser{}
	var order []string
	u.Cleanup(func() { order = append(order, "first") })
	reached := false
	err := u.do(func() {
		u.Cleanup(func() { order = append(order, "second") })
		u.Fatalf("broken %d", 1)
		reached = true
	})
	if reached {
		t.Fatal("Fatalf returned")
	}
	if err == nil || err.Error() != "broken 1" {
		t.Fatalf("do = %v, want the Fatalf message", err)
	}
	if err := u.close(); err == nil {
		t.Fatal("close forgot the failure")
	}
	if !slices.Equal(order, []string{"second", "first"}) {
		t.Fatalf("cleanups ran in order %v, want last first", order)
	}
}

func TestMedianAndRatios(t *testing.T) {
	if got := median([]float64{3, 1, 2}); got != 2 {
		t.Errorf("median of 3 = %v", got)
	}
	if got := median([]float64{4, 1, 3, 2}); got != 2.5 {
		t.Errorf("median of 4 = %v", got)
	}
	m := rate(1e9)
	lanshare := []sample{{seconds: 2}, {seconds: 1}}
	base := []sample{{seconds: 1}, {seconds: 1}}
	r := baselineRow("tcp", m, base, lanshare, 1e9, &target{v: 0.9})
	// Ratios are taken round by round: 500/1000 and 1000/1000.
	if !slices.Equal(r.ratios, []float64{0.5, 1}) {
		t.Errorf("ratios = %v", r.ratios)
	}
	if r.target.met(median(r.ratios)) {
		t.Errorf("target %v met by %v", r.target, median(r.ratios))
	}
	if !(target{v: 1.2, atMost: true}).met(1.1) {
		t.Error("≤1.20 not met by 1.1")
	}
}
