package peer

import (
	"io"
	"os"
	"testing"
)

// BenchmarkStreamTLS measures a stream (`tar c … | lanshare send bob --as
// NAME -`) on the real path, a Sender dialling an Agent over TLS 1.3,
// against the same bytes sent as a file (ratio-file): the stream's source
// is an OS pipe that a goroutine of this process fills from the file (as
// cat would), so the pipe's copy counts in its CPU time; the file goes
// through lanshare's own file path (a reader goroutine, sendfile-free
// under TLS). Both end with the data synced under its final name.
//
//	go test -run '^$' -bench '^BenchmarkStreamTLS$' -benchtime 3x -count 3 ./peer/
func BenchmarkStreamTLS(b *testing.B) {
	const size = 512 << 20
	src := largeSource(b, size)
	items := collect(b, src)
	agent, sender := startBenchAgent(b)
	compare(b, size, 1,
		way{name: "stream", dst: agent.inbox.Dir(), run: func(string) error { return sendStreamTLS(sender, agent, src) }},
		way{name: "file", dst: agent.inbox.Dir(), run: func(string) error { return sendTLS(sender, agent, items) }})
}

// sendStreamTLS sends the file src as a stream read from an OS pipe.
func sendStreamTLS(sender *Sender, agent *Agent, src string) error {
	pr, pw, err := os.Pipe()
	if err != nil {
		return err
	}
	defer pr.Close()
	fed := make(chan error, 1)
	go func() {
		f, err := os.Open(src)
		if err == nil {
			_, err = io.Copy(pw, f)
			f.Close()
		}
		pw.Close()
		fed <- err
	}()
	it, err := StreamItem("large.bin", pr)
	if err != nil {
		return err
	}
	err = sendTLS(sender, agent, []Item{it})
	pr.Close() // ends the feeder if the send failed
	if ferr := <-fed; err == nil {
		err = ferr
	}
	return err
}
