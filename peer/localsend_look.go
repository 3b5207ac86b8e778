package peer

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"time"

	"github.com/lanshare/lanshare/discovery"
	"github.com/lanshare/lanshare/proto/localsend"
)

// LookLocalSend looks for LocalSend devices for a command that runs
// without an agent: it announces us (under name, with the LocalSend
// identity kept in configDir, so apps see the same device as the agent's)
// and collects, for wait, the devices that answer by multicast (apps up
// to 1.17), those that announce themselves, and those that answer with
// POST /register (app 1.18), which a temporary HTTPS server on a free port
// takes for the look's length.
func LookLocalSend(ctx context.Context, configDir, name string, ifaces []string, wait time.Duration) ([]discovery.LocalSendDevice, error) {
	ident, err := LoadLocalSendIdentity(configDir)
	if err != nil {
		return nil, err
	}
	ln, err := net.Listen("tcp", ":0")
	if err != nil {
		return nil, fmt.Errorf("LocalSend look: %w", err)
	}
	port := ln.Addr().(*net.TCPAddr).Port
	lc := discovery.DefaultLocalSendConfig()
	lc.Announcement.Alias = name
	lc.Announcement.DeviceModel = LocalSendModel
	lc.Announcement.Fingerprint = ident.Fingerprint
	lc.Announcement.Port = uint16(port)
	lc.Ifaces = ifaces
	l, err := discovery.NewLocalSend(lc)
	if err != nil {
		ln.Close()
		return nil, fmt.Errorf("LocalSend look: %w", err)
	}
	defer l.Close()
	model := LocalSendModel
	self := localsend.Info{Alias: name, Version: localsend.Version, DeviceModel: &model, DeviceType: localsend.DeviceHeadless,
		Fingerprint: ident.Fingerprint}
	mux := http.NewServeMux()
	mux.HandleFunc("POST "+localsend.PathRegister, func(w http.ResponseWriter, r *http.Request) {
		info, err := localsend.DecodeInfo(http.MaxBytesReader(w, r.Body, lsMaxSmallBody))
		if err != nil {
			writeError(w, http.StatusBadRequest, "bad register body")
			return
		}
		if id := clientID(r); id == "" || id == LocalSendID(info.Fingerprint) {
			_ = l.Add(deviceOf(info, remoteAddr(r)))
		}
		writeJSON(w, self)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 2 * time.Second, MaxHeaderBytes: 16 << 10, ErrorLog: log.New(io.Discard, "", 0),
		TLSConfig: &tls.Config{Certificates: []tls.Certificate{ident.Cert}, ClientAuth: tls.RequestClientCert, MinVersion: tls.VersionTLS12}}
	done := make(chan struct{})
	go func() {
		defer close(done)
		_ = srv.Serve(tls.NewListener(ln, srv.TLSConfig))
	}()
	devs, err := l.Look(ctx, wait)
	srv.Close()
	<-done
	if err != nil && !errors.Is(err, context.DeadlineExceeded) {
		return devs, err
	}
	return devs, nil
}
