package discovery

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/netip"
	"strings"
	"unicode/utf8"
)

// LocalSend's announcement, the JSON datagram its apps multicast to
// 224.0.0.167 / ff12::fd3a:e420, UDP port 53317, and POST as the body of
// /api/localsend/v2/register (without the announce flags):
//
//	{"alias":"Nice Orange","version":"2.2","deviceModel":"Pixel 9",
//	 "deviceType":"mobile","fingerprint":"3F2A…","port":53317,
//	 "protocol":"https","download":false,"announce":true}
//
// deviceModel and deviceType may be null or absent; download defaults to
// false. Apps up to 1.17 spell the flag "announcement" (protocol v1) as well
// as "announce"; a datagram with neither, or with false, is an answer to an
// announcement (apps up to 1.17 answer by multicast when /register fails).

// MaxLocalSendDatagram is the largest announcement ParseLocalSendAnnouncement
// decodes: real ones are about 250 bytes, and anything larger is dropped
// before the JSON decoder sees it.
const MaxLocalSendDatagram = 4096

// Caps on announcement fields, in bytes (fingerprint: characters, all
// ASCII).
const (
	MaxLocalSendAlias       = 256
	MaxLocalSendDeviceModel = 128
	MaxLocalSendVersion     = 16
	MaxLocalSendFingerprint = 128
)

// LocalSendVersion is the LocalSend protocol version we speak (apps 1.18).
const LocalSendVersion = "2.2"

// LocalSendDeviceType is what kind of device a LocalSend peer says it is.
type LocalSendDeviceType string

// The device types of LocalSend; ParseLocalSendAnnouncement maps a missing
// or unknown type to LocalSendDesktop, as the apps do.
const (
	LocalSendMobile   LocalSendDeviceType = "mobile"
	LocalSendDesktop  LocalSendDeviceType = "desktop"
	LocalSendWeb      LocalSendDeviceType = "web"
	LocalSendHeadless LocalSendDeviceType = "headless"
	LocalSendServer   LocalSendDeviceType = "server"
)

// LocalSendProtocol is the scheme of a LocalSend device's HTTP server.
type LocalSendProtocol string

// The two schemes a LocalSend server uses.
const (
	LocalSendHTTP  LocalSendProtocol = "http"
	LocalSendHTTPS LocalSendProtocol = "https"
)

// LocalSendAnnouncement is one LocalSend announcement (or /register body).
// The zero value is not valid: Alias, Fingerprint, Port and Protocol are
// required.
type LocalSendAnnouncement struct {
	Alias   string
	Version string // "2.2"; "1.0" when a datagram has none
	// DeviceModel is "" when the device sent null or nothing ("Samsung",
	// "Windows", "Linux" otherwise).
	DeviceModel string
	DeviceType  LocalSendDeviceType
	// Fingerprint identifies the device: for HTTPS, the SHA-256 of its
	// certificate's DER bytes in hex (upper-case from the apps); for plain
	// HTTP, a random string.
	Fingerprint string
	Port        uint16 // of its HTTP(S) server, not necessarily 53317
	Protocol    LocalSendProtocol
	Download    bool // its download API (share via link) is on
	// Announce is true for an announcement, which asks every device that
	// hears it to answer (by POST /register, or, up to app 1.17, by a
	// multicast datagram with Announce false); false for such an answer.
	Announce bool
}

// lsWire is the JSON form. Pointers tell missing from zero.
type lsWire struct {
	Alias        *string `json:"alias"`
	Version      *string `json:"version"`
	DeviceModel  *string `json:"deviceModel"`
	DeviceType   *string `json:"deviceType"`
	Fingerprint  *string `json:"fingerprint"`
	Port         *int    `json:"port"`
	Protocol     *string `json:"protocol"`
	Download     *bool   `json:"download"`
	Announce     *bool   `json:"announce"`
	Announcement *bool   `json:"announcement"`
}

// ParseLocalSendAnnouncement decodes and checks one LocalSend announcement
// datagram (or /register body). It refuses, with an error wrapping
// ErrMalformedAnnouncement, anything over MaxLocalSendDatagram bytes
// (before decoding), bytes that are not UTF-8, JSON that is not one object
// of the right field types, and fields that Validate refuses. A missing or
// unknown deviceType becomes LocalSendDesktop, a missing version "1.0";
// unknown fields are ignored. Announce is true if "announce" or
// "announcement" is. b is not retained.
func ParseLocalSendAnnouncement(b []byte) (LocalSendAnnouncement, error) {
	bad := func(format string, args ...any) (LocalSendAnnouncement, error) {
		return LocalSendAnnouncement{}, fmt.Errorf("%w: %s", ErrMalformedAnnouncement, fmt.Sprintf(format, args...))
	}
	if len(b) > MaxLocalSendDatagram {
		return bad("%d bytes, more than %d", len(b), MaxLocalSendDatagram)
	}
	if !utf8.Valid(b) {
		return bad("not UTF-8")
	}
	var w lsWire
	if err := json.Unmarshal(b, &w); err != nil {
		return bad("%v", err)
	}
	switch {
	case w.Alias == nil:
		return bad("no alias")
	case w.Fingerprint == nil:
		return bad("no fingerprint")
	case w.Port == nil:
		return bad("no port")
	case w.Protocol == nil:
		return bad("no protocol")
	case *w.Port < 1 || *w.Port > 65535:
		return bad("port %d out of range 1-65535", *w.Port)
	}
	a := LocalSendAnnouncement{
		Alias:       *w.Alias,
		Version:     "1.0",
		Fingerprint: *w.Fingerprint,
		Port:        uint16(*w.Port),
		Protocol:    LocalSendProtocol(*w.Protocol),
		DeviceType:  LocalSendDesktop,
		Announce:    (w.Announce != nil && *w.Announce) || (w.Announcement != nil && *w.Announcement),
	}
	if w.Version != nil {
		a.Version = *w.Version
	}
	if w.DeviceModel != nil {
		a.DeviceModel = *w.DeviceModel
	}
	if w.DeviceType != nil {
		a.DeviceType = parseDeviceType(*w.DeviceType)
	}
	if w.Download != nil {
		a.Download = *w.Download
	}
	if err := a.Validate(); err != nil {
		return LocalSendAnnouncement{}, err
	}
	return a, nil
}

func parseDeviceType(s string) LocalSendDeviceType {
	if len(s) > 16 {
		return LocalSendDesktop
	}
	switch t := LocalSendDeviceType(strings.ToLower(s)); t {
	case LocalSendMobile, LocalSendDesktop, LocalSendWeb, LocalSendHeadless, LocalSendServer:
		return t
	}
	return LocalSendDesktop
}

// Validate reports the first problem with a, wrapping
// ErrMalformedAnnouncement: an Alias that is empty, longer than
// MaxLocalSendAlias bytes or not displayable text (see below); a Version
// longer than MaxLocalSendVersion or not of [0-9A-Za-z.-]; a DeviceModel
// over MaxLocalSendDeviceModel bytes or not displayable; a DeviceType not
// among the five; a Fingerprint that is empty, longer than
// MaxLocalSendFingerprint, not hex for HTTPS or not of [0-9A-Za-z_-] for
// HTTP; a zero Port; a Protocol other than http or https. Displayable text
// is UTF-8 without control characters (C0, DEL, C1), bidirectional
// embeddings, overrides and isolates, or line and paragraph separators,
// so an alias cannot rewrite a terminal line or spoof another.
func (a LocalSendAnnouncement) Validate() error {
	bad := func(format string, args ...any) error {
		return fmt.Errorf("%w: %s", ErrMalformedAnnouncement, fmt.Sprintf(format, args...))
	}
	switch {
	case a.Alias == "":
		return bad("empty alias")
	case len(a.Alias) > MaxLocalSendAlias:
		return bad("alias of %d bytes, more than %d", len(a.Alias), MaxLocalSendAlias)
	case !displayable(a.Alias):
		return bad("alias %q is not displayable text", a.Alias)
	case a.Version == "" || len(a.Version) > MaxLocalSendVersion || !allBytes(a.Version, isVersionByte):
		return bad("version %q: want 1-%d of [0-9A-Za-z.-]", a.Version, MaxLocalSendVersion)
	case len(a.DeviceModel) > MaxLocalSendDeviceModel:
		return bad("device model of %d bytes, more than %d", len(a.DeviceModel), MaxLocalSendDeviceModel)
	case !displayable(a.DeviceModel):
		return bad("device model %q is not displayable text", a.DeviceModel)
	case parseDeviceType(string(a.DeviceType)) != a.DeviceType:
		return bad("device type %q", a.DeviceType)
	case a.Fingerprint == "" || len(a.Fingerprint) > MaxLocalSendFingerprint:
		return bad("fingerprint of %d characters: want 1-%d", len(a.Fingerprint), MaxLocalSendFingerprint)
	case a.Port == 0:
		return bad("port 0")
	}
	switch a.Protocol {
	case LocalSendHTTPS:
		if !allBytes(a.Fingerprint, isHexByte) {
			return bad("fingerprint %q of an https device is not hex", a.Fingerprint)
		}
	case LocalSendHTTP:
		if !allBytes(a.Fingerprint, isTokenByte) {
			return bad("fingerprint %q: want [0-9A-Za-z_-]", a.Fingerprint)
		}
	default:
		return bad("protocol %q: want http or https", a.Protocol)
	}
	return nil
}

// lsWireOut is what Marshal writes, in this order. Both flag spellings go
// out, for apps that read only the v1 one.
type lsWireOut struct {
	Alias        string              `json:"alias"`
	Version      string              `json:"version"`
	DeviceModel  *string             `json:"deviceModel,omitempty"`
	DeviceType   LocalSendDeviceType `json:"deviceType"`
	Fingerprint  string              `json:"fingerprint"`
	Port         uint16              `json:"port"`
	Protocol     LocalSendProtocol   `json:"protocol"`
	Download     bool                `json:"download"`
	Announce     bool                `json:"announce"`
	Announcement bool                `json:"announcement"`
}

// Marshal returns a as one datagram, after Validate (whose error it
// returns). An empty DeviceModel is left out, as app 1.18 does; the flag
// goes out as both "announce" and "announcement". The result is at most
// MaxLocalSendDatagram bytes and parses back to a.
func (a LocalSendAnnouncement) Marshal() ([]byte, error) {
	if err := a.Validate(); err != nil {
		return nil, err
	}
	out := lsWireOut{
		Alias: a.Alias, Version: a.Version, DeviceType: a.DeviceType, Fingerprint: a.Fingerprint,
		Port: a.Port, Protocol: a.Protocol, Download: a.Download, Announce: a.Announce, Announcement: a.Announce,
	}
	if a.DeviceModel != "" {
		out.DeviceModel = &a.DeviceModel
	}
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(out); err != nil {
		return nil, fmt.Errorf("encoding announcement: %w", err)
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n")), nil
}

// Device returns the device a describes, whose server is at addr (the
// source address of its datagram or request) on a's port. LastSeen and
// Iface are left zero.
func (a LocalSendAnnouncement) Device(addr netip.Addr) LocalSendDevice {
	return LocalSendDevice{
		Alias: a.Alias, Version: a.Version, DeviceModel: a.DeviceModel, DeviceType: a.DeviceType,
		Fingerprint: a.Fingerprint, Addr: netip.AddrPortFrom(addr.Unmap(), a.Port),
		Protocol: a.Protocol, Download: a.Download,
	}
}

// displayable reports whether s is UTF-8 without control characters,
// bidirectional controls or line separators (see Validate).
func displayable(s string) bool {
	if !utf8.ValidString(s) {
		return false
	}
	for _, r := range s {
		switch {
		case r < 0x20, r >= 0x7f && r < 0xa0:
			return false
		case r >= 0x202a && r <= 0x202e, r >= 0x2066 && r <= 0x2069, r == 0x2028, r == 0x2029:
			return false
		}
	}
	return true
}

func allBytes(s string, ok func(byte) bool) bool {
	for i := 0; i < len(s); i++ {
		if !ok(s[i]) {
			return false
		}
	}
	return true
}

func isHexByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'f' || 'A' <= c && c <= 'F'
}

func isAlnumByte(c byte) bool {
	return '0' <= c && c <= '9' || 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z'
}

func isTokenByte(c byte) bool { return isAlnumByte(c) || c == '-' || c == '_' }

func isVersionByte(c byte) bool { return isAlnumByte(c) || c == '.' || c == '-' }
