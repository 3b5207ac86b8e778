package lsdouble

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
)

// Version is the protocol version the double speaks and announces.
const Version = "2.2"

// API paths of protocol v2 (the v1 info path is still answered by 1.18).
const (
	PathInfo          = "/api/localsend/v2/info"
	PathInfoV1        = "/api/localsend/v1/info"
	PathRegister      = "/api/localsend/v2/register"
	PathPrepareUpload = "/api/localsend/v2/prepare-upload"
	PathUpload        = "/api/localsend/v2/upload"
	PathCancel        = "/api/localsend/v2/cancel"
)

// PeerInfo is a device description as it travels in announcements,
// /register bodies and answers, prepare-upload's "info" and /info.
type PeerInfo struct {
	Alias       string
	Version     string
	DeviceModel *string // nil: null or absent
	DeviceType  string  // as sent ("" when absent or null); unknown values mean desktop
	Fingerprint string
	Port        int    // 0 where the message has no port (register answer, /info)
	Protocol    string // "http" or "https"; "" where the message has none
	Download    bool
}

// wireInfo encodes a PeerInfo as the app's RegisterDtoV2/MulticastMessageV2:
// deviceModel and deviceType are left out when unset.
type wireInfo struct {
	Alias       string  `json:"alias"`
	Version     string  `json:"version"`
	DeviceModel *string `json:"deviceModel,omitempty"`
	DeviceType  string  `json:"deviceType,omitempty"`
	Fingerprint string  `json:"fingerprint"`
	Port        int     `json:"port"`
	Protocol    string  `json:"protocol"`
	Download    bool    `json:"download"`
}

// wireInfoAnswer is RegisterResponseDtoV2 and InfoResponseDtoV2: no port,
// no protocol.
type wireInfoAnswer struct {
	Alias       string  `json:"alias"`
	Version     string  `json:"version"`
	DeviceModel *string `json:"deviceModel,omitempty"`
	DeviceType  string  `json:"deviceType,omitempty"`
	Fingerprint string  `json:"fingerprint"`
	Download    bool    `json:"download"`
}

// wireAnnouncement is the multicast datagram: 1.18 sends the info plus
// "announce" (true); 1.17 and older also "announcement" (v1 spelling), and
// answer with both false.
type wireAnnouncement struct {
	wireInfo
	Announcement *bool `json:"announcement,omitempty"`
	Announce     bool  `json:"announce"`
}

func (p PeerInfo) wire() wireInfo { return wireInfo(p) }

func (p PeerInfo) answer() wireInfoAnswer {
	return wireInfoAnswer{Alias: p.Alias, Version: p.Version, DeviceModel: p.DeviceModel, DeviceType: p.DeviceType,
		Fingerprint: p.Fingerprint, Download: p.Download}
}

// WireFile is one entry of prepare-upload's "files" map (the app's FileDto).
// Senders may edit it through SendOptions.EditFile to lie.
type WireFile struct {
	ID       string        `json:"id"`
	FileName string        `json:"fileName"`
	Size     int64         `json:"size"`
	FileType string        `json:"fileType"`
	SHA256   *string       `json:"sha256,omitempty"`
	Preview  *string       `json:"preview,omitempty"`
	Metadata *WireMetadata `json:"metadata,omitempty"`
}

// WireMetadata holds the optional ISO 8601 timestamps of protocol 2.1.
type WireMetadata struct {
	Modified *string `json:"modified,omitempty"`
	Accessed *string `json:"accessed,omitempty"`
}

type wirePrepareRequest struct {
	Info  wireInfo            `json:"info"`
	Files map[string]WireFile `json:"files"`
}

type wirePrepareResponse struct {
	SessionID string            `json:"sessionId"`
	Files     map[string]string `json:"files"`
}

type wireError struct {
	Message string `json:"message"`
}

// errBadJSON is what the strict decoders return; the receiver answers it with
// 400 "Invalid JSON body", as the app does for any serde error.
var errBadJSON = errors.New("invalid JSON body")

// object is a JSON object whose members are decoded one by one, so that
// names are matched case-sensitively and presence, null and type are
// checked the way serde checks them (encoding/json alone matches names
// case-insensitively and turns null into zero values).
type object map[string]json.RawMessage

func decodeObject(b []byte) (object, error) {
	b = bytes.TrimSpace(b)
	if len(b) == 0 || b[0] != '{' {
		return nil, fmt.Errorf("%w: not an object", errBadJSON)
	}
	var o object
	if err := json.Unmarshal(b, &o); err != nil {
		return nil, fmt.Errorf("%w: %v", errBadJSON, err)
	}
	return o, nil
}

func isNull(r json.RawMessage) bool { return string(bytes.TrimSpace(r)) == "null" }

// str decodes a string member. A required member must be present and not
// null; an optional one may be absent or null (ok false then).
func (o object) str(key string, required bool) (s string, ok bool, err error) {
	r, present := o[key]
	if !present || isNull(r) {
		if required {
			return "", false, fmt.Errorf("%w: %q missing", errBadJSON, key)
		}
		return "", false, nil
	}
	if err := json.Unmarshal(r, &s); err != nil {
		return "", false, fmt.Errorf("%w: %q: %v", errBadJSON, key, err)
	}
	return s, true, nil
}

// optStr is str for an Option<String>.
func (o object) optStr(key string) (*string, error) {
	s, ok, err := o.str(key, false)
	if err != nil || !ok {
		return nil, err
	}
	return &s, nil
}

// unsigned decodes an integer member in [0, max] (u16 or u64 in the app).
func (o object) unsigned(key string, max uint64, required bool) (uint64, bool, error) {
	r, present := o[key]
	if !present {
		if required {
			return 0, false, fmt.Errorf("%w: %q missing", errBadJSON, key)
		}
		return 0, false, nil
	}
	var v uint64
	if err := json.Unmarshal(r, &v); err != nil || isNull(r) {
		return 0, false, fmt.Errorf("%w: %q is not an unsigned integer", errBadJSON, key)
	}
	if v > max {
		return 0, false, fmt.Errorf("%w: %q out of range", errBadJSON, key)
	}
	return v, true, nil
}

// boolean decodes a #[serde(default)] bool: absent is false, null is an
// error.
func (o object) boolean(key string) (v bool, present bool, err error) {
	r, ok := o[key]
	if !ok {
		return false, false, nil
	}
	if isNull(r) {
		return false, true, fmt.Errorf("%w: %q is null", errBadJSON, key)
	}
	if err := json.Unmarshal(r, &v); err != nil {
		return false, true, fmt.Errorf("%w: %q: %v", errBadJSON, key, err)
	}
	return v, true, nil
}

// parseInfo decodes RegisterDtoV2 (full true: port and protocol required, as
// in /register, prepare-upload's info and announcements) or
// RegisterResponseDtoV2 (full false: only alias and version required).
func parseInfo(o object, full bool) (PeerInfo, error) {
	var p PeerInfo
	var err error
	if p.Alias, _, err = o.str("alias", true); err != nil {
		return p, err
	}
	if p.Version, _, err = o.str("version", true); err != nil {
		return p, err
	}
	if p.DeviceModel, err = o.optStr("deviceModel"); err != nil {
		return p, err
	}
	if p.DeviceType, _, err = o.str("deviceType", false); err != nil {
		return p, err
	}
	if p.Fingerprint, _, err = o.str("fingerprint", full); err != nil {
		return p, err
	}
	if p.Download, _, err = o.boolean("download"); err != nil {
		return p, err
	}
	if !full {
		return p, nil
	}
	port, _, err := o.unsigned("port", 65535, true)
	if err != nil {
		return p, err
	}
	p.Port = int(port)
	if p.Protocol, _, err = o.str("protocol", true); err != nil {
		return p, err
	}
	if p.Protocol != "http" && p.Protocol != "https" {
		return p, fmt.Errorf("%w: protocol %q", errBadJSON, p.Protocol)
	}
	return p, nil
}

// ParseInfo decodes a /register body or an announcement as strictly as the
// app does (ParseAnswer decodes a /register answer or /info).
func ParseInfo(b []byte) (PeerInfo, error) {
	o, err := decodeObject(b)
	if err != nil {
		return PeerInfo{}, err
	}
	return parseInfo(o, true)
}

// ParseAnswer decodes a /register answer or an /info body.
func ParseAnswer(b []byte) (PeerInfo, error) {
	o, err := decodeObject(b)
	if err != nil {
		return PeerInfo{}, err
	}
	return parseInfo(o, false)
}

// OfferedFile is one file of a prepare-upload request, as the receiver
// decoded it.
type OfferedFile struct {
	ID       string // the key in the "files" map (what tokens and uploads use)
	DTOID    string // the "id" member, which the app does not check against the key
	FileName string
	Size     int64
	FileType string
	SHA256   *string
	Preview  *string
	Modified *string
	Accessed *string
}

func parseFile(key string, r json.RawMessage) (OfferedFile, error) {
	f := OfferedFile{ID: key}
	o, err := decodeObject(r)
	if err != nil {
		return f, err
	}
	if f.DTOID, _, err = o.str("id", true); err != nil {
		return f, err
	}
	if f.FileName, _, err = o.str("fileName", true); err != nil {
		return f, err
	}
	size, _, err := o.unsigned("size", 1<<63-1, true)
	if err != nil {
		return f, err
	}
	f.Size = int64(size)
	if f.FileType, _, err = o.str("fileType", true); err != nil {
		return f, err
	}
	if f.SHA256, err = o.optStr("sha256"); err != nil {
		return f, err
	}
	if f.Preview, err = o.optStr("preview"); err != nil {
		return f, err
	}
	if m, ok := o["metadata"]; ok && !isNull(m) {
		mo, err := decodeObject(m)
		if err != nil {
			return f, err
		}
		if f.Modified, err = mo.optStr("modified"); err != nil {
			return f, err
		}
		if f.Accessed, err = mo.optStr("accessed"); err != nil {
			return f, err
		}
	}
	return f, nil
}

// parsePrepare decodes PrepareUploadRequestDtoV2. Files come back sorted by
// id.
func parsePrepare(b []byte) (PeerInfo, []OfferedFile, error) {
	o, err := decodeObject(b)
	if err != nil {
		return PeerInfo{}, nil, err
	}
	ir, ok := o["info"]
	if !ok {
		return PeerInfo{}, nil, fmt.Errorf("%w: \"info\" missing", errBadJSON)
	}
	infoObj, err := decodeObject(ir)
	if err != nil {
		return PeerInfo{}, nil, err
	}
	info, err := parseInfo(infoObj, true)
	if err != nil {
		return info, nil, err
	}
	fr, ok := o["files"]
	if !ok {
		return info, nil, fmt.Errorf("%w: \"files\" missing", errBadJSON)
	}
	fo, err := decodeObject(fr)
	if err != nil {
		return info, nil, err
	}
	files := make([]OfferedFile, 0, len(fo))
	for k, r := range fo {
		f, err := parseFile(k, r)
		if err != nil {
			return info, nil, err
		}
		files = append(files, f)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].ID < files[j].ID })
	return info, files, nil
}

// isMessage reports whether an offer is a text message as the app sees it
// (ReceiveSessionState.message): exactly one file, a text/* MIME type, and a
// preview.
func isMessage(files []OfferedFile) (string, bool) {
	if len(files) != 1 || !strings.HasPrefix(files[0].FileType, "text/") || files[0].Preview == nil {
		return "", false
	}
	return *files[0].Preview, true
}
