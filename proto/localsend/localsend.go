package localsend

import (
	"time"
	"unsafe"
)

// DefaultPort is the TCP port of the HTTP(S) API and the UDP port of
// multicast discovery, unless a device announces another.
const DefaultPort = 53317

// Version is the protocol version this package speaks, sent in Info.
const Version = "2.2"

// API paths. The v1 info path is still answered by 2.2 apps so that old
// clients can probe them.
const (
	PathInfo            = "/api/localsend/v2/info"
	PathRegister        = "/api/localsend/v2/register"
	PathPrepareUpload   = "/api/localsend/v2/prepare-upload"
	PathUpload          = "/api/localsend/v2/upload"
	PathCancel          = "/api/localsend/v2/cancel"
	PathPrepareDownload = "/api/localsend/v2/prepare-download"
	PathDownload        = "/api/localsend/v2/download"
	PathInfoV1          = "/api/localsend/v1/info"
)

// Query parameters of the API paths.
const (
	QueryPIN       = "pin"       // prepare-upload, only after a 401
	QuerySessionID = "sessionId" // upload, cancel
	QueryFileID    = "fileId"    // upload
	QueryToken     = "token"     // upload
)

// Protocols a device announces in Info.Protocol.
const (
	ProtocolHTTP  = "http"
	ProtocolHTTPS = "https"
)

// Device types of Info.DeviceType. They only choose an icon; a device may
// send any other value, which means DeviceDesktop.
const (
	DeviceMobile   = "mobile"
	DeviceDesktop  = "desktop"
	DeviceWeb      = "web"
	DeviceHeadless = "headless"
	DeviceServer   = "server"
)

// Field caps, in bytes. A decoder refuses a value over its cap with
// ErrTooLarge; the encoders refuse it too, so we never send what we would
// refuse.
const (
	MaxInfoBytes    = 8 << 10 // a whole Info body (DecodeInfo), or "info" in prepare-upload
	MaxAliasLen     = 256
	MaxVersionLen   = 16
	MaxModelLen     = 256 // deviceModel
	MaxTypeLen      = 64  // deviceType
	MaxFingerprint  = 256 // a random string over plain HTTP, 64 hex digits over HTTPS
	MaxIDLen        = 256 // a file id (the apps use UUIDs)
	MaxFileNameLen  = 4096
	MaxFileTypeLen  = 255     // a MIME type
	MaxPreviewLen   = 1 << 20 // a text message's text
	MaxTimestampLen = 64      // metadata.modified, metadata.accessed
	MaxTokenLen     = 1024    // sessionId and file tokens in a PrepareUploadReply
	MaxErrorBytes   = 4 << 10 // a whole Error body (DecodeError)
	// MaxValueBytes caps the JSON of any one key or value in a
	// prepare-upload body or reply, but "files" (read entry by entry):
	// one file's entry, or an unknown field.
	MaxValueBytes = 2 << 20
)

// Info describes a device: the body of register (request and reply) and
// info, and the "info" of prepare-upload.
type Info struct {
	Alias   string `json:"alias"`
	Version string `json:"version"` // protocol version, "2.2"
	// DeviceModel is nil when the device sends none or null.
	DeviceModel *string `json:"deviceModel,omitempty"`
	// DeviceType is one of the Device constants as sent; "" when missing
	// or null. Use Type for the type to show.
	DeviceType string `json:"deviceType,omitempty"`
	// Fingerprint is the device's certificate fingerprint (Fingerprint)
	// over HTTPS, a random string over HTTP. A 2.2 receiver trusts the
	// certificate its peer presented, not this field.
	Fingerprint string `json:"fingerprint"`
	// Port and Protocol are 0 and "" in a register reply and info, which
	// leave them out.
	Port     uint16 `json:"port,omitempty"`
	Protocol string `json:"protocol,omitempty"` // ProtocolHTTP, ProtocolHTTPS or ""
	// Download says whether the device serves the download API.
	Download bool `json:"download"`
}

// Type is the device type to show: DeviceType if it is one of the Device
// constants, DeviceDesktop otherwise (the apps' rule).
func (i Info) Type() string {
	switch i.DeviceType {
	case DeviceMobile, DeviceDesktop, DeviceWeb, DeviceHeadless, DeviceServer:
		return i.DeviceType
	}
	return DeviceDesktop
}

// File is one entry a sender offers in prepare-upload.
type File struct {
	ID string `json:"id"` // unique in the request, equal to its key in PrepareUpload.Files
	// FileName is the name as sent: "/" separates folders ("dir/sub/x.txt").
	// The decoder does not judge whether it is safe to write.
	FileName string `json:"fileName"`
	Size     int64  `json:"size"`     // bytes, 0 to 2^63-1
	FileType string `json:"fileType"` // a MIME type ("image/jpeg"); old apps sent words ("image")
	// SHA256 is "" or 64 hex digits, which the decoder turns into lower case.
	SHA256 string `json:"sha256,omitempty"`
	// Preview is a text message's text (for a "text/plain" entry), or "".
	Preview  string    `json:"preview,omitempty"`
	Metadata *Metadata `json:"metadata,omitempty"`
}

// Metadata holds a file's times as RFC 3339 strings, as sent ("" when
// missing). They are not parsed: use ModifiedTime and AccessedTime.
type Metadata struct {
	Modified string `json:"modified,omitempty"`
	Accessed string `json:"accessed,omitempty"`
}

// ModifiedTime parses Modified; ok is false when m is nil or the time is
// missing or not RFC 3339 (the apps ignore such times too).
func (m *Metadata) ModifiedTime() (t time.Time, ok bool) {
	if m == nil {
		return time.Time{}, false
	}
	return parseTime(m.Modified)
}

// AccessedTime parses Accessed like ModifiedTime.
func (m *Metadata) AccessedTime() (t time.Time, ok bool) {
	if m == nil {
		return time.Time{}, false
	}
	return parseTime(m.Accessed)
}

func parseTime(s string) (time.Time, bool) {
	t, err := time.Parse(time.RFC3339Nano, s)
	return t, s != "" && err == nil
}

// FormatTime formats t as metadata times are sent (RFC 3339 in UTC, with
// nanoseconds when there are any).
func FormatTime(t time.Time) string { return t.UTC().Format(time.RFC3339Nano) }

// PrepareUpload is the body of prepare-upload.
type PrepareUpload struct {
	Info  Info            `json:"info"`
	Files map[string]File `json:"files"` // by File.ID; at least one
}

// PrepareUploadReply is the body of a 200 answer to prepare-upload: the
// session and a token for each accepted file (only those).
type PrepareUploadReply struct {
	SessionID string            `json:"sessionId"`
	Files     map[string]string `json:"files"` // file id → token
}

// Error is the body of an error answer.
type Error struct {
	Message string `json:"message"`
}

// Limits caps what DecodePrepareUpload and DecodePrepareUploadReply accept.
// A zero field means its default.
type Limits struct {
	// MaxBytes caps the body. Default DefaultMaxBytes.
	MaxBytes int64
	// MaxFiles caps the entries of "files". Default DefaultMaxFiles.
	MaxFiles int
}

// Default limits. The apps send about 340 to 370 bytes per file (a UUID
// as key and id, a short relative name, sha256 and both times): 100,000
// files, the lanshare protocol's MaxEntries, fit in 40 MiB. Under these
// defaults a decode allocates at most about 113 MiB (Limits.Memory), a
// third of peer.DefaultMemoryBudget; a receiver reserves Limits.Memory
// with MaxBytes lowered to the body's Content-Length, or passes lower
// limits.
const (
	DefaultMaxBytes = 40 << 20
	DefaultMaxFiles = 100_000
)

// fileCost is what a decoded file allocates beyond its strings' bytes,
// measured (TestDecodeMemoryWithinLimitsMemory) and rounded up: the File,
// its Metadata, its share of the map and of the map's growth, the
// decoder's boxes and small allocations.
const fileCost = int64(unsafe.Sizeof(File{})+unsafe.Sizeof(Metadata{})) + 512

// minFileJSON is the shortest file entry DecodePrepareUpload accepts,
// `"a":{"id":"a","fileName":"x","size":0}` and a comma: a body of n bytes
// holds at most n/minFileJSON files.
const minFileJSON = 39

// Memory is the most memory a DecodePrepareUpload under l allocates in
// all, so also the most it holds at once: a receiver reserves it from its
// memory budget before it decodes (with MaxBytes set to the body's
// Content-Length when it has one, which makes it much smaller). It counts
// every string and skipped value (at most the body's bytes), fileCost per
// file that fits, and the decoder's buffer (which grows, by doubling, to
// a few times MaxValueBytes at worst).
func (l Limits) Memory() int64 {
	l = l.withDefaults()
	files := min(int64(l.MaxFiles), l.MaxBytes/minFileJSON)
	return l.MaxBytes + files*fileCost + 6*MaxValueBytes + 64<<10
}

func (l Limits) withDefaults() Limits {
	if l.MaxBytes <= 0 {
		l.MaxBytes = DefaultMaxBytes
	}
	if l.MaxFiles <= 0 {
		l.MaxFiles = DefaultMaxFiles
	}
	return l
}
