package main

import (
	"bytes"
	"encoding/json"
	"sync"
	"testing"

	"github.com/cheggaaa/pb/v3"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

// TestTaggedLines: every JSON line gets "to" first, whole, however the
// writes that make it are cut.
func TestTaggedLines(t *testing.T) {
	var b bytes.Buffer
	tl := newTaggedLines(&multiOut{stdout: &b}, `Smith, "Anna"`)
	for _, part := range []string{`{"event":"of`, `fer","files":2}` + "\n" + `{"event":"error"}`, "\n", "{}\n"} {
		if n, err := tl.Write([]byte(part)); n != len(part) || err != nil {
			t.Fatalf("Write(%q) = %d, %v", part, n, err)
		}
	}
	want := `{"to":"Smith, \"Anna\"","event":"offer","files":2}` + "\n" + `{"to":"Smith, \"Anna\"","event":"error"}` + "\n{}\n"
	if b.String() != want {
		t.Errorf("got\n%s\nwant\n%s", b.String(), want)
	}
	var ev map[string]any
	if err := json.Unmarshal(bytes.SplitN(b.Bytes(), []byte("\n"), 2)[0], &ev); err != nil || ev["to"] != `Smith, "Anna"` {
		t.Errorf("first line decodes to %v, %v", ev, err)
	}
}

func TestPadLabel(t *testing.T) {
	for _, tc := range []struct {
		in    string
		width int
		want  string
	}{
		{"bob", 6, "bob   "},
		{"Smith, Anna", 11, "Smith, Anna"},
		{"Smith, Anna", 8, "Smith, …"},
		{"日本語の電話", 7, "日本語…"},
	} {
		got := padLabel(tc.in, tc.width)
		if got != tc.want || pb.CellCount(got) != tc.width {
			t.Errorf("padLabel(%q, %d) = %q (%d cells), want %q", tc.in, tc.width, got, pb.CellCount(got), tc.want)
		}
	}
}

// TestClaimsLaterTargetIsTheDuplicate: of two --to naming one peer, the
// later on the command line is the duplicate, whichever resolved first
// (here the later claims first, and waits its turn).
func TestClaimsLaterTargetIsTheDuplicate(t *testing.T) {
	c := newClaims(3)
	type result struct {
		other string
		ok    bool
	}
	res := make([]result, 3)
	var wg sync.WaitGroup
	claim := func(i int, key, label string) {
		defer wg.Done()
		o, ok := c.claim(i, key, label)
		res[i] = result{o, ok}
	}
	wg.Add(3)
	go claim(2, "peer-k", "qnk6")
	go claim(1, "peer-k", "bob")
	go claim(0, "", "nobody") // found no peer
	wg.Wait()
	want := []result{{"", true}, {"", true}, {"bob", false}}
	for i := range want {
		if res[i] != want[i] {
			t.Errorf("target %d: %+v, want %+v", i, res[i], want[i])
		}
	}
}

// TestWithoutAgents: a name looked up among LocalSend devices, because no
// lanshare peer answered to it, leaves out lanshare agents' LocalSend
// side (stale entries of agents gone), and keeps every other device.
func TestWithoutAgents(t *testing.T) {
	devs := []discovery.LocalSendDevice{
		{Alias: "bob", DeviceModel: peer.LocalSendModel},
		{Alias: "bob", DeviceModel: "Pixel 9"},
		{Alias: "tv"},
	}
	got := withoutAgents(devs)
	if len(got) != 2 || got[0].DeviceModel != "Pixel 9" || got[1].Alias != "tv" || len(devs) != 3 || devs[0].DeviceModel != peer.LocalSendModel {
		t.Errorf("withoutAgents = %+v (devs now %+v)", got, devs)
	}
}
