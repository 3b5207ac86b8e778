package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/lanshare/lanshare/peer"
)

// status asks the local agent (the one with this config directory) about
// itself over its control socket.
func status(ctx context.Context, configDir string, asJSON bool, w io.Writer) error {
	st, err := peer.QueryAgent(ctx, configDir)
	if err != nil {
		return err
	}
	if asJSON {
		return json.NewEncoder(w).Encode(statusOut(st))
	}
	fmt.Fprintf(w, "agent running since %s (%s)\n", stamp(st.Since.Local()), formatDuration(time.Since(st.Since).Round(time.Second)))
	fmt.Fprintf(w, "name:      %s\n", peer.Escape(st.Name))
	fmt.Fprintf(w, "instance:  %s\n", peer.Escape(st.Instance))
	fmt.Fprintf(w, "id:        %s\n", peer.GroupID(st.ID))
	fmt.Fprintf(w, "pid:       %d\n", st.PID)
	fmt.Fprintf(w, "listening: %s\n", st.Listen)
	fmt.Fprintf(w, "folder:    %s\n", peer.Escape(st.Dir))
	fmt.Fprintf(w, "accepting: %s\n", st.Accept)
	if st.StrangersLeft != nil {
		fmt.Fprintf(w, "strangers: %s, %s left today\n", st.StrangerBudget, peer.FormatBytes(*st.StrangersLeft))
	}
	if st.Pending > 0 {
		fmt.Fprintf(w, "pending:   %s wait for your answer (lanshare pending)\n", plural(st.Pending, "offer"))
	}
	fmt.Fprintf(w, "receiving: %s\n", plural(st.Transfers, "transfer"))
	if st.Queued+st.QueueHeld > 0 {
		fmt.Fprintf(w, "queue:     %s\n", queueLine(st.Queued, st.QueueHeld))
	}
	if st.Partials > 0 {
		fmt.Fprintf(w, "partial:   %s (%s) kept for a resume\n", plural(st.Partials, "file"), peer.FormatBytes(st.PartialBytes))
	}
	fmt.Fprintf(w, "peers:     %d\n", len(st.Peers))
	for _, p := range st.Peers {
		fmt.Fprintf(w, "  %s\n", peerLine(p, ""))
	}
	if st.LocalSendListen != "" {
		fmt.Fprintf(w, "localsend: %s, certificate %s\n", httpsURL(st.LocalSendListen), peer.LocalSendShortFingerprint(st.LocalSendFingerprint))
		rows := localSendRows(st.LocalSend)
		fmt.Fprintf(w, "localsend devices: %d\n", len(rows))
		for _, r := range rows {
			fmt.Fprintf(w, "  %s (%s) at %s\n", peer.Escape(r.j.Name), orDash(peer.ShortID(r.j.ID)), strings.Join(r.j.Addrs, " "))
		}
	}
	if len(st.Static) > 0 {
		fmt.Fprintf(w, "static:    %d (lanshare peers static)\n", len(st.Static))
		for _, s := range st.Static {
			fmt.Fprintf(w, "  %s at %s: %s\n", peer.Escape(s.Peer().Instance()), peer.Escape(s.Addr), staticState(s))
		}
	}
	return nil
}

// statusJSON is status --json: the agent's status, its peers and
// LocalSend devices as peers --json lists them (the control socket
// carries discovery's own records, with Go's field names and a TTL in
// nanoseconds), and the queue's counts always given.
type statusJSON struct {
	*peer.Status
	Peers     []peerJSON `json:"peers"`
	LocalSend []peerJSON `json:"localsend,omitempty"`
	QueueHeld int        `json:"queue_held"`
}

func statusOut(st *peer.Status) statusJSON {
	out := statusJSON{Status: st, Peers: []peerJSON{}, QueueHeld: st.QueueHeld}
	for _, p := range st.Peers {
		out.Peers = append(out.Peers, toJSON(p, st.ID))
	}
	for _, r := range localSendRows(st.LocalSend) {
		out.LocalSend = append(out.LocalSend, r.j)
	}
	return out
}
