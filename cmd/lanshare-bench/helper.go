//go:build linux

package main

// The baselines' two ends: this program started again (in a lab host or
// in the benchmark's namespace) in a helper role, chosen by envHelper.
//
//	receive -mode tcp|tls|tar|tar-socat -listen ADDR -out PATH
//	send    -mode tcp|tls|tar|tar-socat -to ADDR -src PATH
//	dial    -to ADDR
//	strangers -to ADDR -entries N -payload BYTES
//	serve-file, get (scenario 11: helper_web.go)
//
// The receiver prints "listening on ADDR" first, takes one connection,
// writes what it receives (a file for tcp and tls, a tree under -out for
// tar, through socat -b 262144 for tar-socat), makes it durable (a file:
// fsync of it and its folder; a tree: one syncfs), sends one byte of
// acknowledgment, and prints a JSON line (receiveResult) last. The sender
// sends -src, closes its side and waits for that byte. dial dials and
// writes one byte (scenario 6's baseline). strangers is scenario 7's
// attacker (see runStrangers).

import (
	"crypto/ed25519"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"io"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"time"
)

// envHelper selects a helper role when set.
const envHelper = "LANSHARE_BENCH_HELPER"

// receiveResult is the line a receive helper prints last: the time from
// accepting the connection to the end of the stream (the network's part,
// the disk writing into the page cache meanwhile), and the time its syncs
// took after that.
type receiveResult struct {
	ReceiveSeconds float64 `json:"receive_seconds"`
	SyncSeconds    float64 `json:"sync_seconds"`
}

func runHelper(role string, args []string) int {
	fs := flag.NewFlagSet(role, flag.ContinueOnError)
	mode := fs.String("mode", "", "tcp, tls or tar")
	listen := fs.String("listen", "127.0.0.1:0", "address to listen on")
	out := fs.String("out", "", "file (tcp, tls) or folder (tar) to write")
	to := fs.String("to", "", "address to send to")
	src := fs.String("src", "", "file (tcp, tls) or folder (tar) to send")
	entries := fs.Int("entries", 0, "strangers: entries per offer")
	payload := fs.Int("payload", 0, "strangers: bytes of each offer's frame payload")
	cert := fs.String("cert", "", "serve-file: certificate (PEM)")
	key := fs.String("key", "", "serve-file: key (PEM)")
	size := fs.Int64("size", 0, "get: the body's size")
	if err := fs.Parse(args); err != nil {
		return 2
	}
	var err error
	switch role {
	case "receive":
		err = receive(*mode, *listen, *out)
	case "send":
		err = send(*mode, *to, *src)
	case "dial":
		err = dialOnce(*to)
	case "strangers":
		err = runStrangers(*to, *entries, *payload)
	case "serve-file":
		err = serveFile(*listen, *src, *cert, *key)
	case "get":
		err = get(*to, *size)
	default:
		err = fmt.Errorf("unknown helper role %q", role)
	}
	if err != nil {
		fmt.Fprintf(os.Stderr, "lanshare-bench %s: %v\n", role, err)
		return 1
	}
	return 0
}

func receive(mode, listen, out string) error {
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	fmt.Printf("listening on %s\n", ln.Addr())
	c, err := ln.Accept()
	ln.Close()
	if err != nil {
		return fmt.Errorf("accepting: %w", err)
	}
	defer c.Close()
	start := time.Now()
	conn := c.(*net.TCPConn)
	var (
		ack  io.Writer = conn
		sync func() error
	)
	switch mode {
	case "tcp":
		// *os.File.ReadFrom splices from the socket into the file.
		sync, err = receiveFile(conn, out)
	case "tls":
		cfg, cerr := tlsConfig()
		if cerr != nil {
			return cerr
		}
		cfg.ClientAuth = tls.RequireAnyClientCert
		tc := tls.Server(conn, cfg)
		ack = tc
		sync, err = receiveFile(tc, out)
	case "tar", "tar-socat":
		sync, err = receiveTar(conn, out, mode == "tar-socat")
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	if err != nil {
		return err
	}
	received := time.Now()
	if err := sync(); err != nil {
		return err
	}
	res := receiveResult{ReceiveSeconds: received.Sub(start).Seconds(), SyncSeconds: time.Since(received).Seconds()}
	if _, err := ack.Write([]byte{1}); err != nil {
		return fmt.Errorf("acknowledging: %w", err)
	}
	line, err := json.Marshal(res)
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// receiveFile copies r into a new file at path, and returns the function
// that syncs it and its folder.
func receiveFile(r io.Reader, path string) (sync func() error, err error) {
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o644)
	if err != nil {
		return nil, err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return nil, fmt.Errorf("receiving %s: %w", path, err)
	}
	return func() error {
		err := f.Sync()
		if cerr := f.Close(); err == nil {
			err = cerr
		}
		if err != nil {
			return fmt.Errorf("syncing %s: %w", path, err)
		}
		return syncPath(filepath.Dir(path))
	}, nil
}

// receiveTar unpacks the stream on conn into dir with GNU tar, reading
// the socket itself or, with socat, through socat -b 262144 (see
// socatBuffer), and returns the function that makes what it wrote
// durable: one syncfs of dir's file system, the cheapest way a simple
// pipe has (tar x; sync -f dir), where syncing each file costs a disk
// flush per file.
func receiveTar(conn *net.TCPConn, dir string, socat bool) (sync func() error, err error) {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, err
	}
	sock, err := conn.File()
	if err != nil {
		return nil, err
	}
	defer sock.Close()
	// -B: a socket or pipe returns short reads, which tar must put
	// together.
	tar := exec.Command("tar", "-x", "-B", "-f", "-", "-C", dir)
	tar.Stderr = os.Stderr
	if !socat {
		tar.Stdin = sock
		if err := tar.Run(); err != nil {
			return nil, fmt.Errorf("tar -x: %w", err)
		}
	} else {
		relay := exec.Command("socat", "-b", socatBuffer, "-u", "FD:3", "STDOUT")
		relay.ExtraFiles, relay.Stderr = []*os.File{sock}, os.Stderr
		if err := pipeline(relay, tar); err != nil {
			return nil, fmt.Errorf("socat | tar -x: %w", err)
		}
	}
	return func() error { return syncFS(dir) }, nil
}

// socatBuffer is the buffer socat relays with in the tar baseline: 256
// KiB, against its default 8 KiB, as tuned by whoever pipes tar through
// it for speed.
const socatBuffer = "262144"

// pipeline runs a | b, and waits for both.
func pipeline(a, b *exec.Cmd) error {
	r, w, err := os.Pipe()
	if err != nil {
		return err
	}
	a.Stdout, b.Stdin = w, r
	if err := a.Start(); err != nil {
		r.Close()
		w.Close()
		return err
	}
	err = b.Start()
	r.Close()
	w.Close()
	aerr := a.Wait()
	if err != nil {
		return err
	}
	return errors.Join(aerr, b.Wait())
}

func syncPath(path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	err = f.Sync()
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("syncing %s: %w", path, err)
	}
	return nil
}

func send(mode, to, src string) error {
	c, err := net.Dial("tcp", to)
	if err != nil {
		return err
	}
	defer c.Close()
	conn := c.(*net.TCPConn)
	switch mode {
	case "tcp":
		err = sendFile(conn, src)
		if err == nil {
			err = conn.CloseWrite()
		}
		if err == nil {
			err = awaitAck(conn)
		}
	case "tls":
		cfg, cerr := tlsConfig()
		if cerr != nil {
			return cerr
		}
		// A baseline measures the copy: the receiver's key is not checked.
		cfg.InsecureSkipVerify = true
		tc := tls.Client(conn, cfg)
		err = sendFile(tc, src)
		if err == nil {
			err = tc.CloseWrite()
		}
		if err == nil {
			err = awaitAck(tc)
		}
	case "tar", "tar-socat":
		err = sendTar(conn, src, mode == "tar-socat")
		if err == nil {
			err = conn.CloseWrite()
		}
		if err == nil {
			err = awaitAck(conn)
		}
	default:
		err = fmt.Errorf("unknown mode %q", mode)
	}
	return err
}

// sendFile copies the file at path into w: with sendfile when w is a
// *net.TCPConn.
func sendFile(w io.Writer, path string) error {
	f, err := os.Open(path)
	if err != nil {
		return err
	}
	defer f.Close()
	if _, err := io.Copy(w, f); err != nil {
		return fmt.Errorf("sending %s: %w", path, err)
	}
	return nil
}

// sendTar writes a tar stream of dir (named by its base name) to conn,
// with GNU tar writing to the socket itself or, with socat, through socat
// -b 262144.
func sendTar(conn *net.TCPConn, dir string, socat bool) error {
	sock, err := conn.File()
	if err != nil {
		return err
	}
	defer sock.Close()
	tar := exec.Command("tar", "-c", "-f", "-", "-C", filepath.Dir(dir), filepath.Base(dir))
	tar.Stderr = os.Stderr
	if !socat {
		tar.Stdout = sock
		if err := tar.Run(); err != nil {
			return fmt.Errorf("tar -c: %w", err)
		}
		return nil
	}
	relay := exec.Command("socat", "-b", socatBuffer, "-u", "STDIN", "FD:3")
	relay.ExtraFiles, relay.Stderr = []*os.File{sock}, os.Stderr
	if err := pipeline(tar, relay); err != nil {
		return fmt.Errorf("tar -c | socat: %w", err)
	}
	return nil
}

// awaitAck waits for the receiver's byte, sent once it has synced
// everything.
func awaitAck(r io.Reader) error {
	var b [1]byte
	if _, err := io.ReadFull(r, b[:]); err != nil {
		return fmt.Errorf("waiting for the receiver's acknowledgment: %w", err)
	}
	return nil
}

func dialOnce(to string) error {
	c, err := net.Dial("tcp", to)
	if err != nil {
		return err
	}
	defer c.Close()
	_, err = c.Write([]byte{1})
	return err
}

// tlsConfig returns a TLS 1.3 configuration with a fresh self-signed
// Ed25519 certificate, as lanshare's agents have.
func tlsConfig() (*tls.Config, error) {
	pub, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, pub, priv)
	if err != nil {
		return nil, fmt.Errorf("making a certificate: %w", err)
	}
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: priv}},
	}, nil
}
