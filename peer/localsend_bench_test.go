package peer

import (
	"context"
	"fmt"
	"net/netip"
	"testing"
)

// BenchmarkLargeFileLocalSend measures what an agent receives over
// LocalSend's protocol (SendLocalSend into the agent's LocalSend server,
// HTTPS with certificates on both sides) against the lanshare protocol
// (Sender into the same agent, TLS 1.3), interleaved: ratio-lanshare is
// LocalSend's rate over the lanshare protocol's (issue 15's target: 0.8).
//
//	go test -run '^$' -bench '^BenchmarkLargeFileLocalSend$' -benchtime 3x -count 3 ./peer/
func BenchmarkLargeFileLocalSend(b *testing.B) {
	for _, size := range []int64{256 << 20, 1 << 30} {
		b.Run(fmt.Sprintf("%dMiB", size>>20), func(b *testing.B) {
			src := largeSource(b, size)
			items := collect(b, src)
			agent, sender := startBenchAgentLocalSend(b)
			ident, err := LoadLocalSendIdentity(b.TempDir())
			must(b, err)
			target := LocalSendTarget{Addr: netip.MustParseAddrPort(agent.LocalSendAddr().String()), Fingerprint: agent.LocalSendFingerprint(), Alias: "bench"}
			compare(b, size, 1,
				way{name: "localsend", dst: agent.inbox.Dir(), run: func(string) error {
					_, err := SendLocalSend(context.Background(), target, items, LocalSendOptions{SendOptions: SendOptions{Name: "bench"}, Identity: ident})
					return err
				}},
				way{name: "lanshare", dst: agent.inbox.Dir(), run: func(string) error { return sendTLS(sender, agent, items) }})
		})
	}
}

// startBenchAgentLocalSend is startBenchAgent with its LocalSend server
// on loopback.
func startBenchAgentLocalSend(b *testing.B) (*Agent, *Sender) {
	cfg := DefaultConfig()
	cfg.Dir, cfg.ConfigDir, cfg.Name, cfg.Listen = b.TempDir(), b.TempDir(), "bench", "127.0.0.1:0"
	cfg.SpaceMargin, cfg.Accept, cfg.Discover = 0, AcceptEveryone, false
	cfg.LocalSend, cfg.LocalSendListen = true, "127.0.0.1:0"
	agent, err := New(cfg)
	must(b, err)
	ctx, cancel := context.WithCancel(context.Background())
	served := make(chan error, 1)
	go func() { served <- agent.Serve(ctx) }()
	b.Cleanup(func() { cancel(); <-served; agent.Close() })
	id, err := LoadIdentity(b.TempDir())
	must(b, err)
	return agent, &Sender{Identity: id}
}
