package main

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net/netip"
	"os"
	"slices"
	"strings"

	"golang.org/x/term"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
)

// findLocalSendDevice finds the LocalSend device a.target names: with
// --localsend, an IP:PORT by asking that address at once; else in the
// running agent's table, else by a look on the LAN (--wait), else, for
// HOST:PORT, by asking that address.
func findLocalSendDevice(ctx context.Context, a sendArgs) (discovery.LocalSendDevice, error) {
	// A 2.2 device answers only a client that presents a certificate.
	ident, err := peer.LoadLocalSendIdentity(a.configDir)
	if err != nil {
		return discovery.LocalSendDevice{}, err
	}
	if _, err := netip.ParseAddrPort(a.target); err == nil && a.localsend {
		// An address names one device: ask it, rather than spend --wait
		// looking for devices first. Its certificate is checked against
		// a pin as for a device found by a look.
		return peer.ProbeLocalSend(ctx, ident, a.target)
	}
	devs, err := localSendDevices(ctx, a.configDir, a.name, a.resolve)
	if err != nil {
		return discovery.LocalSendDevice{}, err
	}
	if !a.localsend {
		devs = withoutAgents(devs)
	}
	dev, err := peer.FindLocalSend(devs, a.target)
	if errors.Is(err, peer.ErrUnknownPeer) && a.localsend {
		// An address no table has: ask it.
		return peer.ProbeLocalSend(ctx, ident, a.target)
	}
	return dev, err
}

// withoutAgents is devs less the LocalSend side of lanshare agents, for a
// name no lanshare peer answered to: an agent's lanshare side would have,
// so its LocalSend entry is one that outlived the agent's goodbye (they
// are kept for their TTL). send --localsend keeps them, as asked.
func withoutAgents(devs []discovery.LocalSendDevice) []discovery.LocalSendDevice {
	return slices.DeleteFunc(slices.Clone(devs), func(d discovery.LocalSendDevice) bool { return d.DeviceModel == peer.LocalSendModel })
}

// localSendDevices returns the LocalSend devices known now: the running
// agent's table (unless opt restricts interfaces), else what a look on
// the LAN for opt.Wait finds, announcing us as name.
func localSendDevices(ctx context.Context, configDir, name string, opt peer.ResolveOptions) ([]discovery.LocalSendDevice, error) {
	if st, err := peer.QueryAgent(ctx, configDir); err == nil && len(opt.Ifaces) == 0 {
		return st.LocalSend, nil
	}
	devs, err := peer.LookLocalSend(ctx, configDir, name, opt.Ifaces, opt.Wait)
	if err != nil && ctx.Err() == nil {
		return nil, fmt.Errorf("looking for LocalSend devices: %w", err)
	}
	return devs, nil
}

// sendLocalSend sends to a LocalSend device with the agent's LocalSend
// identity, asking for its PIN (on the terminal, or --pin) only when it
// asks for one.
func sendLocalSend(ctx context.Context, a sendArgs, dev discovery.LocalSendDevice, known *peer.Known, items []peer.Item, opt peer.SendOptions) (*peer.Report, error) {
	if err := refusePipeToLocalSend(items, dev); err != nil {
		return nil, err
	}
	ident, err := peer.LoadLocalSendIdentity(a.configDir)
	if err != nil {
		return nil, err
	}
	s := peer.LocalSendSender{Identity: ident, Known: known}
	lo := peer.LocalSendOptions{SendOptions: opt}
	given := false
	lo.PIN = func(ctx context.Context, req peer.PINRequest) (string, error) {
		if a.pin != "" && !given {
			given = true
			return a.pin, nil
		}
		if a.pin != "" || !term.IsTerminal(int(os.Stdin.Fd())) {
			if req.Wrong {
				return "", fmt.Errorf("%s refused the PIN", peer.Escape(req.Peer))
			}
			return "", fmt.Errorf("%s asks for a PIN: give it with --pin", peer.Escape(req.Peer))
		}
		what := "PIN"
		if req.Wrong {
			what = "wrong PIN; PIN"
		}
		fmt.Fprintf(a.stderr, "%s for %s: ", what, peer.Escape(req.Peer))
		pin, err := readLine(ctx, os.Stdin)
		fmt.Fprintln(a.stderr)
		return strings.TrimSpace(pin), err
	}
	return s.Send(ctx, dev, items, lo)
}

// waitingLine says who the send waits for: a lanshare peer's owner within
// a time it named, or a LocalSend device's user, who has no limit.
func waitingLine(w peer.Waiting) string {
	if w.Timeout <= 0 {
		return fmt.Sprintf("waiting for %s to accept...", w.Peer)
	}
	return fmt.Sprintf("waiting for %s's owner to accept (up to %s)...", w.Peer, w.Timeout)
}

// readLine reads a line from f, or gives up when ctx ends (the read is
// then left to the process's exit, which follows).
func readLine(ctx context.Context, f *os.File) (string, error) {
	got := make(chan string, 1)
	go func() {
		line, _ := bufio.NewReader(f).ReadString('\n')
		got <- line
	}()
	select {
	case line := <-got:
		return line, nil
	case <-ctx.Done():
		return "", ctx.Err()
	}
}
