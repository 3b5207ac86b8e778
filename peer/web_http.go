package peer

import (
	"errors"
	"fmt"
	"net"
	"net/http"
)

// The drop page and share links over plain HTTP, for devices that cannot
// take the agent's self-signed certificate (some TVs, car head units,
// locked-down browsers), only with Config.WebInsecureHTTP: a second
// server on its own port that has the drop page's and the share links'
// routes and nothing of LocalSend's API. Its connections take the
// agent's slots as the HTTPS server's do; its cookies are not Secure (a
// browser would drop them over HTTP), and its pages say that nothing
// they carry is private. The cookies of the HTTPS server are Secure, so a
// browser never sends them over plain HTTP.

// listenPlain listens on Config.WebInsecureHTTP for the plain-HTTP
// server of h.
func (s *lsServer) listenPlain(h http.Handler) error {
	ln, err := net.Listen("tcp", s.a.cfg.WebInsecureHTTP)
	if err != nil {
		return fmt.Errorf("%w on %s: %w", ErrPlainHTTPListen, s.a.cfg.WebInsecureHTTP, err)
	}
	s.plainLn = ln
	s.plain = s.httpServer(h)
	return nil
}

// servePlain serves the plain-HTTP server until close. It blocks.
func (s *lsServer) servePlain() {
	err := s.plain.Serve(&admitListener{Listener: s.plainLn, a: s.a})
	if err != nil && !errors.Is(err, http.ErrServerClosed) && s.a.cfg.Logf != nil {
		s.a.cfg.Logf("the drop page's plain-HTTP server stopped: %v", err)
	}
}

// WebInsecureHTTPAddr is the address of the drop page's plain-HTTP
// server (Config.WebInsecureHTTP), or nil when it has none.
func (a *Agent) WebInsecureHTTPAddr() net.Addr {
	if a.ls == nil || a.ls.plainLn == nil {
		return nil
	}
	return a.ls.plainLn.Addr()
}
