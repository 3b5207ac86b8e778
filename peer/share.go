package peer

import (
	"archive/zip"
	"crypto/subtle"
	"errors"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"sync"
	"time"
)

// Share links: files and folders the owner publishes on the drop page's
// server until a time, for any browser that has the link to download.
// The link's id (128 random bits) is the only key; what is reachable is
// exactly the paths shared: a file by its index, a folder as one zip
// streamed on the fly (archive/zip, no copy on disk) whose files are read
// through an os.Root, so that a symbolic link inside cannot lead out of
// it. Files support HTTP ranges (http.ServeContent), so a browser can
// resume; a zip does not. A share may also have a PIN: then its page asks
// for it (a plain form, no script), wrong PINs are counted and locked out
// as the drop page's are (per address and share), and the right one buys
// a session cookie for the share's path alone, good until the share ends.

// ErrNoWeb is returned by Share when the agent serves no drop page.
var ErrNoWeb = errors.New("the agent serves no drop page (--web, --localsend)")

// ShareLink is one published set of paths.
type ShareLink struct {
	ID    string      `json:"id"`
	Path  string      `json:"path"` // the link's path on the drop page's server: "/s/ID/"
	Items []ShareItem `json:"items"`
	Until time.Time   `json:"until"`
	PIN   bool        `json:"pin,omitempty"` // a PIN guards it
	pin   string
}

// ShareItem is one path of a share.
type ShareItem struct {
	Name string `json:"name"` // its base name ("photos"; a folder downloads as "photos.zip")
	Dir  bool   `json:"dir,omitempty"`
	Size int64  `json:"size,omitempty"` // a file's size when shared
	path string // absolute
}

// Download is one download of a share's item, as Config.OnDownload
// reports it.
type Download struct {
	Remote net.Addr
	Share  string // the share's id
	Name   string // what was downloaded: a file's name, or "folder.zip"
	Bytes  int64  // bytes of the body sent
	Err    error  // nil when the body was sent whole
	Start  time.Time
}

// shareTable holds the shares of one drop page.
type shareTable struct {
	mu     sync.Mutex
	shares map[string]*ShareLink
}

// maxShares bounds the shares published at once.
const maxShares = 256

// Share publishes paths (files and folders) until until, and returns the
// link; with a pin (4 to 64 characters; "" for none), whoever opens the
// link must give it first. Paths are made absolute now; a path that is
// neither a regular file nor a folder is refused.
func (a *Agent) Share(paths []string, until time.Time, pin string) (ShareLink, error) {
	if a.ls == nil || a.ls.web == nil {
		return ShareLink{}, ErrNoWeb
	}
	if len(paths) == 0 {
		return ShareLink{}, errors.New("nothing to share")
	}
	if pin != "" && (len(pin) < 4 || len(pin) > 64) {
		return ShareLink{}, errors.New("a share's PIN has 4 to 64 characters")
	}
	l := ShareLink{ID: randomToken(), Until: until, PIN: pin != "", pin: pin}
	l.Path = "/s/" + l.ID + "/"
	for _, p := range paths {
		abs, err := filepath.Abs(p)
		name := filepath.Base(abs) // as the owner named it, not its link's target
		if err == nil {
			// The link's target is what is shared, as the owner saw it:
			// a download opens this path through no link (see
			// openSharedFile), so one put on the way later by whoever may
			// write a folder of it leads nowhere.
			abs, err = resolveShared(abs)
		}
		if err != nil {
			return ShareLink{}, fmt.Errorf("sharing %s: %w", Escape(p), err)
		}
		st, err := os.Stat(abs)
		if err != nil {
			return ShareLink{}, fmt.Errorf("sharing %s: %w", Escape(p), err)
		}
		it := ShareItem{Name: name, Dir: st.IsDir(), path: abs}
		switch {
		case st.Mode().IsRegular():
			it.Size = st.Size()
		case !st.IsDir():
			return ShareLink{}, fmt.Errorf("sharing %s: not a file or a folder", Escape(p))
		}
		l.Items = append(l.Items, it)
	}
	t := &a.ls.web.shares
	t.mu.Lock()
	defer t.mu.Unlock()
	if len(t.shares) >= maxShares {
		t.dropExpired(time.Now())
		if len(t.shares) >= maxShares {
			return ShareLink{}, fmt.Errorf("already %d shares: stop one first", maxShares)
		}
	}
	t.shares[l.ID] = &l
	return l, nil
}

// Unshare ends the share id at once, and reports whether there was one.
// Downloads already running go on.
func (a *Agent) Unshare(id string) bool {
	if a.ls == nil || a.ls.web == nil {
		return false
	}
	t := &a.ls.web.shares
	t.mu.Lock()
	defer t.mu.Unlock()
	_, ok := t.shares[id]
	delete(t.shares, id)
	return ok
}

// Shares lists the shares that have not expired, soonest to end first.
func (a *Agent) Shares() []ShareLink {
	if a.ls == nil || a.ls.web == nil {
		return nil
	}
	t := &a.ls.web.shares
	t.mu.Lock()
	defer t.mu.Unlock()
	t.dropExpired(time.Now())
	var out []ShareLink
	for _, l := range t.shares {
		out = append(out, *l)
	}
	slices.SortFunc(out, func(x, y ShareLink) int { return x.Until.Compare(y.Until) })
	return out
}

// dropExpired forgets the shares past their time. t.mu is held.
func (t *shareTable) dropExpired(now time.Time) {
	for id, l := range t.shares {
		if !now.Before(l.Until) {
			delete(t.shares, id)
		}
	}
}

// get returns the share id if it has not expired.
func (t *shareTable) get(id string) (ShareLink, bool) {
	t.mu.Lock()
	defer t.mu.Unlock()
	l, ok := t.shares[id]
	if !ok || !time.Now().Before(l.Until) {
		delete(t.shares, id)
		return ShareLink{}, false
	}
	return *l, true
}

var sharePage = template.Must(template.ParseFS(webUI, "webui/share.html"))

// shareList serves a share's page: its items with their sizes and links,
// or the form that asks for its PIN.
func (g *webGate) shareList(w http.ResponseWriter, r *http.Request) {
	l, ok := g.shares.get(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if !g.shareOpen(r, l) {
		g.sharePINForm(w, r, l, http.StatusUnauthorized, "")
		return
	}
	var rows []shareRow
	for i, it := range l.Items {
		rw := shareRow{Href: strconv.Itoa(i), Name: it.Name, Size: FormatBytes(uint64(it.Size))}
		if it.Dir {
			rw.Name, rw.Size = it.Name+".zip", "folder, zipped as it downloads"
		}
		rows = append(rows, rw)
	}
	g.renderShare(w, r, http.StatusOK, l, sharePageData{Items: rows})
}

// sharePageData is what share.html shows: the items, or the PIN form
// (NeedPIN) with a message.
type sharePageData struct {
	Name, Fingerprint, Until string
	Items                    []shareRow
	NeedPIN, Insecure        bool
	Message                  string
}

type shareRow struct {
	Href, Name, Size string
}

func (g *webGate) renderShare(w http.ResponseWriter, r *http.Request, code int, l ShareLink, d sharePageData) {
	d.Name, d.Fingerprint, d.Until = g.s.a.cfg.Name, LocalSendShortFingerprint(g.s.ident.Fingerprint), l.Until.Format("15:04 MST")
	d.Insecure = r.TLS == nil
	w.Header().Set("Content-Type", "text/html; charset=utf-8")
	w.WriteHeader(code)
	_ = sharePage.Execute(w, d)
}

// sharePINForm answers with the share's PIN form, and msg under it.
func (g *webGate) sharePINForm(w http.ResponseWriter, r *http.Request, l ShareLink, code int, msg string) {
	g.renderShare(w, r, code, l, sharePageData{NeedPIN: true, Message: msg})
}

// shareOpen reports whether r may see share l: it has no PIN, or r's
// cookie holds a token for it.
func (g *webGate) shareOpen(r *http.Request, l ShareLink) bool {
	return l.pin == "" || g.hasToken(r, g.shareCookie, l.ID)
}

// shareLogin checks the PIN of a share (a form's pin field): the right
// one sets the share's session cookie and sends the browser back to the
// share's page (303); a wrong one shows the form again (401), and a
// locked-out address is told how long to wait (429), as on the drop page.
func (g *webGate) shareLogin(w http.ResponseWriter, r *http.Request) {
	l, ok := g.shares.get(r.PathValue("id"))
	if !ok {
		http.NotFound(w, r)
		return
	}
	if l.pin == "" {
		http.Redirect(w, r, l.Path, http.StatusSeeOther)
		return
	}
	key := pinKey{share: l.ID, addr: remoteAddr(r)}
	now := time.Now()
	if wait := g.locked(key, now); wait > 0 {
		setRetryAfter(w, wait)
		g.sharePINForm(w, r, l, http.StatusTooManyRequests, lockedMessage(wait))
		return
	}
	r.Body = http.MaxBytesReader(w, r.Body, webMaxLogin)
	if err := r.ParseForm(); err != nil {
		g.sharePINForm(w, r, l, http.StatusBadRequest, "bad form")
		return
	}
	wait, left := g.try(key, now)
	if wait > 0 {
		// Locked while its form came in, by tries sent at once.
		setRetryAfter(w, wait)
		g.sharePINForm(w, r, l, http.StatusTooManyRequests, lockedMessage(wait))
		return
	}
	if subtle.ConstantTimeCompare([]byte(r.PostForm.Get("pin")), []byte(l.pin)) != 1 {
		g.sharePINForm(w, r, l, http.StatusUnauthorized, wrongPINMessage(left))
		return
	}
	exp := now.Add(webTokenLife)
	if l.Until.Before(exp) {
		exp = l.Until
	}
	token := g.grant(key, l.ID, exp, now)
	http.SetCookie(w, &http.Cookie{Name: g.shareCookie, Value: token, Path: l.Path, MaxAge: int(exp.Sub(now).Seconds()) + 1,
		HttpOnly: true, Secure: r.TLS != nil, SameSite: http.SameSiteStrictMode})
	http.Redirect(w, r, l.Path, http.StatusSeeOther)
}

// shareGet serves one item of a share: a file with ranges, a folder as a
// zip stream.
func (g *webGate) shareGet(w http.ResponseWriter, r *http.Request) {
	l, ok := g.shares.get(r.PathValue("id"))
	n, err := strconv.Atoi(r.PathValue("n"))
	if !ok || err != nil || n < 0 || n >= len(l.Items) || strconv.Itoa(n) != r.PathValue("n") {
		http.NotFound(w, r)
		return
	}
	if !g.shareOpen(r, l) {
		http.Error(w, "this link needs its PIN: open the link's page first", http.StatusUnauthorized)
		return
	}
	if ac, ok := r.Context().Value(lsConnKey{}).(*agentConn); ok {
		ac.answered.Store(true) // its bytes flow: no eviction for being unanswered
	}
	it := l.Items[n]
	dw := &deadlineWriter{ResponseWriter: w, rc: http.NewResponseController(w), idle: g.s.a.cfg.IdleTimeout}
	if cb := g.s.a.cfg.OnDownload; cb != nil {
		d := Download{Share: l.ID, Name: it.Name, Start: time.Now()}
		if it.Dir {
			d.Name += ".zip"
		}
		if ap, err := netip.ParseAddrPort(r.RemoteAddr); err == nil {
			d.Remote = net.TCPAddrFromAddrPort(ap)
		}
		defer func() {
			d.Bytes, d.Err = dw.n, dw.err
			cb(d)
		}()
	}
	if !it.Dir {
		f, err := openSharedFile(it.path)
		if err != nil {
			dw.err = err
			refuseDownload(w, "file", err)
			return
		}
		defer f.Close()
		st, err := f.Stat()
		if err != nil || !st.Mode().IsRegular() {
			http.Error(w, "the file is gone", http.StatusNotFound)
			return
		}
		w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(it.Name))
		http.ServeContent(dw, r, it.Name, st.ModTime(), f)
		if dw.err == nil && r.Context().Err() != nil {
			dw.err = r.Context().Err()
		}
		return
	}
	root, err := openSharedRoot(it.path)
	if err != nil {
		dw.err = err
		refuseDownload(w, "folder", err)
		return
	}
	defer root.Close()
	w.Header().Set("Content-Type", "application/zip")
	w.Header().Set("Content-Disposition", "attachment; filename*=UTF-8''"+url.PathEscape(it.Name+".zip"))
	if r.Method == http.MethodHead {
		return
	}
	if err := writeZip(dw, root, it.Name); err != nil && dw.err == nil {
		dw.err = err // mid-stream, it can only cut the response
	}
}

// errLinkedSinceShared: a shared path now leads through a symbolic link,
// which it did not when it was shared.
var errLinkedSinceShared = errors.New("a symbolic link was put on its path since it was shared")

// errShareBusy: another program holds a lease on a shared file.
var errShareBusy = errors.New("another program holds the file; try again")

// refuseDownload answers a download whose file or folder (what) cannot be
// opened, and says why.
func refuseDownload(w http.ResponseWriter, what string, err error) {
	switch {
	case errors.Is(err, errLinkedSinceShared):
		http.Error(w, "the "+what+" was replaced by a link since it was shared", http.StatusNotFound)
	case errors.Is(err, errShareBusy):
		http.Error(w, "the "+what+" is in use by another program; try again", http.StatusServiceUnavailable)
	default:
		http.Error(w, "the "+what+" is gone", http.StatusNotFound)
	}
}

// writeZip streams the regular files and folders under root into a zip
// whose paths start with top/. Files are stored, not compressed: most of
// what people share is compressed already, and storing keeps up with the
// network. Symbolic links and other special files are left out; os.Root
// refuses any path that leads out of root.
func writeZip(w io.Writer, root *os.Root, top string) error {
	zw := zip.NewWriter(w)
	err := fs.WalkDir(root.FS(), ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil // unreadable: left out
		}
		name := top
		if p != "." {
			name += "/" + p
		}
		info, err := d.Info()
		if err != nil {
			return nil
		}
		switch {
		case d.IsDir():
			hdr := &zip.FileHeader{Name: name + "/", Modified: info.ModTime()}
			hdr.SetMode(info.Mode())
			_, err := zw.CreateHeader(hdr)
			return err
		case !info.Mode().IsRegular():
			return nil
		}
		f, err := root.Open(p)
		if err != nil {
			return nil
		}
		defer f.Close()
		hdr := &zip.FileHeader{Name: name, Method: zip.Store, Modified: info.ModTime()}
		hdr.SetMode(info.Mode())
		fw, err := zw.CreateHeader(hdr)
		if err != nil {
			return err
		}
		_, err = io.Copy(fw, f)
		return err
	})
	if err != nil {
		return err
	}
	return zw.Close()
}

// deadlineWriter gives every write of a response an idle deadline (the
// server's WriteTimeout is the handshake's, far too short for a download).
// It counts the bytes written, and keeps the first error.
type deadlineWriter struct {
	http.ResponseWriter
	rc   *http.ResponseController
	idle time.Duration
	n    int64
	err  error
}

func (d *deadlineWriter) Write(p []byte) (int, error) {
	if d.idle > 0 {
		_ = d.rc.SetWriteDeadline(time.Now().Add(d.idle))
	}
	n, err := d.ResponseWriter.Write(p)
	d.n += int64(n)
	if err != nil && d.err == nil {
		d.err = err
	}
	return n, err
}
