package main

import (
	"crypto/rand"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strings"
	"time"

	"github.com/skip2/go-qrcode"
	"github.com/urfave/cli/v2"

	"github.com/lanshare/lanshare/peer"
)

// webPINDigits is the length of the drop page's random PIN: with five
// tries an address before a lock that doubles (see peer's web.go), a
// guess from one address succeeds once in 200,000.
const webPINDigits = 6

// webSettings turns --web and --web-pin into Config.Web and WebPIN. The
// page lives on the LocalSend server, so --localsend=false turns it off
// too; under --accept trusted it is off (a browser cannot prove a trusted
// key, so the page could take nothing), and asking for it there is a
// usage error. Without --web-pin it gets a random PIN.
func webSettings(c *cli.Context, cfg peer.Config) (bool, string, error) {
	if !c.Bool("web") || !cfg.LocalSend {
		return false, "", nil
	}
	if cfg.Accept == peer.AcceptTrusted {
		if c.IsSet("web") || c.IsSet("web-pin") {
			return false, "", usageError{msg: "--web, --web-pin: the drop page needs --accept everyone or ask (a browser cannot be a trusted peer)"}
		}
		return false, "", nil
	}
	if !c.IsSet("web-pin") {
		return true, randomPIN(webPINDigits), nil
	}
	if pin := c.String("web-pin"); pin != "" && (len(pin) < 4 || len(pin) > 64) {
		return false, "", usageError{msg: "--web-pin: want 4 to 64 characters"}
	}
	return true, c.String("web-pin"), nil
}

// webInsecureHTTP turns --web-insecure-http PORT into
// Config.WebInsecureHTTP: the drop page's host (serve's --listen) and
// PORT, or "" when the flag is not given. It needs the drop page.
func webInsecureHTTP(c *cli.Context, cfg peer.Config) (string, error) {
	if !c.IsSet("web-insecure-http") {
		return "", nil
	}
	if !cfg.Web {
		return "", usageError{msg: "--web-insecure-http: there is no drop page to serve (it needs --web, --localsend and --accept everyone or ask)"}
	}
	p := c.Int("web-insecure-http")
	if p < 0 || p > 65535 {
		return "", usageError{msg: fmt.Sprintf("--web-insecure-http %d: want a port from 0 to 65535", p)}
	}
	return localSendListen(cfg.Listen, p), nil
}

// logInsecureHTTP warns that the drop page and share links are served
// over plain HTTP at addr too, and gives that address.
func logInsecureHTTP(lg agentLog, addr net.Addr) {
	url := "http" + strings.TrimPrefix(dropPageURL(addr), "https")
	msg := "the drop page and share links are also served over plain HTTP at " + url +
		" (--web-insecure-http): the PIN, the session cookies and the files cross the network unencrypted; anyone on it can read or change them"
	lg.event(time.Now(), prioWarning, serveEvent{Event: "warning", Addr: url, Reason: msg}, "warning: %s", msg)
}

// randomPIN returns n random decimal digits.
func randomPIN(n int) string {
	b := make([]byte, 0, n)
	var r [1]byte
	for len(b) < n {
		_, _ = rand.Read(r[:]) // it never fails (Go 1.24 and later)
		if r[0] < 250 {        // 250 = 25 × 10: every digit as likely
			b = append(b, '0'+r[0]%10)
		}
	}
	return string(b)
}

// logDropPage logs the drop page's address and PIN, after the LocalSend
// line: "drop page https://192.168.1.20:53317/  PIN 482193"; and with qr
// (a terminal), the address as a QR code for a phone's camera.
func logDropPage(lg agentLog, cfg peer.Config, addr net.Addr, qr io.Writer) {
	url := dropPageURL(addr)
	pin := "PIN " + cfg.WebPIN
	if cfg.WebPIN == "" {
		pin = "no PIN: anyone on the network can send"
	}
	lg.event(time.Now(), prioInfo, serveEvent{Event: "web", Addr: url, PIN: cfg.WebPIN}, "drop page %s  %s", url, pin)
	if qr != nil {
		if q, err := qrcode.New(url, qrcode.Low); err == nil {
			// Light modules drawn, dark ones left blank: right on a
			// dark terminal, and cameras read the inverse too.
			fmt.Fprint(qr, q.ToSmallString(false))
		}
	}
}

// dropPageURL is the drop page's address for a person to type: the
// server's own address, or when it listens on every address, the first
// address of an interface that is up, not loopback (IPv4 first).
func dropPageURL(addr net.Addr) string {
	return httpsURL(addr.String()) + "/"
}

// httpsURL is https://HOST:PORT for a server listening on addr: an
// unspecified host ([::], 0.0.0.0) is given as this machine's LAN
// address, which a device can use.
func httpsURL(addr string) string {
	ap, err := netip.ParseAddrPort(addr)
	if err != nil {
		return "https://" + addr
	}
	ip := ap.Addr().Unmap()
	if ip.IsUnspecified() {
		ip = lanAddr()
	}
	return "https://" + netip.AddrPortFrom(ip, ap.Port()).String()
}

// lanAddr is the first global unicast address of an up, non-loopback
// interface, IPv4 before IPv6, or loopback when there is none.
func lanAddr() netip.Addr {
	var v6 netip.Addr
	ifs, _ := net.Interfaces()
	for _, ifc := range ifs {
		if ifc.Flags&net.FlagUp == 0 || ifc.Flags&net.FlagLoopback != 0 {
			continue
		}
		addrs, _ := ifc.Addrs()
		for _, a := range addrs {
			pfx, err := netip.ParsePrefix(a.String())
			if err != nil || !pfx.Addr().IsGlobalUnicast() {
				continue
			}
			if ip := pfx.Addr().Unmap(); ip.Is4() {
				return ip
			} else if !v6.IsValid() {
				v6 = ip
			}
		}
	}
	if v6.IsValid() {
		return v6
	}
	return netip.MustParseAddr("127.0.0.1")
}
