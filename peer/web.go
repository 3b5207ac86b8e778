package peer

import (
	"context"
	"crypto/subtle"
	"embed"
	"encoding/json"
	"fmt"
	"html/template"
	"net/http"
	"net/netip"
	"strconv"
	"sync"
	"time"
)

// The drop page: a small HTML, CSS and JavaScript page (webui/, embedded)
// on the agent's LocalSend server, from which any browser uploads into the
// inbox. It adds a gate in front of the LocalSend adapter and nothing
// else: the page speaks LocalSend's own prepare-upload, upload and cancel
// (under /web/api/), and those requests are handled by the adapter's
// handlers, so a browser's files get exactly what a LocalSend device
// without a certificate gets: the --accept policy (refused under
// AcceptTrusted, the owner asked under AcceptAsk, the stranger budget
// under AcceptEveryone), MaxSize, the memory budget, one session per
// address, idle ends, deadlines, and every inbox guarantee. A browser
// computes no SHA-256 of big files (too slow in JavaScript); their bytes
// are verified by size, and on the wire by TLS's integrity. The page
// sends a digest for small files (webui/app.js), which the inbox checks.
//
// The gate: a PIN (Config.WebPIN) buys a session token, kept in a cookie
// that is HttpOnly (the page's script never sees it), Secure (HTTPS only)
// and SameSite=Strict (a page on another site cannot make the browser send
// it); every state-changing request must come from the page's own origin
// (Sec-Fetch-Site or Origin, http.CrossOriginProtection), and no answer
// carries CORS headers, so another site can neither upload nor read.
// Wrong PINs are counted per address: webPINTries, then a lock that
// doubles with each further wrong PIN.
//
// The same server serves share links (share.go) under /s/ID/: their id is
// the key, and a share may have a PIN of its own, with its own tries
// (pinKey) and its own session cookie (scoped to the share's path).

// ViaWeb is Transfer.Via for what came from the drop page.
const ViaWeb = "web"

// Limits of the drop page's gate.
const (
	// webPINTries is how many wrong PINs an address may give before it
	// is locked out for webLockBase, doubled at every further wrong PIN,
	// up to webLockMax.
	webPINTries = 5
	webLockBase = time.Minute
	webLockMax  = time.Hour
	// webMaxPINAddrs bounds the addresses whose wrong PINs are counted;
	// when it is full, a new address may not try (fail closed) until
	// entries older than webForgetFails are dropped.
	webMaxPINAddrs = 4096
	webForgetFails = 24 * time.Hour
	// webMaxTokens bounds the session tokens kept; the one that expires
	// first makes room. webTokenLife is how long a token is good for.
	webMaxTokens = 1024
	webTokenLife = 12 * time.Hour
	// webMaxLogin caps a login body.
	webMaxLogin = 1 << 10
)

//go:embed webui
var webUI embed.FS

var webPage = template.Must(template.ParseFS(webUI, "webui/index.html"))

// webKey marks a request that passed the drop page's gate (its context
// value), for prepareUpload.
type webKey struct{}

// webGate is the drop page's state: its PIN, the wrong PINs per address,
// and the session tokens it gave.
type webGate struct {
	s      *lsServer
	pin    string
	cookie string

	mu     sync.Mutex
	fails  map[pinKey]*webFails
	tokens map[string]webToken

	shares      shareTable // share.go
	shareCookie string
}

// pinKey is what wrong PINs are counted by: the address (an IPv6 one by
// its /64, see limitKey: locked, fail and grant apply it), and the gate it
// knocked at ("" for the drop page, a share's id for its PIN), so that
// each PIN has its own tries, and finding one does not reset another's.
type pinKey struct {
	share string
	addr  netip.Addr
}

// webToken is a session token's expiry and what it opens: the drop page
// (share "") or one share.
type webToken struct {
	exp   time.Time
	share string
}

type webFails struct {
	n     int
	until time.Time // locked until
	last  time.Time
}

// mountWeb adds the drop page's routes, and the share links', to mux, and
// to webOnly when it is not nil (the plain-HTTP server's: web_http.go),
// when Config.Web asks for them.
func (s *lsServer) mountWeb(mux, webOnly *http.ServeMux) {
	if !s.a.cfg.Web {
		return
	}
	g := &webGate{s: s, pin: s.a.cfg.WebPIN, cookie: "lanshare_web_" + strconv.Itoa(s.port), shareCookie: "lanshare_share_" + strconv.Itoa(s.port),
		fails: map[pinKey]*webFails{}, tokens: map[string]webToken{}, shares: shareTable{shares: map[string]*ShareLink{}}}
	s.web = g
	same := http.NewCrossOriginProtection()
	post := func(h http.HandlerFunc) http.Handler { return webHeaders(same.Handler(h)) }
	routes := []struct {
		pattern string
		h       http.Handler
	}{
		{"GET /{$}", webHeaders(http.HandlerFunc(g.index))},
		{"GET /web/app.js", webHeaders(webAsset("webui/app.js", "text/javascript; charset=utf-8"))},
		{"GET /web/style.css", webHeaders(webAsset("webui/style.css", "text/css; charset=utf-8"))},
		{"GET /s/{id}/{$}", webHeaders(http.HandlerFunc(g.shareList))},
		{"GET /s/{id}/{n}", webHeaders(http.HandlerFunc(g.shareGet))},
		{"POST /s/{id}/login", post(g.shareLogin)},
		{"POST /web/api/login", post(g.login)},
		{"POST /web/api/offer", post(g.authed(s.prepareUpload))},
		{"POST /web/api/upload", post(g.authed(s.upload))},
		{"POST /web/api/cancel", post(g.authed(func(w http.ResponseWriter, r *http.Request) {
			if r.URL.Query().Get("sessionId") == "" {
				// Not "every session of this address": a LocalSend app on
				// the same machine may have one.
				writeError(w, http.StatusBadRequest, "missing parameters")
				return
			}
			s.cancel(w, r)
		}))},
	}
	for _, rt := range routes {
		mux.Handle(rt.pattern, rt.h)
		if webOnly != nil {
			webOnly.Handle(rt.pattern, rt.h)
		}
	}
}

// webHeaders sets the headers every drop page answer carries: scripts,
// styles and requests only from the page's own origin, no framing, no
// sniffing, no referrer, and nothing cached.
func webHeaders(h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		hd := w.Header()
		hd.Set("Content-Security-Policy", "default-src 'self'; img-src 'self' data:; base-uri 'none'; form-action 'self'; frame-ancestors 'none'")
		hd.Set("X-Content-Type-Options", "nosniff")
		hd.Set("X-Frame-Options", "DENY")
		hd.Set("Referrer-Policy", "no-referrer")
		hd.Set("Cache-Control", "no-store")
		h.ServeHTTP(w, r)
	})
}

// webAsset serves one embedded file.
func webAsset(name, contentType string) http.Handler {
	data, err := webUI.ReadFile(name)
	if err != nil {
		panic(err) // the embed lists it: a build without it is broken
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", contentType)
		_, _ = w.Write(data)
	})
}

// index serves the page, with the agent's name, its certificate's short
// fingerprint, and whether a PIN is still needed.
func (g *webGate) index(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	_ = webPage.Execute(w, struct {
		Name, Fingerprint string
		NeedPIN, Insecure bool
	}{g.s.a.cfg.Name, LocalSendShortFingerprint(g.s.ident.Fingerprint), !g.valid(r), r.TLS == nil})
}

// authed lets h run only for a request with a valid session token (or
// any, without a PIN), marked as the drop page's.
func (g *webGate) authed(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if !g.valid(r) {
			writeError(w, http.StatusUnauthorized, "enter the PIN first")
			return
		}
		h(w, r.WithContext(context.WithValue(r.Context(), webKey{}, true)))
	}
}

// valid reports whether r may upload: no PIN is set, or its cookie holds
// a token that has not expired.
func (g *webGate) valid(r *http.Request) bool {
	if g.pin == "" {
		return true
	}
	return g.hasToken(r, g.cookie, "")
}

// hasToken reports whether r's cookie name holds a token that opens
// share ("" for the drop page) and has not expired.
func (g *webGate) hasToken(r *http.Request, name, share string) bool {
	c, err := r.Cookie(name)
	if err != nil || c.Value == "" {
		return false
	}
	g.mu.Lock()
	defer g.mu.Unlock()
	tok, ok := g.tokens[c.Value]
	if ok && time.Now().After(tok.exp) {
		delete(g.tokens, c.Value)
		ok = false
	}
	return ok && tok.share == share
}

// login checks a PIN ({"pin":"..."}) and answers 204 with the session
// cookie, 401 for a wrong one, or 429 with Retry-After while the address
// is locked out.
func (g *webGate) login(w http.ResponseWriter, r *http.Request) {
	if g.pin == "" {
		w.WriteHeader(http.StatusNoContent)
		return
	}
	key := pinKey{addr: remoteAddr(r)}
	if wait := g.locked(key, time.Now()); wait > 0 {
		setRetryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, lockedMessage(wait))
		return
	}
	var body struct {
		PIN string `json:"pin"`
	}
	if err := json.NewDecoder(http.MaxBytesReader(w, r.Body, webMaxLogin)).Decode(&body); err != nil {
		writeError(w, http.StatusBadRequest, "bad login body")
		return
	}
	now := time.Now()
	wait, left := g.try(key, now)
	if wait > 0 {
		// Locked while its body came in, by tries sent at once.
		setRetryAfter(w, wait)
		writeError(w, http.StatusTooManyRequests, lockedMessage(wait))
		return
	}
	if subtle.ConstantTimeCompare([]byte(body.PIN), []byte(g.pin)) != 1 {
		writeError(w, http.StatusUnauthorized, wrongPINMessage(left))
		return
	}
	token := g.grant(key, "", now.Add(webTokenLife), now)
	http.SetCookie(w, &http.Cookie{Name: g.cookie, Value: token, Path: "/", MaxAge: int(webTokenLife.Seconds()),
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	w.WriteHeader(http.StatusNoContent)
}

// grant forgets key's wrong PINs and returns a new session token that
// opens share ("" for the drop page) until exp.
func (g *webGate) grant(key pinKey, share string, exp, now time.Time) string {
	key.addr = limitKey(key.addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	delete(g.fails, key)
	token := randomToken()
	g.addToken(token, webToken{exp: exp, share: share}, now)
	return token
}

// setRetryAfter tells a locked-out address, in whole seconds, when it
// may try again.
func setRetryAfter(w http.ResponseWriter, wait time.Duration) {
	w.Header().Set("Retry-After", strconv.Itoa(int(wait.Seconds()+0.999)))
}

// lockedMessage tells a locked-out address how long to wait.
func lockedMessage(wait time.Duration) string {
	return "too many wrong PINs; try again in " + wait.Round(time.Second).String()
}

// wrongPINMessage tells of a wrong PIN, with the tries left before a
// pause.
func wrongPINMessage(left int) string {
	switch {
	case left == 1:
		return "wrong PIN (1 more try before a pause)"
	case left > 0:
		return fmt.Sprintf("wrong PIN (%d more tries before a pause)", left)
	}
	return "wrong PIN"
}

// locked returns how long key's address must still wait before it may
// give that gate a PIN (0: it may now).
func (g *webGate) locked(key pinKey, now time.Time) time.Duration {
	key.addr = limitKey(key.addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.fails[key]
	if f == nil {
		if len(g.fails) >= webMaxPINAddrs && !g.forgetLocked(now) {
			return webLockMax
		}
		return 0
	}
	return max(f.until.Sub(now), 0)
}

// forgetLocked drops the wrong PINs of addresses quiet for
// webForgetFails, and reports whether that made room.
func (g *webGate) forgetLocked(now time.Time) bool {
	for a, f := range g.fails {
		if now.Sub(f.last) > webForgetFails {
			delete(g.fails, a)
		}
	}
	return len(g.fails) < webMaxPINAddrs
}

// try counts a PIN try from key's address at key's gate before the PIN
// is checked, so that tries checked at once cannot outrun the lock (each
// counted after its check let every one of them pass locked first). It
// returns how long the address must still wait (then nothing is counted,
// and the PIN must not be checked); or 0, and the tries left before a
// pause should this PIN be wrong: the webPINTries-th try locks the
// address out, for webLockBase doubled at every further one. A right PIN
// forgets the count (grant).
func (g *webGate) try(key pinKey, now time.Time) (wait time.Duration, left int) {
	key.addr = limitKey(key.addr)
	g.mu.Lock()
	defer g.mu.Unlock()
	f := g.fails[key]
	if f == nil {
		if len(g.fails) >= webMaxPINAddrs && !g.forgetLocked(now) {
			return webLockMax, 0
		}
		f = &webFails{}
		g.fails[key] = f
	}
	if wait := f.until.Sub(now); wait > 0 {
		return wait, 0
	}
	f.n++
	f.last = now
	if f.n >= webPINTries {
		f.until = now.Add(min(webLockBase<<min(f.n-webPINTries, 10), webLockMax))
		return 0, 0
	}
	return 0, webPINTries - f.n
}

// addToken keeps token, making room by dropping expired tokens, then the
// one that expires first. g.mu is held.
func (g *webGate) addToken(token string, tok webToken, now time.Time) {
	if len(g.tokens) >= webMaxTokens {
		var first string
		for t, old := range g.tokens {
			if now.After(old.exp) {
				delete(g.tokens, t)
			} else if first == "" || old.exp.Before(g.tokens[first].exp) {
				first = t
			}
		}
		if len(g.tokens) >= webMaxTokens {
			delete(g.tokens, first)
		}
	}
	g.tokens[token] = tok
}
