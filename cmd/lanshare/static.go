package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// Static peers: peers named by address, for networks where discovery does
// not reach them (routed segments, VPNs, Wi-Fi that isolates its
// clients). They are kept in the config directory (static_peers), pinned
// to the key they held when added, checked by the running agent, listed
// by `peers`, and found by send by name or id.

// staticCommands are the subcommands of `peers` that keep the static
// peers.
func staticCommands(configFlag cli.Flag, stdout io.Writer) []*cli.Command {
	def := peer.DefaultConfig()
	return []*cli.Command{
		{
			Name:      "add",
			Usage:     "add a static peer by address: one that discovery does not reach",
			ArgsUsage: "HOST[:PORT]",
			Description: fmt.Sprintf(`Adds a peer by its address, for networks where discovery does not reach
it: another subnet behind a router, a VPN, Wi-Fi that isolates its
clients. HOST is an IP address or a host name (looked up at every
connection); PORT defaults to %d, the port lanshare serve listens on
unless told otherwise.

add connects once to learn the peer's id (the fingerprint of its key) and
its name, and pins them: the name and that address reach that key only,
and a send that meets another key there stops with exit 6. Compare the id
it prints with what "lanshare id" shows on that device. The peer's agent
logs the visit as a transfer of nothing.

When the peer cannot be reached, nothing is added (exit 4), unless
--unverified: then the address is kept without a key, checked by the
running agent, sent to as a plain address, and pinned by a later
"lanshare peers add" of it. When the key at the address changed (a
reinstalled device, or someone else), add refuses (exit 6) until the
owner confirms the new id and you run it with --replace.

The list is kept in the config directory (static_peers, one peer per
line, at most %d); the running agent checks each peer about every 30 s
(less often while it is down) and "lanshare peers" shows them.

Examples:
   lanshare peers add 10.0.5.7
   lanshare peers add nas.example.lan:52741
   lanshare peers add --unverified 10.8.0.12
   lanshare peers add --replace 10.0.5.7`, peer.DefaultPort, peer.MaxStaticPeers),
			Flags: []cli.Flag{
				configFlag,
				&cli.StringFlag{Name: "name", Usage: "display name to give the peer", Value: def.Name, DefaultText: agentName(def.Name), EnvVars: []string{"LANSHARE_NAME"}},
				&cli.BoolFlag{Name: "unverified", Usage: "keep the address without connecting now: nothing is pinned until it is added again"},
				&cli.BoolFlag{Name: "replace", Usage: "accept the key the address holds now in place of the one it was added with (forgets the old key's pins and trust)"},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 || c.Args().First() == "" {
					return usageError{msg: "peers add needs one address: lanshare peers add HOST[:PORT]"}
				}
				if c.Bool("unverified") && c.Bool("replace") {
					return usageError{msg: "--unverified and --replace do not go together"}
				}
				return addStatic(c.Context, staticAddArgs{target: c.Args().First(), name: c.String("name"),
					configDir: expandHome(c.String("config")), unverified: c.Bool("unverified"), replace: c.Bool("replace"), stdout: stdout})
			},
		},
		{
			Name:      "remove",
			Usage:     "remove a static peer",
			ArgsUsage: "HOST[:PORT]|NAME|ID",
			Description: `Removes the static peers that the address, host, name, instance name, id or
id prefix (four characters or more) names. Their keys stay pinned to their
names in known_peers, as a send pins them: "lanshare untrust --forget NAME"
forgets them too.

Examples:
   lanshare peers remove 10.0.5.7
   lanshare peers remove bob`,
			Flags: []cli.Flag{configFlag},
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 || c.Args().First() == "" {
					return usageError{msg: "peers remove needs one peer: lanshare peers remove HOST[:PORT]|NAME|ID"}
				}
				return removeStatic(expandHome(c.String("config")), c.Args().First(), stdout)
			},
		},
		{
			Name:  "static",
			Usage: "list the static peers and whether they answer",
			Description: `Lists the static peers (added with "lanshare peers add"): address, name, id,
and state: up (it answers with the key it was added with), down, key
changed (another key answers there: nothing is sent to it), or not checked
yet. Each peer is checked now, within --wait (at least 2 s); "lanshare
peers" shows the running agent's last check instead, which may be 30 s old
(some minutes for a peer that is down).

Examples:
   lanshare peers static
   lanshare peers static --json`,
			Flags: []cli.Flag{
				configFlag,
				&cli.BoolFlag{Name: "json", Usage: "print JSON: an array of {addr, name, id, state, seen_id, error, checked}"},
				&cli.DurationFlag{Name: "wait", Usage: "how long to wait for the peers' answers", Value: staticWait},
			},
			Action: func(c *cli.Context) error {
				if c.NArg() > 0 {
					return usageError{msg: "peers static takes no arguments"}
				}
				return listStatic(c.Context, expandHome(c.String("config")), c.Bool("json"), c.Duration("wait"), stdout)
			},
		},
	}
}

type staticAddArgs struct {
	target, name, configDir string
	unverified, replace     bool
	stdout                  io.Writer
}

// addStatic adds a static peer: it connects to learn its id and name,
// pins them, and keeps the address; see the add command's description.
func addStatic(ctx context.Context, a staticAddArgs) error {
	addr, err := peer.ParseStaticAddr(a.target)
	if err != nil {
		return usageError{msg: err.Error()}
	}
	list, err := peer.LoadStatic(a.configDir)
	if err != nil {
		return err
	}
	old, had := list.ByAddr(addr)
	if a.unverified {
		if had && old.ID != "" {
			return fmt.Errorf("%s is added already, as %s with id %s; --unverified would drop its key: to check it again, run: lanshare peers add %s",
				addr, peer.Escape(old.Instance()), peer.GroupID(old.ID), addr)
		}
		if err := list.Put(peer.StaticPeer{Addr: addr}); err != nil {
			return err
		}
		fmt.Fprintf(a.stdout, "kept %s unverified: no key is pinned yet, and sends to it go to whoever answers there.\nOnce it is reachable, check and pin its key with: lanshare peers add %s\n", addr, addr)
		return nil
	}
	id, err := peer.LoadIdentity(a.configDir)
	if err != nil {
		return err
	}
	known, err := peer.LoadKnown(a.configDir)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	peerID, name, err := peer.ProbeStatic(ctx, id, addr, a.name)
	if sig, ok := interruption(ctx); ok && err != nil {
		return interruptedError{sig: sig, what: "nothing was added"}
	}
	if err != nil {
		return reworded{err: err, msg: fmt.Sprintf("cannot reach %s: %s; nothing was added. Check the address, and that lanshare serve runs there (on port %d unless told otherwise); to keep the address and check it later: lanshare peers add --unverified %s",
			addr, oneLine(err), peer.DefaultPort, addr)}
	}
	if peerID == id.ID {
		return fmt.Errorf("%s is this device (id %s): nothing was added", addr, peer.GroupID(peerID))
	}
	instance := peer.StaticPeer{Addr: addr, ID: peerID, Name: name}.Instance()
	if had && old.ID != "" && old.ID != peerID {
		if !a.replace {
			return fmt.Errorf("%w: %s now holds key %s, but it was added as %s with key %s; nothing was changed. If its owner confirms the new id (lanshare id on that device), accept it with: lanshare peers add --replace %s",
				peer.ErrKeyChanged, addr, peer.GroupID(peerID), peer.Escape(old.Instance()), peer.GroupID(old.ID), addr)
		}
		gone, err := known.Forget(old.ID)
		if err != nil {
			return err
		}
		for _, g := range gone {
			if g.Level == peer.Trusted {
				fmt.Fprintf(a.stdout, "the old key %s was trusted; trust the new one, if you wish, with: lanshare trust %s\n", peer.GroupID(old.ID), peer.GroupID(peerID))
			}
		}
		fmt.Fprintf(a.stdout, "forgot the old key %s of %s\n", peer.GroupID(old.ID), addr)
	}
	var others []string
	for _, p := range known.ByName(name) {
		if p.ID != peerID {
			others = append(others, peer.GroupID(p.ID))
		}
	}
	if err := known.Pin(peerID, name); err != nil {
		return err
	}
	if err := list.Put(peer.StaticPeer{Addr: addr, ID: peerID, Name: name}); err != nil {
		return err
	}
	if had && old.ID == peerID {
		fmt.Fprintf(a.stdout, "%s at %s is added already, with this key: id %s\n", peer.Escape(instance), addr, peer.GroupID(peerID))
	} else {
		fmt.Fprintf(a.stdout, "added %s at %s, id %s\n", peer.Escape(instance), addr, peer.GroupID(peerID))
		fmt.Fprintf(a.stdout, "Its key is pinned: a send to it meets this key or stops. Compare the id with what \"lanshare id\" shows on that device.\n")
	}
	if len(others) > 0 {
		fmt.Fprintf(a.stdout, "note: the name %s is also pinned to %s (another device of that name?); name one by instance name or id to send\n",
			peer.Escape(name), strings.Join(others, ", "))
	}
	return nil
}

// removeStatic removes the static peers what names.
func removeStatic(configDir, what string, w io.Writer) error {
	list, err := peer.LoadStatic(configDir)
	if err != nil {
		return err
	}
	gone, err := list.Remove(what)
	if errors.Is(err, peer.ErrNotStatic) {
		return fmt.Errorf("%w (lanshare peers static lists them)", err)
	}
	if err != nil {
		return err
	}
	for _, p := range gone {
		if p.Instance() == p.Addr {
			fmt.Fprintf(w, "removed %s\n", peer.Escape(p.Addr)) // no name known for it
		} else {
			fmt.Fprintf(w, "removed %s at %s\n", peer.Escape(p.Instance()), peer.Escape(p.Addr))
		}
		if p.ID != "" && p.Name != "" {
			fmt.Fprintf(w, "its key stays pinned to the name %s; forget it too with: lanshare untrust --forget %s\n", peer.Escape(p.Name), peer.GroupID(p.ID))
		}
	}
	return nil
}

// staticWait is the least time a one-shot look gives static peers to
// answer: a TLS handshake over a VPN or a slow link.
const staticWait = 2 * time.Second

// staticStatuses returns the static peers of the config directory dir
// and their state: the running agent's last check of each (st, when not
// nil), or, without an agent, a check of each now within max(wait,
// staticWait), at most 16 at a time. A peer added since the agent last
// read the file is StaticUnknown.
func staticStatuses(ctx context.Context, dir string, st *peer.Status, wait time.Duration) ([]peer.StaticStatus, error) {
	list, err := peer.LoadStatic(dir)
	if err != nil {
		return nil, err
	}
	peers := list.List()
	if len(peers) == 0 {
		return nil, nil
	}
	out := make([]peer.StaticStatus, len(peers))
	if st != nil {
		for i, p := range peers {
			out[i] = peer.StaticStatus{Addr: p.Addr, ID: p.ID, Name: p.Name, State: peer.StaticUnknown}
			for _, s := range st.Static {
				if s.Peer() == p {
					out[i] = s
				}
			}
		}
		return out, nil
	}
	id, err := peer.LoadIdentity(dir)
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, max(wait, staticWait))
	defer cancel()
	var wg sync.WaitGroup
	slots := make(chan struct{}, 16)
	for i, p := range peers {
		wg.Add(1)
		slots <- struct{}{}
		go func() {
			defer wg.Done()
			defer func() { <-slots }()
			out[i] = peer.CheckStatic(ctx, id, p)
		}()
	}
	wg.Wait()
	return out, nil
}

// listStatic checks the static peers now, and prints them and their
// state.
func listStatic(ctx context.Context, dir string, asJSON bool, wait time.Duration, w io.Writer) error {
	ctx, stop := signalContext(ctx)
	defer stop()
	statuses, err := staticStatuses(ctx, dir, nil, wait)
	if err != nil {
		return err
	}
	if asJSON {
		if statuses == nil {
			statuses = []peer.StaticStatus{}
		}
		enc := json.NewEncoder(w)
		enc.SetIndent("", "  ")
		return enc.Encode(statuses)
	}
	if len(statuses) == 0 {
		fmt.Fprintln(w, "no static peers (add one with: lanshare peers add HOST[:PORT])")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ADDRESS\tNAME\tID\tSTATE")
	for _, s := range statuses {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", peer.Escape(s.Addr), orDash(peer.Escape(s.Name)), orDash(peer.ShortID(s.ID)), staticState(s))
	}
	return tw.Flush()
}

// staticState says what a static peer's check found, in a few words.
func staticState(s peer.StaticStatus) string {
	switch {
	case s.State == peer.StaticKeyChanged:
		return fmt.Sprintf("KEY CHANGED: now id %s, not sent to (lanshare peers add --replace %s accepts it)", peer.ShortID(s.SeenID), peer.Escape(s.Addr))
	case s.State == peer.StaticUp && s.ID == "":
		return fmt.Sprintf("up, unverified: answers with id %s (lanshare peers add %s pins it)", peer.ShortID(s.SeenID), peer.Escape(s.Addr))
	case s.State == peer.StaticDown && s.Error != "":
		return "down: " + peer.Escape(s.Error)
	case s.State == peer.StaticUnknown || s.State == "":
		return "not checked yet"
	}
	return peer.Escape(s.State)
}

// staticKeyChanged rewords a send's ErrWrongKey for a static peer: the
// key at its address is not the one it was added with, and how to accept
// the new one. Other errors are returned as they are.
func staticKeyChanged(t peer.Target, err error) error {
	if t.Static == "" || !errors.Is(err, peer.ErrWrongKey) {
		return err
	}
	return reworded{err: err, msg: fmt.Sprintf("refusing to send to %s at %s: the key that answers there is not the one it was added with (id %s); nothing was sent to it. If its owner confirms the new id (lanshare id on that device), accept it with: lanshare peers add --replace %s",
		peer.Escape(t.Name), peer.Escape(t.Static), peer.GroupID(t.ID), peer.Escape(t.Static))}
}

// logStatic logs a static peer's new state in serve's log: up, or down
// with why. A changed key is the agent's own warning (Config.Logf).
func logStatic(lg agentLog, st peer.StaticStatus) {
	ev := serveEvent{Peer: st.Peer().Instance(), Name: st.Name, PeerID: st.ID, Addrs: []string{st.Addr}}
	switch st.State {
	case peer.StaticUp:
		ev.Event = "static-up"
		lg.event(st.Checked, prioInfo, ev, "static peer up: %s at %s", peer.Escape(ev.Peer), peer.Escape(st.Addr))
	case peer.StaticDown:
		ev.Event, ev.Reason = "static-down", st.Error
		lg.event(st.Checked, prioInfo, ev, "static peer down: %s at %s: %s", peer.Escape(ev.Peer), peer.Escape(st.Addr), peer.Escape(st.Error))
	}
}
