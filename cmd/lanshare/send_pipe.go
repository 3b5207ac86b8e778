package main

import (
	"context"
	"fmt"
	"io"
	"os"
	"slices"
	"time"

	"github.com/cheggaaa/pb/v3"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/peer"
	"github.com/lanshare/lanshare/proto"
)

// Sending standard input: `tar c photos | lanshare send bob --as
// photos.tar -`. "-" is sent alone, under the name --as gives, as a
// stream of unknown size (see peer.StreamItem).

// pipeArg is the path that stands for standard input.
const pipeArg = "-"

// isPipe reports whether paths send standard input.
func isPipe(paths []string) bool { return slices.Contains(paths, pipeArg) }

// pipeSettle is how long the end of standard input is held back before
// the stream's end is sent, for a Ctrl-C that stopped the program writing
// into the pipe to stop this send too (see peer.Stream.Settle).
const pipeSettle = 50 * time.Millisecond

// collectPipe returns standard input named a.as as the one item to send
// when a.paths is "-" (isPipe), after checking the command line: "-"
// alone and once, with --as. done puts standard input back as it was;
// call it when the send is over.
func collectPipe(a sendArgs) (items []peer.Item, done func(), pipe bool, err error) {
	done = func() {}
	n := 0
	for _, p := range a.paths {
		if p == pipeArg {
			n++
		}
	}
	switch {
	case n == 0 && a.as != "":
		return nil, done, false, usageError{msg: "--as names what is sent from standard input: lanshare send TARGET --as NAME -"}
	case n == 0:
		return nil, done, false, nil
	case n > 1:
		return nil, done, true, usageError{msg: "- (standard input) can be given once"}
	case len(a.paths) > 1:
		return nil, done, true, usageError{msg: "- (standard input) is sent alone: send the files in another command"}
	case a.as == "":
		return nil, done, true, usageError{msg: "standard input needs a name to arrive under: --as NAME (e.g. tar c photos | lanshare send bob --as photos.tar -)"}
	}
	if a.stdin == nil || isTerminal(a.stdin) {
		return nil, done, true, usageError{msg: "standard input is a terminal: pipe what to send into lanshare (… | lanshare send TARGET --as NAME -)"}
	}
	src, done := pollableStdin(a.stdin)
	it, err := peer.StreamItem(a.as, src)
	if err != nil {
		done()
		return nil, func() {}, true, usageError{msg: "--as " + err.Error()}
	}
	return []peer.Item{it}, done, true, nil
}

// settlePipe holds the end of items' stream, if any, back for pipeSettle
// or until ctx ends (a signal), which then ends the send.
func settlePipe(ctx context.Context, items []peer.Item) {
	for _, it := range items {
		if it.Stream == nil {
			continue
		}
		it.Stream.Settle = func() error {
			t := time.NewTimer(pipeSettle)
			defer t.Stop()
			select {
			case <-t.C:
				return nil
			case <-ctx.Done():
				return context.Cause(ctx)
			}
		}
	}
}

// refusePipeToLocalSend refuses to send a stream to a LocalSend device:
// LocalSend needs every file's size before it takes any.
func refusePipeToLocalSend(items []peer.Item, dev discovery.LocalSendDevice) error {
	for _, it := range items {
		if it.Entry.Kind == proto.KindStream {
			return usageError{msg: fmt.Sprintf("%s is a LocalSend device, which needs a file's size before it arrives: it cannot take standard input; save it to a file and send that",
				peer.Escape(dev.Alias))}
		}
	}
	return nil
}

// itemSize is the size of what it sent: a file's size, or the bytes read
// from a stream.
func itemSize(it peer.Item) uint64 {
	if it.Stream != nil {
		return it.Stream.Read()
	}
	return it.Entry.Size
}

// pipeBarTemplate shows a stream's progress: bytes and rate, without a
// total or a time left, which nobody knows.
const pipeBarTemplate = `{{string . "note"}}{{counters . }} {{speed . "%s/s" "?"}} {{etime . "%s elapsed"}} {{string . "file"}}`

// newSendBar is newBar, or for a send of standard input a bar without a
// total.
func newSendBar(pipe bool, total uint64, w io.Writer) *pb.ProgressBar {
	if !pipe {
		return newBar(total, w)
	}
	bar := pb.ProgressBarTemplate(pipeBarTemplate).New(0)
	bar.Set(pb.Bytes, true)
	bar.Set(pb.SIBytesPrefix, true)
	bar.SetWriter(w)
	bar.SetRefreshRate(200 * time.Millisecond)
	return bar.Start()
}

// sentOf says how much of a send went out, for a progress line: "X of
// Y", or for a stream "X".
func sentOf(pipe bool, p peer.Progress) string {
	if pipe {
		return peer.FormatBytes(p.Bytes)
	}
	return peer.FormatBytes(p.Bytes) + " of " + peer.FormatBytes(p.Total)
}

// pipeCutShort says what an interrupted send of standard input did: a
// pipe cannot be read again, so nothing resumes it.
func pipeCutShort(who string, items []peer.Item) string {
	it := items[0]
	switch {
	case it.Stream.Ended():
		return fmt.Sprintf("all of standard input (%s) was sent to %s, which had not confirmed it: %s may have been saved",
			peer.FormatBytes(it.Stream.Read()), who, peer.Escape(it.Entry.Path))
	case it.Stream.Read() == 0:
		return fmt.Sprintf("nothing was sent to %s", who)
	}
	return fmt.Sprintf("after %s of standard input; %s saved nothing as %s (a pipe cannot be resumed: send it again whole)",
		peer.FormatBytes(it.Stream.Read()), who, peer.Escape(it.Entry.Path))
}

// stdinFile is the standard input a send reads with "-".
var stdinFile = os.Stdin
