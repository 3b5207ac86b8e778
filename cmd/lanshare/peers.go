package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

type peersArgs struct {
	wait           time.Duration
	json, watch    bool
	ifaces         []string
	configDir      string
	stdout, stderr io.Writer
}

// peerJSON is one peer in `peers --json`. Field names are stable.
type peerJSON struct {
	Event    string   `json:"event,omitempty"` // --watch only: peer-up, peer-update, peer-down
	Name     string   `json:"name"`
	Instance string   `json:"instance"`
	ID       string   `json:"id"`
	Addrs    []string `json:"addrs"`
	Version  string   `json:"version"`
	Host     string   `json:"host"`
	Self     bool     `json:"self"`
	Sendable bool     `json:"sendable"`
	// Suspicious: the instance label is not the one the record's own name
	// and id make (see peer.Suspicious); send and trust ignore the label.
	Suspicious bool `json:"suspicious"`
}

func toJSON(p discovery.Peer, selfID string) peerJSON {
	j := peerJSON{
		Name: p.Name, Instance: p.Instance, ID: p.ID, Version: p.Version, Host: p.Host,
		Addrs: []string{}, Self: selfID != "" && p.ID == selfID,
	}
	for _, a := range p.Addrs {
		j.Addrs = append(j.Addrs, a.String())
	}
	j.Sendable = peer.Sendable(p) == nil
	j.Suspicious = peer.Suspicious(p)
	return j
}

func peers(ctx context.Context, a peersArgs) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	// Our own id, to mark our agent; none yet is fine.
	selfID, _ := peer.ReadID(a.configDir)
	if a.watch {
		return watchPeers(ctx, a, selfID)
	}
	// The running local agent answers at once from its live table (unless
	// the listing is restricted to some interfaces); else browse.
	if st, err := peer.QueryAgent(ctx, a.configDir); err == nil && len(a.ifaces) == 0 {
		found := st.Peers
		if self, ok := st.Self(); ok {
			found = append(found, self)
			selfID = self.ID
		}
		slices.SortFunc(found, func(x, y discovery.Peer) int { return strings.Compare(x.Instance, y.Instance) })
		return a.render(found, selfID)
	}
	found, err := discovery.Browse(ctx, a.ifaces, a.wait)
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("looking for peers: %w", err)
	}
	return a.render(found, selfID)
}

// render prints the peers found and, in a table with no other agent in
// it, what commonly keeps peers from being found, on stderr.
func (a peersArgs) render(found []discovery.Peer, selfID string) error {
	if err := renderPeers(a.stdout, found, selfID, a.json, a.wait); err != nil {
		return err
	}
	others := slices.ContainsFunc(found, func(p discovery.Peer) bool { return selfID == "" || p.ID != selfID })
	if !a.json && !others && a.stderr != nil {
		fmt.Fprintln(a.stderr, nobodyHint)
	}
	return nil
}

// nobodyHint says what commonly blocks discovery.
var nobodyHint = fmt.Sprintf("lanshare: no other agent answered. Often a firewall blocks mDNS (5353/udp) or lanshare (%d/tcp), "+
	"the Wi-Fi isolates its clients, --iface names the wrong interface, or the peer is on another subnet (send to its HOST:PORT).", peer.DefaultPort)

// renderPeers prints the peers found, as JSON or as a table.
func renderPeers(w io.Writer, found []discovery.Peer, selfID string, asJSON bool, wait time.Duration) error {
	if asJSON {
		out := make([]peerJSON, 0, len(found))
		for _, p := range found {
			out = append(out, toJSON(p, selfID))
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(found) == 0 {
		fmt.Fprintf(w, "no peers found within %v\n", wait)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tADDRESSES\tVERSION")
	for _, p := range found {
		j := toJSON(p, selfID)
		note := ""
		switch {
		case j.Suspicious:
			// Before self: a record of our id under another label is not us.
			note = "(suspicious label: its name and id make " + peer.Escape(discovery.InstanceName(p.Name, p.ID)) + ")"
		case j.Self:
			note = "(this device)"
		case !j.Sendable:
			note = "(cannot receive from us)"
		}
		id := peer.ShortID(p.ID)
		if id == "" {
			id = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", peer.Escape(p.Instance), peer.Escape(id),
			strings.Join(j.Addrs, " "), orDash(peer.Escape(p.Version)))
		if note != "" {
			line += "\t" + note
		}
		fmt.Fprintln(tw, line)
	}
	return tw.Flush()
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// watchPeers prints peer events until ctx ends (SIGINT/SIGTERM), then
// returns nil.
func watchPeers(ctx context.Context, a peersArgs, selfID string) error {
	enc := json.NewEncoder(a.stdout)
	err := discovery.Watch(ctx, a.ifaces, func(ev discovery.Event) {
		if a.json {
			j := toJSON(ev.Peer, selfID)
			j.Event = map[discovery.EventKind]string{
				discovery.PeerUp: "peer-up", discovery.PeerUpdate: "peer-update", discovery.PeerDown: "peer-down",
			}[ev.Kind]
			_ = enc.Encode(j)
			return
		}
		fmt.Fprintf(a.stdout, "%s %s\n", stamp(time.Now()), describeEvent(ev, selfID))
	})
	if err != nil {
		return fmt.Errorf("watching for peers: %w", err)
	}
	return nil
}

// describeEvent is the one-line, escaped text of a peer event, shared by
// `peers --watch` and serve's log.
func describeEvent(ev discovery.Event, selfID string) string {
	p := ev.Peer
	switch ev.Kind {
	case discovery.PeerDown:
		return fmt.Sprintf("peer down: %s", peer.Escape(p.Instance))
	case discovery.PeerUpdate:
		return fmt.Sprintf("peer update: %s", peerLine(p, selfID))
	default:
		return fmt.Sprintf("peer up: %s", peerLine(p, selfID))
	}
}

func peerLine(p discovery.Peer, selfID string) string {
	s := peer.Escape(p.Instance)
	if p.ID != "" {
		s += " id " + peer.Escape(peer.ShortID(p.ID))
	}
	if len(p.Addrs) > 0 {
		s += " at " + peer.AddrString(p.Addrs)
	}
	if p.Version != "" {
		s += " v" + peer.Escape(p.Version)
	}
	if peer.Suspicious(p) {
		s += " (suspicious label: its name and id make " + peer.Escape(discovery.InstanceName(p.Name, p.ID)) + ")"
	} else if selfID != "" && p.ID == selfID {
		s += " (this device)"
	}
	return s
}
