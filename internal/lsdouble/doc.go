// Package lsdouble is a strict LocalSend 2.2 device for tests: the other
// side, in both directions, of lanshare's LocalSend support. It is written
// from the LocalSend app's own source (localsend/localsend,
// packages/core/src/http/server/v2.rs and common/, http/client/,
// multicast/, discovery/, crypto/cert.rs; the Dart receive and send
// controllers) and shares no code with lanshare, so that it catches
// lanshare's mistakes instead of repeating them.
//
// # What it does as the app does
//
// Identity: an RSA-2048 self-signed certificate, CN=LocalSend User, valid
// 1975–4096; the fingerprint is the upper-case hex SHA-256 of its DER
// bytes (a random string over plain http).
//
// TLS: HTTP/1.1 only, TLS 1.2+. The receiver demands a client certificate
// (ClientCertRequired) and accepts any that parses, is within its dates and
// carries a valid self-signature; like rustls it names its own subject as
// the only acceptable issuer, so a Go sender that leaves the choice to
// tls.Config.Certificates sends none (SendOptions.LegacyClientCert shows
// it). The sender presents its certificate through GetClientCertificate and
// checks the receiver's the same way, pinned to the expected fingerprint
// during the handshake (trust on first use when none is known).
//
// Receiver (every answer an error carries {"message": ...} as JSON):
//   - GET /api/localsend/v2/info (and v1/info): 200 alias, version,
//     deviceModel (left out when unset), deviceType, fingerprint, download.
//   - POST /register: the same body; 400 "Invalid JSON body" when alias,
//     version, fingerprint, port or protocol is missing or mistyped. With a
//     client certificate, a claimed fingerprint that differs from it is
//     answered but recorded as not Valid (the app ignores it).
//   - POST /prepare-upload[?pin=]: in the app's order: PIN (429 "Too many
//     requests" once an address failed 3 times, 401 "PIN required" /
//     "Invalid PIN"), before the body is read; body (400 "Invalid JSON
//     body", 400 "No files provided"); 409 "Blocked by another session";
//     then the decision, which may take as long as a person does: 403
//     "Rejected", 403 "Cancelled by sender" (POST /cancel from the same
//     address meanwhile), 204 when nothing is accepted (a text message: one
//     text/* entry with a preview, recorded), else 200 {sessionId, files:
//     {id: token}} with only the accepted files.
//   - POST /upload?sessionId&fileId&token: 400 "Missing parameters"; 403
//     "Invalid token or IP address" unless the session is active, the
//     address is the preparing one, the token is the file's and the file is
//     pending (not in progress or done: parallel uploads of different files
//     are fine, two of the same file are not); the raw body, chunked or
//     not; more or fewer bytes than announced: 500 and the file fails; a
//     sha256 mismatch (case-insensitive): 422 "Checksum mismatch" and the
//     file is pending again until its 3rd attempt; 200. The session ends
//     when every accepted file finished or failed.
//   - POST /cancel[?sessionId]: always 200.
//   - anything else: 404 with an empty body.
//
// Sender (Send): /register, prepare-upload (?pin= only after a 401),
// uploads chunked without Content-Length, 2 at a time, a file retried on
// 422 up to 3 attempts; answers come back as *StatusError matching
// ErrDeclined, ErrBusy, ErrPIN, ErrTooManyAttempts, ErrChecksum,
// ErrForbidden.
//
// Discovery (Config.Multicast): sockets bound to the UDP port (53317) with
// SO_REUSEADDR and SO_REUSEPORT, one per IPv4 address of each interface
// joined to 224.0.0.167 and one per interface joined to ff12::fd3a:e420,
// TTL 1, loopback on. Announce sends the 1.18 burst (announce: true, no
// "announcement"). A foreign datagram that parses as the app's
// MulticastMessageV2 (alias, version, fingerprint, port, protocol required)
// is recorded and, in the default AnswerRegister mode, answered like 1.18:
// POST /register to its source address and announced port, pinned to the
// announced fingerprint, whatever its announce flag. AnswerRegisterOrMulticast
// and AnswerMulticast behave like 1.17.
//
// # Where it differs from the app
//
// The app ignores loopback interfaces for discovery; the double uses every
// up, multicast-capable interface (Config.Interfaces narrows it), so that
// two doubles can meet on a namespace's lo. IPv6 multicast does not leave
// lo (the kernel finds no route), so on lo only IPv4 discovery works.
//
// Received files are written under Config.Dir by their offered name; a name
// with an empty, "." or ".." element, a leading '/', a backslash or a NUL is
// not accepted (left out of the tokens, listed in Session.Refused) instead
// of being sanitised; an existing file is replaced. Files are written to a
// temporary name and renamed on success, so a failed upload leaves nothing
// under the final name. JSON bodies are capped at Config.MaxJSON (413 above
// it; the app has no cap).
//
// # Using it
//
// A Device is both sides at once and records everything it sees (Snapshot,
// and Wait to block on a condition instead of sleeping). Typical test:
//
//	rx := lsdouble.Start(t, lsdouble.Config{Dir: t.TempDir()})
//	tx := lsdouble.Start(t, lsdouble.Config{})
//	res, err := tx.Send(ctx, rx.Target(), files, lsdouble.SendOptions{})
//
// To hold a sender at prepare-upload as a person who has not tapped accept
// yet, set Behaviour.Accept to a Gate's Accept and answer with Gate.Answer.
// Behaviour can be changed between steps with SetBehaviour.
//
// Multicast needs a network namespace (THE NETWORK RULE): run the test
// binary under netlab.MainIsolated, where lo carries multicast. In a
// netlab lab, StartIn makes a device inside a host: its listener and
// discovery sockets belong to the host's namespace and its dials are made
// there too (Config.DialContext).
package lsdouble
