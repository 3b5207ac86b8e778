package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

// errNotKnown means untrust named nothing in the known-peers list.
var errNotKnown = errors.New("not a known peer")

// showID prints this device's name and id, creating the identity on first
// use.
func showID(configDir, name string, w io.Writer) error {
	id, err := peer.LoadIdentity(configDir)
	if err != nil {
		return err
	}
	fmt.Fprintf(w, "name: %s\ninstance: %s\nid: %s\n", peer.Escape(name),
		peer.Escape(discovery.InstanceName(name, id.ID)), peer.GroupID(id.ID))
	return nil
}

// trust marks a peer trusted. A whole id needs no network; its name is
// the one it is known by, else the one its own records advertise (those
// whose instance label is their own). Anything else is looked up on the
// LAN like a send target, steered to the ids pinned to it, and refused
// when it is pinned to another key: that case needs the whole id, after
// checking it with the peer's owner. Trusting never forgets another key:
// a name pinned to other ids stays theirs (the id is trusted without
// it), unless replace, which takes the name for id and forgets the other
// ids pinned or trusted under it; replace needs a whole id.
func trust(ctx context.Context, configDir, what string, replace bool, opt peer.ResolveOptions, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	id, name := peer.ParseID(what), ""
	advertised := false // name is only what the peer's records say
	switch {
	case id != "":
		if p, ok := known.ByID(id); ok {
			name = p.Name
		}
		if name == "" {
			if found, err := discovery.Browse(ctx, opt.Ifaces, opt.Wait); err == nil {
				name, advertised = advertisedName(found, id), true
			}
		}
	case replace:
		return usageError{msg: "--replace needs the peer's whole id: check it with its owner (lanshare id), then run: lanshare trust --replace ID"}
	default:
		opt.Pins = known
		static, err := peer.LoadStatic(configDir)
		if err != nil {
			return err
		}
		opt.Static = static.List()
		t, err := peer.Resolve(ctx, what, opt)
		if errors.Is(err, peer.ErrUnknownPeer) {
			// A LocalSend device, by alias or id prefix?
			if devs, lerr := localSendDevices(ctx, configDir, peer.DefaultConfig().Name, opt); lerr == nil {
				if d, ferr := peer.FindLocalSend(devs, what); ferr == nil && d.Protocol == discovery.LocalSendHTTPS {
					t, err = peer.Target{Name: peer.Escape(d.Alias), DisplayName: d.Alias, ID: peer.LocalSendID(d.Fingerprint), ByName: true, Typed: what}, nil
				} else if !errors.Is(ferr, peer.ErrUnknownPeer) {
					err = ferr
				}
			}
		}
		if err != nil {
			return err
		}
		if t.ID == "" {
			return usageError{msg: fmt.Sprintf("%s is an address; trust a peer by name or id", what)}
		}
		if err := known.Check(t); err != nil {
			return err
		}
		id, name = t.ID, t.DisplayName
		if p, ok := known.ByID(id); ok && p.Name != "" {
			name = p.Name // the name it was pinned under, whatever it calls itself now
		}
	}
	var others []peer.KnownPeer // other keys known under the name
	if name != "" {
		for _, p := range known.ByName(name) {
			if p.ID != id {
				others = append(others, p)
			}
		}
	}
	switch {
	case replace && name == "":
		return fmt.Errorf("%w %s: it is not known and did not answer, so there is no name to replace its key under", peer.ErrUnknownPeer, peer.GroupID(id))
	case replace:
		err = known.Replace(id, name)
	case advertised && len(others) > 0:
		// The name is only what the peer says, and another key holds it.
		err = known.Trust(id, "")
	default:
		err = known.Trust(id, name)
	}
	if err != nil {
		return err
	}
	switch {
	case replace:
		fmt.Fprintf(w, "trusted %s id %s\n", peer.Escape(name), peer.GroupID(id))
		for _, p := range others {
			fmt.Fprintf(w, "forgot %s id %s (was %s)\n", orDash(p.Name), peer.GroupID(p.ID), p.Level)
		}
	case advertised && len(others) > 0:
		fmt.Fprintf(w, "trusted - id %s\n", peer.GroupID(id))
		fmt.Fprintf(w, "it calls itself %s, but that name stays pinned to %s; to make this id the key of %[1]s instead, run: lanshare trust --replace %[3]s\n",
			peer.Escape(name), peer.GroupID(others[0].ID), peer.GroupID(id))
	default:
		fmt.Fprintf(w, "trusted %s id %s\n", orDash(peer.Escape(name)), peer.GroupID(id))
	}
	return nil
}

// advertisedName is the display name the records of id found give it,
// counting only records whose instance label is their own; "" when there
// is none or they disagree.
func advertisedName(found []discovery.Peer, id string) string {
	name := ""
	for _, p := range found {
		if p.ID != id || peer.Suspicious(p) {
			continue
		}
		if name != "" && !strings.EqualFold(name, p.Name) {
			return ""
		}
		name = p.Name
	}
	return name
}

// untrust takes a peer's trust away and keeps its name pinned to its id;
// with forget it removes every entry that matches, pin and all.
func untrust(configDir, what string, forget bool, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	if forget {
		gone, err := known.Forget(what)
		if err != nil {
			return err
		}
		if len(gone) == 0 {
			return fmt.Errorf("%s: %w (see lanshare trusted --all)", peer.Escape(what), errNotKnown)
		}
		for _, p := range gone {
			fmt.Fprintf(w, "forgot %s id %s (was %s)\n", orDash(p.Name), peer.GroupID(p.ID), p.Level)
		}
		return nil
	}
	untrusted, pinned, err := known.Untrust(what)
	if err != nil {
		return err
	}
	if len(untrusted) == 0 && len(pinned) == 0 {
		return fmt.Errorf("%s: %w (see lanshare trusted --all)", peer.Escape(what), errNotKnown)
	}
	for _, p := range untrusted {
		if p.Name == "" {
			fmt.Fprintf(w, "no longer trusted: id %s (forgotten: no name was pinned to it)\n", peer.GroupID(p.ID))
			continue
		}
		fmt.Fprintf(w, "no longer trusted: %s id %s; the name stays pinned to that id (to forget it too: lanshare untrust --forget %s)\n",
			p.Name, peer.GroupID(p.ID), peer.GroupID(p.ID))
	}
	for _, p := range pinned {
		fmt.Fprintf(w, "not trusted: %s id %s is only pinned (to forget it: lanshare untrust --forget %s)\n",
			orDash(p.Name), peer.GroupID(p.ID), peer.GroupID(p.ID))
	}
	return nil
}

// listTrusted lists the peers the user trusted, then, in a section of
// their own, the names a send pinned to keys; with all, the whole
// known-peers file in one table, in file order.
func listTrusted(configDir string, all bool, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	list := known.List()
	if len(list) == 0 {
		fmt.Fprintln(w, "no known peers")
		return nil
	}
	if all {
		return knownTable(w, list)
	}
	var trusted, pinned []peer.KnownPeer
	for _, p := range list {
		if p.Level == peer.Trusted {
			trusted = append(trusted, p)
		} else {
			pinned = append(pinned, p)
		}
	}
	if len(trusted) == 0 {
		fmt.Fprintln(w, "no trusted peers")
	} else if err := knownTable(w, trusted); err != nil {
		return err
	}
	if len(pinned) > 0 {
		fmt.Fprintln(w, "\npinned by a send, not trusted (lanshare trust NAME trusts one):")
		return knownTable(w, pinned)
	}
	return nil
}

// knownTable prints known peers as a table: name, level, full id.
func knownTable(w io.Writer, list []peer.KnownPeer) error {
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLEVEL\tID")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", orDash(p.Name), p.Level, peer.GroupID(p.ID))
	}
	return tw.Flush()
}
