// Package localsend is the wire format of the LocalSend HTTP API (protocol
// 2.2, as spoken by the LocalSend apps 1.18 and later; 2.1 bodies decode
// too): a pure codec of its JSON bodies over io.Reader and io.Writer, with
// no networking, files or logging. The HTTP and TLS around it live in peer.
//
// # The upload API, as a sender sees it
//
// Every route is under /api/localsend/v2 on the device's port (DefaultPort
// unless it announces another), over HTTPS unless the device announces
// "protocol": "http".
//
//	POST /register                      body Info (ours)  → 200 Info (theirs, no port/protocol)
//	GET  /info                          → 200 Info
//	POST /prepare-upload[?pin=PIN]      body PrepareUpload → 200 PrepareUploadReply
//	                                      | 204 nothing to transfer
//	                                      | 400 bad body | 401 PIN required or wrong
//	                                      | 403 declined | 409 another session is active
//	                                      | 429 too many PIN attempts | 500
//	POST /upload?sessionId=S&fileId=ID&token=T   body: the file's raw bytes
//	                                      → 200 | 400 | 403 bad token, other IP, file not pending
//	                                      | 409 | 422 sha256 mismatch (same token may retry;
//	                                      3 attempts in all) | 500
//	POST /cancel?sessionId=S            → 200
//
// Error answers carry an Error body, {"message": "..."}. prepare-upload may
// stay unanswered for as long as a person takes to tap accept. Only the
// files the receiver accepted appear in the reply, each with its own
// token. Uploads of one session may run in parallel and must come from the
// address that prepared it. There is no resume: a broken upload is sent
// again whole, with the same token, while the receiver still lists the
// file as pending.
//
// # Bodies
//
// Info (register request and reply, info, and "info" in prepare-upload):
//
//	{"alias": "Nice Orange", "version": "2.2", "deviceModel": "Samsung",
//	 "deviceType": "mobile", "fingerprint": "3F2A…", "port": 53317,
//	 "protocol": "https", "download": false}
//
// deviceModel and deviceType may be missing or null; port and protocol are
// missing in a register reply; download may be missing (false). An unknown
// deviceType means "desktop" (Info.Type). The fingerprint is Fingerprint of
// the device's certificate over HTTPS, a random string over plain HTTP; a
// 2.2 receiver trusts the certificate its peer presented, not this field.
//
// PrepareUpload:
//
//	{"info": Info,
//	 "files": {"ID": {"id": "ID", "fileName": "dir/sub/x.txt", "size": 5,
//	                  "fileType": "text/plain", "sha256": "<64 hex>",
//	                  "preview": "...", "metadata": {"modified": "RFC 3339",
//	                  "accessed": "RFC 3339"}}}}
//
// sha256, preview and metadata (and each of its fields) are optional.
// fileName may contain "/" for files inside folders; LocalSend has no
// entries for directories, so an empty folder cannot be sent. A text
// message is one "text/plain" file whose preview is the text.
//
// PrepareUploadReply:
//
//	{"sessionId": "S", "files": {"ID": "TOKEN"}}
//
// # What the decoders accept
//
// JSON as RFC 8259 has it, in UTF-8 (invalid UTF-8 is refused, not
// replaced), one value and nothing after it, at most Limits.MaxBytes
// (DecodeInfo: MaxInfoBytes), no single key or value but "files" over
// MaxValueBytes. Unknown fields are ignored. Inside info and a file's
// entry, field names match case-insensitively and of a field given twice
// the last wins (encoding/json's rules); "info", "files", "sessionId" and
// file ids are matched exactly and refused when given twice. Each file's
// map key must equal its "id". size is a JSON integer from 0 to 2^63-1.
// Every cap is checked before memory beyond it is allocated; the errors
// wrap ErrTooLarge or ErrMalformed. The decoders do not judge whether a
// fileName is safe to write: that is the receiver's.
package localsend
