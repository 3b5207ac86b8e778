package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"slices"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto/localsend"
)

type peersArgs struct {
	name           string // what a LocalSend look announces us as
	wait           time.Duration
	json, watch    bool
	scan           bool // also ask every address of the /24 for LocalSend
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
	// Static: a static peer (lanshare peers add), reached by address;
	// State is what its last check found (up, down, key-changed, or
	// unknown: not checked yet), SeenID the key that answered when it is
	// not ID (an unverified peer's, or a changed one). A static peer that
	// discovery finds too is one entry, with both kinds of addresses.
	Static bool   `json:"static"`
	State  string `json:"state,omitempty"`
	SeenID string `json:"seen_id,omitempty"`
	// Kind is "lanshare", or "localsend" for a LocalSend device (an app on
	// a phone or computer), which also has Protocol (https, or http: not
	// authenticated, no id), DeviceType and Model as it announced them.
	Kind       string `json:"kind"`
	Protocol   string `json:"protocol,omitempty"`
	DeviceType string `json:"device_type,omitempty"`
	Model      string `json:"model,omitempty"`
}

func toJSON(p discovery.Peer, selfID string) peerJSON {
	j := peerJSON{
		Name: p.Name, Instance: p.Instance, ID: p.ID, Version: p.Version, Host: p.Host,
		Addrs: []string{}, Self: selfID != "" && p.ID == selfID, Kind: "lanshare",
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
		return a.render(found, a.statics(ctx, st), append(st.LocalSend, a.scanned(ctx)...), selfID)
	}
	// Static peers are checked, and LocalSend devices looked for, while
	// the browse runs.
	var statics []peer.StaticStatus
	var ls []discovery.LocalSendDevice
	var wg sync.WaitGroup
	wg.Add(2)
	go func() {
		defer wg.Done()
		statics = a.statics(ctx, nil)
	}()
	go func() {
		defer wg.Done()
		var err error
		if ls, err = peer.LookLocalSend(ctx, a.configDir, a.name, a.ifaces, a.wait); err != nil && ctx.Err() == nil && a.stderr != nil {
			fmt.Fprintf(a.stderr, "lanshare: warning: LocalSend devices not listed: %s\n", oneLine(err))
		}
		ls = append(ls, a.scanned(ctx)...)
	}()
	found, err := discovery.Browse(ctx, a.ifaces, a.wait)
	wg.Wait()
	if err != nil && ctx.Err() == nil {
		return fmt.Errorf("looking for peers: %w", err)
	}
	return a.render(found, statics, ls, selfID)
}

// scanned returns, with --scan, the LocalSend devices that answer on the
// /24 around our addresses (see peer.ScanLocalSend); a failed scan is a
// warning.
func (a peersArgs) scanned(ctx context.Context) []discovery.LocalSendDevice {
	if !a.scan {
		return nil
	}
	ident, err := peer.LoadLocalSendIdentity(a.configDir)
	if err != nil {
		if a.stderr != nil {
			fmt.Fprintf(a.stderr, "lanshare: warning: LocalSend scan: %s\n", oneLine(err))
		}
		return nil
	}
	devs, err := peer.ScanLocalSend(ctx, ident, a.ifaces, localsend.DefaultPort)
	if err != nil && ctx.Err() == nil && a.stderr != nil {
		fmt.Fprintf(a.stderr, "lanshare: warning: LocalSend scan: %s\n", oneLine(err))
	}
	return devs
}

// statics returns the static peers and their state (see staticStatuses);
// a static-peers file that cannot be read is a warning on stderr, not the
// end of the listing.
func (a peersArgs) statics(ctx context.Context, st *peer.Status) []peer.StaticStatus {
	statics, err := staticStatuses(ctx, a.configDir, st, a.wait)
	if err != nil && a.stderr != nil {
		fmt.Fprintf(a.stderr, "lanshare: warning: static peers not listed: %s\n", oneLine(err))
	}
	return statics
}

// render prints the peers found and the static peers and, in a table with
// no other agent in it, what commonly keeps peers from being found, on
// stderr.
func (a peersArgs) render(found []discovery.Peer, statics []peer.StaticStatus, ls []discovery.LocalSendDevice, selfID string) error {
	if err := renderListing(a.stdout, found, statics, ls, selfID, a.json, a.wait); err != nil {
		return err
	}
	others := len(statics) > 0 || len(localSendRows(ls)) > 0 || slices.ContainsFunc(found, func(p discovery.Peer) bool { return selfID == "" || p.ID != selfID })
	if !a.json && !others && a.stderr != nil {
		fmt.Fprintln(a.stderr, nobodyHint)
	}
	return nil
}

// nobodyHint says what commonly blocks discovery.
var nobodyHint = fmt.Sprintf("lanshare: no other agent answered. Often a firewall blocks mDNS (5353/udp) or lanshare (%d/tcp), "+
	"the Wi-Fi isolates its clients, --iface names the wrong interface, or the peer is on another subnet (name it by address: lanshare peers add HOST).", peer.DefaultPort)

// renderPeers prints the peers found, as JSON or as a table.
func renderPeers(w io.Writer, found []discovery.Peer, selfID string, asJSON bool, wait time.Duration) error {
	return renderListing(w, found, nil, nil, selfID, asJSON, wait)
}

// listed is one entry of the listing: a record found, a static peer, or
// both.
type listed struct {
	j      peerJSON
	static *peer.StaticStatus
}

// listing merges the static peers into the records found: a static peer
// whose id a record (with a label of its own) carries marks that record,
// and adds its address to it; the others follow, in file order.
func listing(found []discovery.Peer, statics []peer.StaticStatus, selfID string) []listed {
	out := make([]listed, 0, len(found)+len(statics))
	for _, p := range found {
		out = append(out, listed{j: toJSON(p, selfID)})
	}
	for i := range statics {
		s := &statics[i]
		k := slices.IndexFunc(out, func(l listed) bool { return s.ID != "" && l.j.ID == s.ID && !l.j.Suspicious && l.static == nil })
		if k < 0 {
			out = append(out, listed{j: peerJSON{Name: s.Name, Instance: s.Peer().Instance(), ID: s.ID, Addrs: []string{}}})
			k = len(out) - 1
		}
		l := &out[k]
		l.static = s
		l.j.Static, l.j.State, l.j.SeenID = true, s.State, s.SeenID
		if !slices.Contains(l.j.Addrs, s.Addr) {
			l.j.Addrs = append(l.j.Addrs, s.Addr)
		}
		if l.j.Version == "" {
			// Nothing but a record says what a peer speaks: one that
			// answers with its pinned key can be sent to, and the send
			// finds out.
			l.j.Sendable = s.State == peer.StaticUp
		}
		if s.State == peer.StaticKeyChanged {
			l.j.Sendable = false
		}
	}
	return out
}

// renderListing prints the peers found and the static peers, as JSON or
// as a table.
func renderListing(w io.Writer, found []discovery.Peer, statics []peer.StaticStatus, ls []discovery.LocalSendDevice, selfID string, asJSON bool, wait time.Duration) error {
	rows := append(listing(found, statics, selfID), localSendRows(ls)...)
	if asJSON {
		out := make([]peerJSON, 0, len(rows))
		for _, l := range rows {
			out = append(out, l.j)
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(out)
	}
	if len(rows) == 0 {
		fmt.Fprintf(w, "no peers found within %v\n", wait)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tID\tADDRESSES\tVERSION")
	for _, l := range rows {
		j := l.j
		note := ""
		switch {
		case j.Suspicious:
			// Before self: a record of our id under another label is not us.
			note = "(suspicious label: its name and id make " + peer.Escape(discovery.InstanceName(j.Name, j.ID)) + ")"
		case j.Self:
			note = "(this device)"
		case l.static != nil:
			note = "(static, " + staticState(*l.static) + checkedAgo(l.static.Checked, time.Now()) + ")"
		case j.Kind == "localsend":
			note = "(LocalSend " + j.DeviceType
			if j.Model != "" {
				note += ", " + peer.Escape(j.Model)
			}
			if j.Protocol == "http" {
				note += ", plain HTTP: not authenticated"
			}
			note += ")"
		case !j.Sendable:
			note = "(cannot receive from us)"
		}
		id := peer.ShortID(j.ID)
		if id == "" {
			id = "-"
		}
		line := fmt.Sprintf("%s\t%s\t%s\t%s", peer.Escape(j.Instance), peer.Escape(id),
			peer.Escape(strings.Join(j.Addrs, " ")), orDash(peer.Escape(j.Version)))
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

// localSendRows are the LocalSend devices to list: one row per device
// (one heard over IPv4 and IPv6 has both addresses), sorted by alias,
// without lanshare agents' own LocalSend side (listed as lanshare peers).
func localSendRows(devs []discovery.LocalSendDevice) []listed {
	var rows []listed
	for _, d := range devs {
		if d.DeviceModel == peer.LocalSendModel {
			continue
		}
		id := ""
		if d.Protocol == discovery.LocalSendHTTPS {
			// Over plain HTTP the fingerprint is a random string: no key.
			id = peer.LocalSendID(d.Fingerprint)
		}
		k := slices.IndexFunc(rows, func(l listed) bool {
			return l.j.Protocol == string(d.Protocol) && (id != "" && l.j.ID == id || id == "" && l.j.Name == d.Alias && l.j.Addrs[0] == d.Addr.String())
		})
		if k >= 0 {
			rows[k].j.Addrs = append(rows[k].j.Addrs, d.Addr.String())
			continue
		}
		rows = append(rows, listed{j: peerJSON{Kind: "localsend", Name: d.Alias, Instance: d.Alias, ID: id, Addrs: []string{d.Addr.String()},
			Version: "LocalSend " + d.Version, Sendable: true, Protocol: string(d.Protocol), DeviceType: string(d.DeviceType), Model: d.DeviceModel}})
	}
	slices.SortStableFunc(rows, func(x, y listed) int { return strings.Compare(x.j.Name, y.j.Name) })
	return rows
}

// checkedAgo says how old the running agent's last check of a static
// peer is, which is what peers shows: the agent checks every 30 s, and
// "lanshare peers static" checks now. "" for no check, or one just made
// (peers without an agent checks them itself).
func checkedAgo(checked, now time.Time) string {
	age := now.Sub(checked).Round(time.Second)
	if checked.IsZero() || age < time.Second {
		return ""
	}
	return ", checked " + formatDuration(age) + " ago"
}
