package main

import (
	"context"
	"errors"
	"fmt"
	"io"
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
// taken only from a record that advertises exactly that id. Anything else
// is looked up on the LAN like a send target, and refused when its name
// is pinned to another key: that case needs the whole id, after checking
// it with the peer's owner.
func trust(ctx context.Context, configDir, what string, opt peer.ResolveOptions, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	ctx, stop := signalContext(ctx)
	defer stop()
	id, name := peer.ParseID(what), ""
	switch {
	case id != "":
		if p, ok := known.ByID(id); ok {
			name = p.Name
		} else if found, err := discovery.Browse(ctx, opt.Ifaces, opt.Wait); err == nil {
			// A new id, typically a known peer's new key: its name lets
			// the trust replace the old key's pin.
			for _, p := range found {
				if p.ID == id {
					name = p.Name
					break
				}
			}
		}
	default:
		t, err := peer.Resolve(ctx, what, opt)
		if err != nil {
			return err
		}
		if t.ID == "" {
			return usageError{msg: fmt.Sprintf("%s is an address; trust a peer by name or id", what)}
		}
		id, name = t.ID, t.DisplayName
		for _, p := range known.ByName(name) {
			if p.ID != id {
				return fmt.Errorf("%w: %s answers with id %s, but the name %s is pinned to %s; check the id with its owner (lanshare id), then run: lanshare trust %s",
					peer.ErrKeyChanged, peer.Escape(t.Name), peer.GroupID(id), peer.Escape(name), peer.GroupID(p.ID), peer.GroupID(id))
			}
		}
	}
	if err := known.Trust(id, name); err != nil {
		return err
	}
	shown := "-"
	if name != "" {
		shown = peer.Escape(name)
	}
	fmt.Fprintf(w, "trusted %s id %s\n", shown, peer.GroupID(id))
	return nil
}

func untrust(configDir, what string, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	gone, err := known.Forget(what)
	if err != nil {
		return err
	}
	if len(gone) == 0 {
		return fmt.Errorf("%s: %w (see lanshare trusted)", peer.Escape(what), errNotKnown)
	}
	for _, p := range gone {
		fmt.Fprintf(w, "forgot %s id %s (was %s)\n", orDash(p.Name), peer.GroupID(p.ID), p.Level)
	}
	return nil
}

func listTrusted(configDir string, w io.Writer) error {
	known, err := peer.LoadKnown(configDir)
	if err != nil {
		return err
	}
	list := known.List()
	if len(list) == 0 {
		fmt.Fprintln(w, "no known peers")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "NAME\tLEVEL\tID")
	for _, p := range list {
		fmt.Fprintf(tw, "%s\t%s\t%s\n", orDash(p.Name), p.Level, peer.GroupID(p.ID))
	}
	return tw.Flush()
}
