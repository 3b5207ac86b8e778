package main

import (
	"encoding/json"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/lanshare/lanshare/peer"
)

// showHistory prints what arrived, oldest first: a table, or with asJSON
// one object per line (the peer.Arrival fields).
func showHistory(configDir string, asJSON bool, w io.Writer) error {
	arrivals, err := peer.OpenHistory(configDir).Read()
	if err != nil {
		return err
	}
	if asJSON {
		enc := json.NewEncoder(jsonForTerminal{w})
		for _, a := range arrivals {
			if err := enc.Encode(a); err != nil {
				return err
			}
		}
		return nil
	}
	if len(arrivals) == 0 {
		fmt.Fprintln(w, "nothing received yet")
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME\tFROM\tID\tSIZE\tSAVED AS")
	for _, a := range arrivals {
		size, saved := peer.FormatBytes(a.Size), peer.Escape(a.SavedAs)
		if a.Text != "" {
			size, saved = "-", historyTextCell(a)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", stamp(a.Time.Local()), orDash(peer.Escape(a.From)),
			orDash(peer.ShortID(a.ID)), size, saved)
	}
	return tw.Flush()
}
