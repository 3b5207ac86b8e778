package peer

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"path"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lanshare/lanshare/proto"
	"github.com/lanshare/lanshare/proto/localsend"
)

// Errors of a send to a LocalSend device. (They belong with the others in
// errors.go; kept here until the LocalSend work is merged.)
var (
	// ErrPINRequired means the device asks for a PIN and there is none to
	// give (LocalSendOptions.PIN is nil or gave up). It comes with a
	// *RefusedError, so it also matches ErrRefused.
	ErrPINRequired = errors.New("the receiver asks for a PIN")
	// ErrPINAttempts means the device refuses PINs from us after too many
	// wrong ones (429), until it restarts. It matches ErrRefused too.
	ErrPINAttempts = errors.New("too many PIN attempts")
)

// LocalSendTarget is a LocalSend device to send to.
type LocalSendTarget struct {
	// Addr is the device's API address: the sender of its announcement
	// and the port it announced.
	Addr netip.AddrPort
	// Protocol is localsend.ProtocolHTTPS or localsend.ProtocolHTTP, as
	// the device announced; "" means HTTPS. Over plain HTTP nothing is
	// authenticated: the device's fingerprint is a random string, not
	// checked, and LocalSendDevice.Fingerprint is "".
	Protocol string
	// Fingerprint is the certificate fingerprint the device must present
	// (from its announcement or a pin), checked during each TLS handshake,
	// before a byte of a request is sent; any case. "" trusts the first
	// certificate seen (a device given by address) and holds the rest of
	// the send to it.
	Fingerprint string
	// Alias names the device in messages until its register answer does.
	Alias string
}

// LocalSendDevice is what a send learns of the device from its register
// answer and its TLS handshake.
type LocalSendDevice struct {
	Info localsend.Info // the register answer
	// Fingerprint is the fingerprint of the certificate the device
	// presented, upper-case hex; "" over plain HTTP. LocalSendID makes
	// its id for known_peers.
	Fingerprint string
	Addr        netip.AddrPort
}

// PINRequest asks for the PIN a device wants.
type PINRequest struct {
	Peer  string // the device's alias
	Wrong bool   // the last PIN given was wrong
}

// LocalSendOptions configure SendLocalSend. Of SendOptions it uses Name,
// IdleTimeout (per upload, and for an answer's body), Progress (called
// from the uploads' goroutines, one call at a time), Retries, OnRetry and
// OnWait (Waiting.Timeout is 0: a LocalSend device names no limit); Dial
// does not apply.
type LocalSendOptions struct {
	SendOptions
	// Identity is our LocalSend certificate, presented to HTTPS devices
	// (2.2 receivers require one). Required for HTTPS.
	Identity *LocalSendIdentity
	// Info is what we tell the device about ourselves. Empty fields take
	// defaults: Alias from Name, Version localsend.Version, DeviceType
	// headless, Fingerprint from Identity (else random), Port
	// localsend.DefaultPort, Protocol HTTPS.
	Info localsend.Info
	// PIN is asked for a PIN after the device answered 401, and again,
	// with Wrong set, after a wrong one (at most three times, the
	// device's limit). A PIN is never sent before the device asks. nil,
	// or an error, ends the send with ErrPINRequired.
	PIN func(context.Context, PINRequest) (string, error)
	// OnRegister, if set, is called once the device answered register,
	// before anything about the files is sent: the place to pin or check
	// its fingerprint. An error from it ends the send.
	OnRegister func(LocalSendDevice) error
}

// Timeouts of a LocalSend send. prepare-upload has none: a person taps
// accept on the device, or the context ends.
const (
	lsDialTimeout     = 10 * time.Second
	lsRegisterTimeout = 15 * time.Second
	lsCancelTimeout   = 3 * time.Second
)

// Uploads: files under lsLargeFile go lsParallel at a time; larger ones
// one after another, after them. LocalSend receivers take one session's
// uploads in parallel; many small files gain from it, large ones don't.
const (
	lsParallel  = 4
	lsLargeFile = 4 << 20
	// lsUploadAttempts is how often a file is uploaded when the device
	// answers 422 (checksum mismatch): the apps' limit.
	lsUploadAttempts = 3
	// lsPINAttempts is how many PINs are tried: the apps block an address
	// after three wrong ones.
	lsPINAttempts = 3
)

// SendLocalSend sends items (from Collect) to a LocalSend device: it
// registers (checking the device's certificate), offers every file with
// its sha256 and relative path in one prepare-upload, waits for a person
// to accept (reported through OnWait, Waiting.Timeout 0: no limit), and
// uploads the accepted files. LocalSend has no entries for directories:
// folders arrive as the paths of their files, and an empty folder is not
// sent (its result is Refused). It blocks until the session ends or ctx
// does; a session cut short is cancelled on the device (POST /cancel).
//
// The Report has the shape SendTo's has, one Result per item. The error
// is nil only when every item arrived; it matches ErrRefused for a
// declined offer (403, proto.CodeDenied), a busy device (409,
// proto.CodeBusy) and PIN trouble (ErrPINRequired, ErrPINAttempts);
// ErrKeyChanged when the device's certificate is not the expected one;
// ErrNotSendable when it does not speak LocalSend 2; ErrIncomplete when
// files failed; ErrSourceUnreadable (a *SourceError) when our own files
// could not be read.
//
// LocalSend cannot resume, and a file sent twice arrives twice (renamed).
// So a send is tried again (SendOptions.Retries, with SendTo's pauses)
// only while no byte of any file has gone out: after a dropped connection
// or a busy answer to register or prepare-upload. Once uploads began, a
// failed file is reported, never sent again in a new session; within the
// session, only a 422 is retried, with the same token, which the device
// keeps for that purpose.
func SendLocalSend(ctx context.Context, dev LocalSendTarget, items []Item, opt LocalSendOptions) (*Report, error) {
	s, err := newLSSender(dev, opt)
	if err != nil {
		return nil, err
	}
	defer s.tr.CloseIdleConnections()
	return s.send(ctx, items)
}

// lsSender is one SendLocalSend.
type lsSender struct {
	dev    LocalSendTarget
	opt    LocalSendOptions
	https  bool
	base   url.URL
	tr     *http.Transport
	client *http.Client
	info   localsend.Info // ours
	idle   time.Duration

	mu     sync.Mutex
	pinned string // the fingerprint the device must present; set on first use
	alias  string

	sent atomic.Uint64 // file bytes that crossed, all attempts

	progMu   sync.Mutex
	prog     Progress
	progLast time.Time
}

func newLSSender(dev LocalSendTarget, opt LocalSendOptions) (*lsSender, error) {
	s := &lsSender{dev: dev, opt: opt, alias: dev.Alias, idle: opt.IdleTimeout}
	if s.idle <= 0 {
		s.idle = DefaultIdleTimeout
	}
	switch dev.Protocol {
	case "", localsend.ProtocolHTTPS:
		s.https = true
		if opt.Identity == nil {
			return nil, errors.New("sending to a LocalSend device over HTTPS needs our LocalSend identity")
		}
		if dev.Fingerprint != "" && !localsend.IsCertFingerprint(dev.Fingerprint) {
			return nil, fmt.Errorf("%w: %s announced a fingerprint that is not a certificate's: %.70q",
				ErrNotSendable, peerName(dev.Alias), dev.Fingerprint)
		}
		s.pinned = strings.ToUpper(dev.Fingerprint)
	case localsend.ProtocolHTTP:
	default:
		return nil, fmt.Errorf("%w: %s announced protocol %.20q", ErrNotSendable, peerName(dev.Alias), dev.Protocol)
	}
	if !dev.Addr.IsValid() {
		return nil, errors.New("no address for the LocalSend device")
	}
	s.info = opt.Info
	if s.info.Alias == "" {
		s.info.Alias = opt.Name
	}
	if s.info.Version == "" {
		s.info.Version = localsend.Version
	}
	if s.info.DeviceType == "" {
		s.info.DeviceType = localsend.DeviceHeadless
	}
	if s.info.DeviceModel == nil {
		// Some receivers (the npm tool) refuse a body without one.
		model := LocalSendModel
		s.info.DeviceModel = &model
	}
	if s.info.Fingerprint == "" {
		if opt.Identity != nil {
			s.info.Fingerprint = opt.Identity.Fingerprint
		} else {
			s.info.Fingerprint = randomHex(32)
		}
	}
	if s.info.Port == 0 {
		s.info.Port = localsend.DefaultPort
	}
	if s.info.Protocol == "" {
		s.info.Protocol = localsend.ProtocolHTTPS
	}

	// The dial goes to dev.Addr whatever the URL says (its zone, if any,
	// included); the URL's host is only the Host header.
	d := net.Dialer{Timeout: lsDialTimeout}
	s.tr = &http.Transport{
		DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			return d.DialContext(ctx, "tcp", dev.Addr.String())
		},
		MaxIdleConnsPerHost: lsParallel,
		DisableCompression:  true,
		// Proxy stays nil: a LAN device is never reached through a proxy.
	}
	s.base = url.URL{Scheme: "http", Host: netip.AddrPortFrom(dev.Addr.Addr().WithZone(""), dev.Addr.Port()).String()}
	if s.https {
		s.base.Scheme = "https"
		conf := s.tlsConfig()
		// The handshake runs here, not in the transport, so that its
		// failure is told apart from the request's.
		s.tr.DialTLSContext = func(ctx context.Context, _, _ string) (net.Conn, error) {
			raw, err := d.DialContext(ctx, "tcp", dev.Addr.String())
			if err != nil {
				return nil, err
			}
			tc := tls.Client(raw, conf)
			hctx, cancel := context.WithTimeout(ctx, lsDialTimeout)
			defer cancel()
			if err := tc.HandshakeContext(hctx); err != nil {
				raw.Close()
				if errors.Is(err, ErrKeyChanged) || errors.Is(err, ErrHandshake) {
					return nil, err
				}
				return nil, fmt.Errorf("%w: %w", ErrHandshake, turnedAway(err))
			}
			return tc, nil
		}
	}
	s.client = &http.Client{
		Transport: s.tr,
		CheckRedirect: func(*http.Request, []*http.Request) error {
			return http.ErrUseLastResponse // a device never redirects us
		},
	}
	return s, nil
}

// tlsConfig presents our certificate and checks the device's: LocalSend
// certificates are self-signed, so there is no chain to check, only the
// fingerprint. The certificate goes through GetClientCertificate: a 2.2
// device (rustls) names its own subject as the only acceptable issuer,
// and crypto/tls would then pick none of Certificates and send nothing.
func (s *lsSender) tlsConfig() *tls.Config {
	cert := s.opt.Identity.Cert
	return &tls.Config{
		InsecureSkipVerify: true, // replaced by the fingerprint check below
		GetClientCertificate: func(*tls.CertificateRequestInfo) (*tls.Certificate, error) {
			return &cert, nil
		},
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			if len(raw) == 0 {
				return fmt.Errorf("%w: %s presented no certificate", ErrHandshake, s.name())
			}
			if _, err := x509.ParseCertificate(raw[0]); err != nil {
				return fmt.Errorf("%w: %s's certificate: %w", ErrHandshake, s.name(), err)
			}
			got := localsend.Fingerprint(raw[0])
			s.mu.Lock()
			defer s.mu.Unlock()
			if s.pinned == "" {
				s.pinned = got // trust on first use; held for the rest of the send
				return nil
			}
			if !localsend.SameFingerprint(got, s.pinned) {
				return fmt.Errorf("%w: %s presented the certificate of id %s, expected %s; if its owner confirms the new one, accept it with: lanshare trust --replace %s",
					ErrKeyChanged, peerName(s.alias), GroupID(LocalSendID(got)), GroupID(LocalSendID(s.pinned)), GroupID(LocalSendID(got)))
			}
			return nil
		},
	}
}

func (s *lsSender) name() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return peerName(s.alias)
}

// lsFile is a file of the send, as offered.
type lsFile struct {
	item  int // index in items
	it    Item
	dto   localsend.File
	token string
	res   proto.Result
	done  bool // res is final
	// unread says why our file could not be read in full, if so.
	unread error
}

func (s *lsSender) send(ctx context.Context, items []Item) (*Report, error) {
	if isText(items) {
		return s.sendText(ctx, items)
	}
	rep := &Report{Peer: s.dev.Alias, Items: items}
	var files []*lsFile
	for i, it := range items {
		if it.Entry.Kind == proto.KindFile {
			files = append(files, &lsFile{item: i, it: it})
			s.prog.Total += it.Entry.Size
			s.prog.FilesTotal++
		}
	}
	if len(files) == 0 {
		return rep, fmt.Errorf("%w: LocalSend cannot send empty folders", ErrNothingToSend)
	}

	retries := s.opt.Retries
	if retries == 0 {
		retries = DefaultRetries
	}
	var (
		registered, hashed, uploading bool
		fails                         int
		err                           error
	)
	for attempt := 1; ; attempt++ {
		s.prog.Attempt = attempt
		err = nil
		if !registered {
			err = s.register(ctx)
			registered = err == nil
		}
		if err == nil && !hashed {
			s.hash(files)
			hashed = true
		}
		if err == nil {
			uploading, err = s.session(ctx, files)
		}
		s.mu.Lock()
		rep.Peer = s.alias
		s.mu.Unlock()
		if err == nil || uploading || !registered || !lsRetryable(err) || ctx.Err() != nil {
			break
		}
		// Nothing of any file went out: another session duplicates nothing.
		if fails++; retries < 0 || fails > retries {
			if attempt > 1 {
				err = fmt.Errorf("gave up after %d attempts: %w", attempt, err)
			}
			break
		}
		wait := s.opt.retryBase
		if wait == 0 {
			wait = retryBase
		}
		wait = min(wait<<(fails-1), retryMax)
		rep.Retries++
		if s.opt.OnRetry != nil {
			s.opt.OnRetry(Retry{Attempt: attempt + 1, Max: retries, Err: err, Wait: wait})
		}
		t := time.NewTimer(wait)
		select {
		case <-t.C:
		case <-ctx.Done():
			t.Stop()
			return rep, fmt.Errorf("%w: %w", ctx.Err(), err)
		}
	}
	rep.Sent = s.sent.Load()
	if err != nil && !uploading {
		// The session as a whole failed (refused, busy, unreachable):
		// no file has a verdict of its own.
		return rep, err
	}
	rep.Results = s.results(items, files)
	if err != nil { // cut short while uploading
		return rep, err
	}
	err = rep.check()
	for _, f := range files {
		if f.unread != nil && err != nil {
			n := 0
			for _, g := range files {
				if g.unread != nil {
					n++
				}
			}
			return rep, &SourceError{Path: f.it.Source, Err: f.unread, Count: n, cause: err}
		}
	}
	return rep, err
}

// lsRetryable reports whether a session that failed with err, before any
// file byte went out, is worth another: the connection failed, or the
// device was busy with another session.
func lsRetryable(err error) bool {
	var re *RefusedError
	var se *lsStatusError
	switch {
	case errors.Is(err, ErrKeyChanged), errors.Is(err, ErrNotSendable), errors.Is(err, ErrHandshake),
		errors.Is(err, localsend.ErrMalformed), errors.Is(err, localsend.ErrTooLarge), errors.Is(err, proto.ErrMalformed):
		return false
	case errors.As(err, &re):
		return re.Code == proto.CodeBusy
	case errors.As(err, &se):
		return se.Status >= 500
	}
	return true
}

// results is one proto.Result per item: the files' own, and for a folder
// Saved when a file in it arrived, not sent when it holds no file.
func (s *lsSender) results(items []Item, files []*lsFile) []proto.Result {
	res := make([]proto.Result, len(items))
	for _, f := range files {
		res[f.item] = f.res
		if !f.done {
			res[f.item] = proto.Result{Status: proto.Failed, Code: proto.CodeAborted, Reason: "not sent"}
		}
	}
	for i, it := range items {
		if it.Entry.Kind != proto.KindDir {
			continue
		}
		prefix := it.Entry.Path + "/"
		holds, arrived := false, false
		for _, f := range files {
			if strings.HasPrefix(f.it.Entry.Path, prefix) {
				holds = true
				arrived = arrived || f.res.Status == proto.Saved
			}
		}
		switch {
		case arrived:
			res[i] = proto.Result{Status: proto.Saved}
		case holds:
			res[i] = proto.Result{Status: proto.Failed, Code: proto.CodeAborted, Reason: "none of its files arrived"}
		default:
			// LocalSend offers files only; a folder exists on the device
			// because a file's path names it.
			res[i] = proto.Result{Status: proto.Refused, Code: proto.CodeProtocol, Reason: "LocalSend cannot send an empty folder"}
		}
	}
	return res
}

// register introduces us to the device and learns its alias, checking its
// certificate on the way (tlsConfig); then OnRegister has its say.
func (s *lsSender) register(ctx context.Context) error {
	var body bytes.Buffer
	if err := localsend.EncodeInfo(&body, s.info); err != nil {
		return err
	}
	rctx, cancel := context.WithTimeout(ctx, lsRegisterTimeout)
	defer cancel()
	resp, err := s.post(rctx, localsend.PathRegister, nil, &body, int64(body.Len()), "application/json")
	if err != nil {
		return s.connErr("registering with", err)
	}
	defer drain(resp)
	switch {
	case resp.StatusCode == http.StatusNotFound:
		return fmt.Errorf("%w: %s does not speak LocalSend 2 (register: 404)", ErrNotSendable, s.name())
	case resp.StatusCode != http.StatusOK:
		return s.statusErr("register", resp)
	}
	info, err := localsend.DecodeInfo(resp.Body)
	if err != nil {
		return fmt.Errorf("%s's register answer: %w", s.name(), err)
	}
	if major, _, _ := strings.Cut(info.Version, "."); info.Version != "" && major != "2" {
		return fmt.Errorf("%w: %s speaks LocalSend %s", ErrNotSendable, s.name(), Escape(info.Version))
	}
	s.mu.Lock()
	if info.Alias != "" {
		s.alias = info.Alias
	}
	fp := ""
	if s.https {
		fp = s.pinned
	}
	s.mu.Unlock()
	if s.opt.OnRegister != nil {
		return s.opt.OnRegister(LocalSendDevice{Info: info, Fingerprint: fp, Addr: s.dev.Addr})
	}
	return nil
}

// hash fills each file's offer: its id, relative path, MIME type, size,
// modification time and sha256. A file that cannot be read is not offered
// and fails with CodeSourceChanged.
func (s *lsSender) hash(files []*lsFile) {
	buf := make([]byte, 256<<10)
	for _, f := range files {
		e := f.it.Entry
		f.dto = localsend.File{
			ID:       randomUUID(),
			FileName: e.Path,
			Size:     int64(e.Size),
			FileType: fileType(e.Path),
		}
		if !e.MTime.IsZero() {
			f.dto.Metadata = &localsend.Metadata{Modified: localsend.FormatTime(e.MTime)}
		}
		sum, err := sha256File(f.it, e.Size, buf)
		if err != nil {
			s.fail(f, proto.CodeSourceChanged, err)
			f.unread = err
			continue
		}
		f.dto.SHA256 = sum
	}
}

func sha256File(it Item, size uint64, buf []byte) (string, error) {
	fh, err := openSource(it.Source)
	if err != nil {
		return "", err
	}
	defer fh.Close()
	if err := it.isCollected(fh); err != nil {
		return "", err // not even its digest goes out
	}
	h := sha256.New()
	n, err := io.CopyBuffer(h, io.LimitReader(fh, int64(size)+1), buf)
	if err != nil {
		return "", err
	}
	if uint64(n) != size {
		return "", errors.New("it changed size since it was listed")
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}

// fileType is the MIME type LocalSend apps show an icon for.
func fileType(name string) string {
	t := mime.TypeByExtension(path.Ext(name))
	if t == "" {
		return "application/octet-stream"
	}
	if mt, _, err := mime.ParseMediaType(t); err == nil {
		return mt
	}
	return "application/octet-stream"
}

// session offers the files not yet decided and uploads those accepted.
// uploading reports whether any file byte went out.
func (s *lsSender) session(ctx context.Context, files []*lsFile) (uploading bool, err error) {
	pu := localsend.PrepareUpload{Info: s.info, Files: map[string]localsend.File{}}
	byID := map[string]*lsFile{}
	for _, f := range files {
		if !f.done {
			pu.Files[f.dto.ID] = f.dto
			byID[f.dto.ID] = f
		}
	}
	if len(pu.Files) == 0 {
		return false, nil
	}
	reply, err := s.prepare(ctx, pu)
	if err != nil {
		return false, err
	}
	if reply == nil { // 204: the device took none
		for _, f := range byID {
			s.refuse(f, "the receiver took none of the files")
		}
		return false, nil
	}
	for id := range reply.Files {
		if byID[id] == nil {
			s.cancel(reply.SessionID)
			return false, fmt.Errorf("%s accepted file id %.40q, which we did not offer: %w", s.name(), id, localsend.ErrMalformed)
		}
	}
	var small, large []*lsFile
	for id, f := range byID {
		token, ok := reply.Files[id]
		if !ok {
			s.refuse(f, "not accepted by the receiver")
			continue
		}
		f.token = token
		if f.dto.Size < lsLargeFile {
			small = append(small, f)
		} else {
			large = append(large, f)
		}
	}
	sortByItem(small)
	sortByItem(large)

	var started atomic.Bool
	work := make(chan *lsFile)
	var wg sync.WaitGroup
	for range min(lsParallel, len(small)) {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for f := range work {
				s.upload(ctx, reply.SessionID, f, &started)
			}
		}()
	}
	for _, f := range small {
		if ctx.Err() != nil {
			break
		}
		work <- f
	}
	close(work)
	wg.Wait()
	for _, f := range large {
		if ctx.Err() != nil {
			break
		}
		s.upload(ctx, reply.SessionID, f, &started)
	}
	complete := true
	for _, f := range byID {
		complete = complete && (f.token == "" || f.done && f.res.Status == proto.Saved)
	}
	if !complete {
		// The device holds the session until every file is done or it is
		// cancelled: free it for the next sender.
		s.cancel(reply.SessionID)
	}
	if ctx.Err() != nil {
		return started.Load(), fmt.Errorf("%w: sending to %s: %w", ErrIncomplete, s.name(), ctx.Err())
	}
	return started.Load(), nil
}

func sortByItem(fs []*lsFile) {
	slices.SortFunc(fs, func(a, b *lsFile) int { return a.item - b.item })
}

// prepare sends prepare-upload and waits, without a time limit, for the
// device's answer: nil for 204. It asks for a PIN after a 401.
func (s *lsSender) prepare(ctx context.Context, pu localsend.PrepareUpload) (*localsend.PrepareUploadReply, error) {
	var body bytes.Buffer
	if err := localsend.EncodePrepareUpload(&body, pu); err != nil {
		return nil, err
	}
	if s.opt.OnWait != nil {
		name := s.name()
		s.opt.OnWait(Waiting{Peer: name, Reason: "waiting for " + name + " to accept"})
	}
	var query url.Values // no PIN until the device asks for one
	for pins := 0; ; {
		reply, status, err := s.prepareOnce(ctx, query, body.Bytes(), len(pu.Files))
		switch {
		case err != nil:
			if ctx.Err() != nil {
				// A pending prepare-upload is cancelled by address.
				s.cancel("")
			}
			return nil, err
		case status == http.StatusUnauthorized:
			pin, err := s.askPIN(ctx, pins)
			if err != nil {
				return nil, err
			}
			pins++
			query = url.Values{localsend.QueryPIN: {pin}}
			continue
		}
		return reply, nil
	}
}

// prepareOnce posts the offer once: a reply for 200, nil for 204 and 401
// (status says which), an error for the rest. Once the answer's header
// has come, its body must come within the idle timeout.
func (s *lsSender) prepareOnce(ctx context.Context, query url.Values, body []byte, files int) (*localsend.PrepareUploadReply, int, error) {
	pctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	resp, err := s.post(pctx, localsend.PathPrepareUpload, query, bytes.NewReader(body), int64(len(body)), "application/json")
	if err != nil {
		return nil, 0, s.connErr("offering files to", err)
	}
	stalled := time.AfterFunc(s.idle, func() { cancel(fmt.Errorf("its answer stalled for %s", s.idle)) })
	defer stalled.Stop()
	defer drain(resp)
	switch resp.StatusCode {
	case http.StatusOK:
		// Ids and tokens of the files offered, at most.
		lim := localsend.Limits{MaxFiles: files,
			MaxBytes: min(localsend.DefaultMaxBytes, int64(files)*(localsend.MaxIDLen+localsend.MaxTokenLen+16)+localsend.MaxTokenLen+4096)}
		reply, err := localsend.DecodePrepareUploadReply(resp.Body, lim)
		if err != nil {
			if c := context.Cause(pctx); c != nil && ctx.Err() == nil {
				err = fmt.Errorf("%w (%w)", err, c)
			}
			return nil, 0, fmt.Errorf("%s's answer to our offer: %w", s.name(), err)
		}
		return &reply, http.StatusOK, nil
	case http.StatusNoContent, http.StatusUnauthorized:
		return nil, resp.StatusCode, nil
	}
	return nil, resp.StatusCode, s.prepareErr(resp)
}

func (s *lsSender) askPIN(ctx context.Context, given int) (string, error) {
	refused := &RefusedError{Peer: s.name(), Code: proto.CodeDenied}
	if given >= lsPINAttempts {
		refused.Reason = fmt.Sprintf("wrong PIN (%d tries)", given)
		return "", fmt.Errorf("%w: %w", ErrPINRequired, refused)
	}
	if s.opt.PIN == nil {
		refused.Reason = "it asks for a PIN (--pin)"
		return "", fmt.Errorf("%w: %w", ErrPINRequired, refused)
	}
	pin, err := s.opt.PIN(ctx, PINRequest{Peer: s.name(), Wrong: given > 0})
	if err != nil {
		refused.Reason = "it asks for a PIN: " + err.Error()
		return "", fmt.Errorf("%w: %w", ErrPINRequired, refused)
	}
	if pin == "" {
		refused.Reason = "it asks for a PIN, and none was given"
		return "", fmt.Errorf("%w: %w", ErrPINRequired, refused)
	}
	return pin, nil
}

// prepareErr is the error of a prepare-upload answer other than 200, 204
// and 401.
func (s *lsSender) prepareErr(resp *http.Response) error {
	name := s.name()
	switch resp.StatusCode {
	case http.StatusForbidden:
		return &RefusedError{Peer: name, Code: proto.CodeDenied, Reason: "declined"}
	case http.StatusConflict:
		return &RefusedError{Peer: name, Code: proto.CodeBusy, Reason: "busy with another transfer; try again later"}
	case http.StatusTooManyRequests:
		if textsOverLimit(resp) {
			return &RefusedError{Peer: name, Code: proto.CodeTooMany, Reason: textsReason, Text: true}
		}
		return fmt.Errorf("%w: %w", ErrPINAttempts, &RefusedError{Peer: name, Code: proto.CodeDenied,
			Reason: "too many PIN attempts; it refuses this address until it restarts"})
	}
	return s.statusErr("prepare-upload", resp)
}

// upload sends one accepted file, again after a 422 (up to
// lsUploadAttempts in all), and records its result.
func (s *lsSender) upload(ctx context.Context, session string, f *lsFile, started *atomic.Bool) {
	for attempt := 1; ; attempt++ {
		if ctx.Err() != nil {
			s.fail(f, proto.CodeAborted, ctx.Err())
			return
		}
		a := s.uploadOnce(ctx, session, f, started)
		switch {
		case a.unread != nil:
			f.unread = a.unread
			s.failSent(f, proto.CodeSourceChanged, a.unread, a.sent)
		case a.err != nil:
			s.failSent(f, proto.CodeAborted, a.err, a.sent)
		case a.status == http.StatusOK:
			s.finish(f, proto.Result{Status: proto.Saved}, a.sent)
		case a.status == http.StatusUnprocessableEntity && s.changed(f):
			// Not what we hashed before the offer: it changed meanwhile.
			f.unread = errors.New("it changed while being sent")
			s.failSent(f, proto.CodeSourceChanged, f.unread, a.sent)
		case a.status == http.StatusUnprocessableEntity && attempt < lsUploadAttempts:
			s.unsent(a.sent) // it goes again, whole, with the same token
			continue
		case a.status == http.StatusUnprocessableEntity:
			s.failSent(f, proto.CodeDigest, fmt.Errorf("the receiver's sha256 differs from ours (%d attempts)", attempt), a.sent)
		case a.status == http.StatusConflict:
			s.failSent(f, proto.CodeBusy, errors.New("the receiver is busy with another session"), a.sent)
		case a.status == http.StatusForbidden:
			s.failSent(f, proto.CodeDenied, errors.New("the receiver no longer takes this file (session ended?)"), a.sent)
		default:
			s.failSent(f, proto.CodeIO, fmt.Errorf("the receiver answered %d %s", a.status, http.StatusText(a.status)), a.sent)
		}
		return
	}
}

// uploadAttempt is how one upload of a file went.
type uploadAttempt struct {
	sent   uint64 // bytes that went out
	status int    // the answer's, when one came
	unread error  // our file could not be read in full
	err    error  // the request failed
}

// changed tells whether f's file no longer has the sha256 offered for it,
// so that a 422 means it changed since, not that bytes were damaged. It
// is hashed again only then: hashing every upload's body as it went
// cost a third of the SHA-256 work of a send, on the path of every byte.
func (s *lsSender) changed(f *lsFile) bool {
	sum, err := sha256File(f.it, uint64(f.dto.Size), make([]byte, 256<<10))
	return err != nil || sum != f.dto.SHA256
}

// uploadOnce posts f's bytes, streamed from disk. It stops when nothing
// moves for the idle timeout (the device may stall).
func (s *lsSender) uploadOnce(ctx context.Context, session string, f *lsFile, started *atomic.Bool) uploadAttempt {
	fh, err := openSource(f.it.Source)
	if err != nil {
		return uploadAttempt{unread: err}
	}
	defer fh.Close()
	if err := f.it.isCollected(fh); err != nil {
		return uploadAttempt{unread: err}
	}
	uctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	idle := time.AfterFunc(s.idle, func() {
		cancel(fmt.Errorf("nothing moved for %s", s.idle))
	})
	defer idle.Stop()
	body := &lsBody{r: io.LimitReader(fh, f.dto.Size), want: f.dto.Size,
		moved: func(n int) {
			idle.Reset(s.idle)
			started.Store(true)
			s.sent.Add(uint64(n))
			s.advance(f.it.Entry.Path, n)
		}}
	// The transport may still read the body after Do returns (an early
	// answer): closing it here ends that, and its progress reports,
	// before we return.
	defer body.Close()
	q := url.Values{localsend.QuerySessionID: {session}, localsend.QueryFileID: {f.dto.ID}, localsend.QueryToken: {f.token}}
	resp, err := s.post(uctx, localsend.PathUpload, q, body, f.dto.Size, "application/octet-stream")
	var a uploadAttempt
	if err == nil {
		a.status = resp.StatusCode
		drain(resp)
	}
	body.Close()
	a.sent, a.unread = body.result()
	if err != nil && a.unread == nil {
		if c := context.Cause(uctx); c != nil && ctx.Err() == nil {
			err = c
		}
		a.err = s.connErr("sending "+Escape(f.it.Entry.Path)+" to", err)
	}
	return a
}

// lsBody is an upload's body: the file's declared bytes, counted. A file that shrank fails the request (the device then has a
// short body and keeps nothing). The transport reads it on its own
// goroutine, so its state is under mu.
type lsBody struct {
	r     io.Reader
	want  int64
	moved func(int)

	mu     sync.Mutex
	n      uint64
	unread error
	closed bool
}

func (b *lsBody) Read(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return 0, errors.New("upload body closed")
	}
	n, err := b.r.Read(p)
	if n > 0 {
		b.n += uint64(n)
		b.moved(n)
	}
	switch {
	case err == io.EOF && int64(b.n) < b.want:
		b.unread = errors.New("it shrank while being sent")
		err = b.unread
	case err != nil && err != io.EOF:
		b.unread = err
	}
	return n, err
}

// Close ends reading; it is safe to call more than once.
func (b *lsBody) Close() error {
	b.mu.Lock()
	b.closed = true
	b.mu.Unlock()
	return nil
}

// result is the count of bytes read, and the reason the file could not
// be read in full.
func (b *lsBody) result() (n uint64, unread error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.n, b.unread
}

// cancel ends the session on the device (or, with no session, our
// pending prepare-upload), so that it is free for the next sender. It
// does not wait long, nor report failure: the device may be gone.
func (s *lsSender) cancel(session string) {
	ctx, stop := context.WithTimeout(context.Background(), lsCancelTimeout)
	defer stop()
	var q url.Values
	if session != "" {
		q = url.Values{localsend.QuerySessionID: {session}}
	}
	if resp, err := s.post(ctx, localsend.PathCancel, q, nil, 0, ""); err == nil {
		drain(resp)
	}
}

func (s *lsSender) post(ctx context.Context, p string, q url.Values, body io.Reader, n int64, ctype string) (*http.Response, error) {
	u := s.base
	u.Path = p
	u.RawQuery = q.Encode()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u.String(), body)
	if err != nil {
		return nil, err
	}
	req.ContentLength = n
	if n == 0 {
		req.Body = http.NoBody
	}
	if ctype != "" {
		req.Header.Set("Content-Type", ctype)
	}
	req.Header.Set("User-Agent", "lanshare")
	return s.client.Do(req)
}

// drain reads a little of what is left of resp's body, so that the
// connection can serve the next request, and closes it.
func drain(resp *http.Response) {
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	resp.Body.Close()
}

// connErr wraps a request's failure. A TLS alert from the device after
// the handshake (TLS 1.3 servers refuse a client certificate then) is
// ErrHandshake, as a failed handshake is; the rest (a refused dial, a
// dropped connection) stays as it is for errors.Is and errors.As.
func (s *lsSender) connErr(what string, err error) error {
	var oe *net.OpError
	if !errors.Is(err, ErrKeyChanged) && !errors.Is(err, ErrHandshake) && errors.As(err, &oe) && oe.Op == "remote error" {
		err = fmt.Errorf("%w: %w", ErrHandshake, err)
	}
	return fmt.Errorf("%s %s: %w", what, s.name(), err)
}

// lsStatusError is an answer with an unexpected HTTP status.
type lsStatusError struct {
	Peer    string
	Op      string
	Status  int
	Message string
}

func (e *lsStatusError) Error() string {
	msg := http.StatusText(e.Status)
	if e.Message != "" {
		msg = Escape(e.Message)
	}
	return fmt.Sprintf("%s answered %s with %d: %s", e.Peer, e.Op, e.Status, msg)
}

func (s *lsSender) statusErr(op string, resp *http.Response) error {
	e := &lsStatusError{Peer: s.name(), Op: op, Status: resp.StatusCode}
	if msg, err := localsend.DecodeError(resp.Body); err == nil {
		e.Message = msg.Message
	}
	return e
}

// Progress, serialized: uploads run in parallel.

func (s *lsSender) advance(path string, n int) {
	s.progMu.Lock()
	defer s.progMu.Unlock()
	s.prog.Bytes += uint64(n)
	if s.opt.Progress != nil && time.Since(s.progLast) > 50*time.Millisecond {
		s.progLast = time.Now()
		s.prog.Path = path
		s.opt.Progress(s.prog)
	}
}

// unsent takes back n bytes counted for an attempt that goes again.
func (s *lsSender) unsent(n uint64) {
	s.progMu.Lock()
	s.prog.Bytes -= n
	s.progMu.Unlock()
}

// finish records f's final result; its bytes count as done whatever part
// of them went out (sent, the bytes that did).
func (s *lsSender) finish(f *lsFile, res proto.Result, sent uint64) {
	s.progMu.Lock()
	defer s.progMu.Unlock()
	f.res, f.done = res, true
	s.prog.Bytes += f.it.Entry.Size - min(sent, f.it.Entry.Size)
	s.prog.Files++
	s.prog.Path = f.it.Entry.Path
	if s.opt.Progress != nil {
		s.progLast = time.Now()
		s.opt.Progress(s.prog)
	}
}

func (s *lsSender) refuse(f *lsFile, reason string) {
	s.finish(f, proto.Result{Status: proto.Refused, Code: proto.CodeDenied, Reason: reason}, 0)
}

func (s *lsSender) fail(f *lsFile, code proto.Code, err error) { s.failSent(f, code, err, 0) }

func (s *lsSender) failSent(f *lsFile, code proto.Code, err error, sent uint64) {
	s.finish(f, proto.Result{Status: proto.Failed, Code: code, Reason: trimReason(errReasonNoPath(err).Error())}, sent)
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// randomUUID is a version 4 UUID, as the apps use for file ids.
func randomUUID() string {
	var b [16]byte
	_, _ = rand.Read(b[:])
	b[6] = b[6]&0x0f | 0x40
	b[8] = b[8]&0x3f | 0x80
	h := hex.EncodeToString(b[:])
	return h[:8] + "-" + h[8:12] + "-" + h[12:16] + "-" + h[16:20] + "-" + h[20:]
}
