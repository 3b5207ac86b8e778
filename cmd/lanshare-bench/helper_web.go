//go:build linux

package main

// Scenario 11's helper roles:
//
//	serve-file -listen ADDR -src FILE -cert PEM -key PEM
//	get        -to URL -size N
//
// serve-file is the bare HTTPS file server a Go programmer would write:
// net/http over TLS 1.3, http.ServeContent of one file at /file, with
// the agent's kind of certificate (RSA 2048, self-signed), speaking
// HTTP/1.1 as the agent's server does. It prints "listening on ADDR"
// and serves until SIGTERM. get is the Go client: one GET of URL,
// the body read and thrown away (the figure is the server's and the
// connection's, not a disk's), and a JSON line (getResult) printed.

import (
	"crypto/rand"
	"crypto/rsa"
	"crypto/tls"
	"crypto/x509"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/signal"
	"path/filepath"
	"syscall"
	"time"
)

// getResult is the line get prints: the bytes of the body, and the time
// from sending the request to the body's end.
type getResult struct {
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
}

// serveFile serves src at /file over TLS 1.3 on listen until SIGTERM.
func serveFile(listen, src, certFile, keyFile string) error {
	cert, err := tls.LoadX509KeyPair(certFile, keyFile)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", listen)
	if err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /file", func(w http.ResponseWriter, r *http.Request) {
		f, err := os.Open(src)
		if err != nil {
			http.Error(w, err.Error(), http.StatusNotFound)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		http.ServeContent(w, r, filepath.Base(src), st.ModTime(), f)
	})
	mux.HandleFunc("GET /{$}", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/html; charset=utf-8")
		fmt.Fprint(w, "<!doctype html><title>bare</title><a href=\"/file\">file</a>")
	})
	srv := &http.Server{
		Handler:           mux,
		ReadHeaderTimeout: 10 * time.Second,
		// HTTP/1.1, as the agent's server speaks.
		TLSNextProto: map[string]func(*http.Server, *tls.Conn, http.Handler){},
		TLSConfig:    &tls.Config{MinVersion: tls.VersionTLS13, Certificates: []tls.Certificate{cert}},
	}
	term := make(chan os.Signal, 1)
	signal.Notify(term, syscall.SIGTERM)
	go func() {
		<-term
		srv.Close()
	}()
	fmt.Printf("listening on %s\n", ln.Addr())
	if err := srv.ServeTLS(ln, "", ""); !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

// get fetches url once, checks it got size bytes, and prints a
// getResult.
func get(url string, size int64) error {
	hc := &http.Client{Transport: &http.Transport{
		// A baseline measures the copy: the server's key is not checked.
		TLSClientConfig: &tls.Config{InsecureSkipVerify: true},
	}}
	start := time.Now()
	resp, err := hc.Get(url)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("GET %s: %s", url, resp.Status)
	}
	n, err := io.Copy(io.Discard, resp.Body)
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("GET %s: after %d bytes: %w", url, n, err)
	}
	if n != size {
		return fmt.Errorf("GET %s: %d bytes, want %d", url, n, size)
	}
	line, err := json.Marshal(getResult{Bytes: n, Seconds: took.Seconds()})
	if err != nil {
		return err
	}
	fmt.Println(string(line))
	return nil
}

// writeRSACert writes a self-signed RSA 2048 certificate and its key, as
// PEM, to certFile and keyFile: the kind the agent's LocalSend identity
// has.
func writeRSACert(certFile, keyFile string) error {
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		return err
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(1),
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(24 * time.Hour),
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		return fmt.Errorf("making a certificate: %w", err)
	}
	if err := os.WriteFile(certFile, pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der}), 0o644); err != nil {
		return err
	}
	return os.WriteFile(keyFile, pem.EncodeToMemory(&pem.Block{Type: "RSA PRIVATE KEY", Bytes: x509.MarshalPKCS1PrivateKey(key)}), 0o600)
}
