//go:build linux

package main

import (
	"bytes"
	"context"
	"crypto/tls"
	"encoding/binary"
	"io"
	"net"
	"os"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
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
		{args: []string{"-only", "99"}, wantErr: "from 1 to "},
		{args: []string{"-only", "x"}, wantErr: "from 1 to "},
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

func TestHostileOfferIsTheLargestValidOffer(t *testing.T) {
	for _, c := range []struct{ entries, payload int }{
		{proto.MaxEntries, proto.MaxFrameLen},
		{20_000, 4 + 20_000*32},
		{10_000, 8 << 20},
	} {
		b, err := hostileOffer(c.entries, c.payload)
		if err != nil {
			t.Fatalf("hostileOffer(%d, %d): %v", c.entries, c.payload, err)
		}
		r := bytes.NewReader(b)
		if _, err := proto.ReadHello(r); err != nil {
			t.Fatalf("hello: %v", err)
		}
		frame := r.Len()
		o, err := proto.ReadOffer(r)
		if err != nil {
			t.Fatalf("offer of %d entries in %d bytes does not read back: %v", c.entries, c.payload, err)
		}
		if got := frame - proto.HeaderSize; got > c.payload || got < c.payload-c.entries {
			t.Errorf("offer of %d entries: payload %d bytes, want at most %d and close to it", c.entries, got, c.payload)
		}
		if len(o.Entries) != c.entries {
			t.Fatalf("%d entries read back, want %d", len(o.Entries), c.entries)
		}
		seen := map[string]bool{}
		for i, e := range o.Entries {
			if seen[e.Path] {
				t.Fatalf("path %q offered twice", e.Path)
			}
			seen[e.Path] = true
			// Every path is built alike: a sample is checked, since the
			// check of 100,000 long names takes a minute under -race.
			if i%997 != 0 && i != len(o.Entries)-1 {
				continue
			}
			if err := peer.CheckName(e.Path); err != nil {
				t.Fatalf("path %q would be refused, not held: %v", e.Path, err)
			}
		}
	}
	if _, err := hostileOffer(proto.MaxEntries, 1<<20); err == nil {
		t.Error("an offer too small for its entries' paths was built")
	}
}

func TestGCStatsReadsGCTrace(t *testing.T) {
	var g gcStats
	for _, l := range []string{
		"gc 1 @0.011s 1%: 0.016+0.51+0.024 ms clock, 0.033+0.12/0.33/0.10+0.049 ms cpu, 3->4->1 MB, 4 MB goal, 0 MB stacks, 0 MB globals, 2 P",
		"listening on 127.0.0.1:4000",
		"gc 2 @3.2s 4%: 0.1+12+0.03 ms clock, 0.2+1/5/0+0.06 ms cpu, 310->362->192 MB, 386 MB goal, 0 MB stacks, 0 MB globals, 2 P",
	} {
		g.add(l)
	}
	if g != (gcStats{n: 2, atStart: 362, live: 192, gl: 386}) {
		t.Errorf("gcStats = %+v", g)
	}
}

func TestProcStatusReadsOwnRSS(t *testing.T) {
	rss, ok := procStatus(os.Getpid(), "VmRSS")
	if !ok || rss < 1<<20 {
		t.Fatalf("procStatus(self, VmRSS) = %d, %v", rss, ok)
	}
	if _, ok := procStatus(os.Getpid(), "NoSuchField"); ok {
		t.Error("a missing field was found")
	}
}

func TestAbsoluteTargetHoldsInEveryRound(t *testing.T) {
	tg := &target{v: 512, atMost: true, unit: "MiB"}
	if got := tg.String(); got != "≤512 MiB" {
		t.Errorf("target = %q", got)
	}
	if met, ok := (row{target: tg, values: []float64{300, 400, 450}}).verdict(); !ok || !met {
		t.Errorf("300, 400, 450 against ≤512: met %v, %v", met, ok)
	}
	// The median is under the cap, one round is over: missed.
	if met, ok := (row{target: tg, values: []float64{300, 400, 600}}).verdict(); !ok || met {
		t.Errorf("300, 400, 600 against ≤512: met %v, %v", met, ok)
	}
	if _, ok := (row{target: tg}).verdict(); ok {
		t.Error("a row without values was judged")
	}
}

func TestFormatCount(t *testing.T) {
	for n, want := range map[int]string{7: "7", 999: "999", 1000: "1,000", 20_000: "20,000", 100_000: "100,000", 1_234_567: "1,234,567"} {
		if got := formatCount(n); got != want {
			t.Errorf("formatCount(%d) = %q, want %q", n, got, want)
		}
	}
}

// TestStrangerTellsOutcomes runs a stranger against fake receivers on
// loopback: one that answers busy, one that takes the offer and closes
// later, one that closes without an answer, one that closes at accept.
func TestStrangerTellsOutcomes(t *testing.T) {
	offer, err := hostileOffer(100, 100*64)
	if err != nil {
		t.Fatal(err)
	}
	client, err := tlsConfig()
	if err != nil {
		t.Fatal(err)
	}
	client.InsecureSkipVerify = true
	for _, c := range []struct {
		name   string
		answer *proto.Answer // nil: close after the offer
		atOnce bool          // close at accept
		want   outcome
	}{
		{name: "busy", answer: &proto.Answer{Code: proto.CodeBusy, Reason: "busy"}, want: refusedBusy},
		{name: "too large", answer: &proto.Answer{Code: proto.CodeTooLarge, Reason: "no"}, want: refusedOther},
		{name: "held", answer: &proto.Answer{Code: proto.CodeOK, Replies: make([]proto.Reply, 100)}, want: heldOffer},
		{name: "no answer", want: droppedEarly},
		{name: "at accept", atOnce: true, want: notAdmitted},
	} {
		if c.answer != nil {
			for i := range c.answer.Replies {
				c.answer.Replies[i] = proto.Reply{Status: proto.Accept}
			}
		}
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		server, err := tlsConfig()
		if err != nil {
			t.Fatal(err)
		}
		server.ClientAuth = tls.RequireAnyClientCert
		served := make(chan error, 1)
		go func() {
			served <- fakeReceiver(ln, server, c.answer, c.atOnce)
		}()
		res := stranger(context.Background(), ln.Addr().String(), net.IPv4(127, 0, 0, 1), offer, client, time.Now())
		ln.Close()
		if err := <-served; err != nil {
			t.Fatalf("%s: fake receiver: %v", c.name, err)
		}
		if res.Outcome != c.want || res.StillUp {
			t.Errorf("%s: outcome %v (still up %v), want %v", c.name, res.Outcome, res.StillUp, c.want)
		}
		if c.answer != nil && res.Code != c.answer.Code {
			t.Errorf("%s: code %v, want %v", c.name, res.Code, c.answer.Code)
		}
	}
}

// fakeReceiver takes one connection on ln: closes it at once if atOnce;
// otherwise reads the hello and offer, writes answer if not nil, and
// closes.
func fakeReceiver(ln net.Listener, cfg *tls.Config, answer *proto.Answer, atOnce bool) error {
	raw, err := ln.Accept()
	if err != nil {
		return err
	}
	defer raw.Close()
	if atOnce {
		return nil
	}
	c := tls.Server(raw, cfg)
	if _, err := proto.ReadHello(c); err != nil {
		return err
	}
	if _, err := proto.ReadOffer(c); err != nil {
		return err
	}
	if answer == nil {
		return nil
	}
	if err := proto.WriteHello(c, proto.NewHello("fake")); err != nil {
		return err
	}
	return proto.WriteAnswer(c, *answer)
}

func TestReceivedSecondsReadsServesTransferLine(t *testing.T) {
	log := "listening on 127.0.0.1:1\n2026-12-02T10:00:00Z transfer from bench (127.0.0.1:5, id ls-abcd-ef01) via localsend done: received 1 file, 1.1 GB in 3.2 s, 335.5 MB/s\n"
	if got, err := receivedSeconds(log); err != nil || got != 3.2 {
		t.Errorf("receivedSeconds = %v, %v; want 3.2", got, err)
	}
	if got, err := receivedSeconds("… done: received 3 files, 12 kB in 850 ms, 14.1 kB/s\n"); err != nil || got != 0.85 {
		t.Errorf("receivedSeconds (ms) = %v, %v; want 0.85", got, err)
	}
	if _, err := receivedSeconds("stopped\n"); err == nil {
		t.Error("no transfer line: no error")
	}
}
