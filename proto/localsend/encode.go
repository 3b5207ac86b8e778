package localsend

import (
	"bytes"
	"encoding/json"
	"fmt"
	"io"
	"strings"
)

// EncodeInfo writes info as a JSON body to w, after the checks DecodeInfo
// makes.
func EncodeInfo(w io.Writer, info Info) error {
	if err := checkInfo(info); err != nil {
		return fmt.Errorf("writing info: %w", err)
	}
	return encode(w, "info", info)
}

// EncodePrepareUpload writes pu as a JSON body to w, after the checks
// DecodePrepareUpload makes of each file (but not its caps on the body and
// the count of files, which are the receiver's).
func EncodePrepareUpload(w io.Writer, pu PrepareUpload) error {
	if err := checkInfo(pu.Info); err != nil {
		return fmt.Errorf("writing prepare-upload: %w", err)
	}
	if len(pu.Files) == 0 {
		return fmt.Errorf("writing prepare-upload: no files: %w", ErrMalformed)
	}
	for id, f := range pu.Files {
		err := checkID(id)
		if err == nil && f.ID != id {
			err = fmt.Errorf("id %.40q under the key %.40q: %w", f.ID, id, ErrMalformed)
		}
		if err == nil {
			err = checkFile(f)
		}
		if err != nil {
			return fmt.Errorf("writing prepare-upload: file %.40q: %w", id, err)
		}
	}
	return encode(w, "prepare-upload", pu)
}

// EncodePrepareUploadReply writes rep as a JSON body to w, after the
// checks DecodePrepareUploadReply makes (but not its caps on the body and
// the count of files).
func EncodePrepareUploadReply(w io.Writer, rep PrepareUploadReply) error {
	err := checkToken("sessionId", rep.SessionID)
	for id, token := range rep.Files {
		if err != nil {
			break
		}
		if err = checkID(id); err == nil {
			err = checkToken("token", token)
		}
	}
	if err != nil {
		return fmt.Errorf("writing prepare-upload reply: %w", err)
	}
	if rep.Files == nil {
		rep.Files = map[string]string{} // "files": {} rather than null
	}
	return encode(w, "prepare-upload reply", rep)
}

// EncodeError writes e as a JSON body to w; a message over MaxErrorBytes
// (with its JSON around it) is cut at a character boundary.
func EncodeError(w io.Writer, e Error) error {
	const room = MaxErrorBytes/6 - 32 // every byte may take 6 as \u00XX
	if len(e.Message) > room {
		cut := room
		for cut > 0 && !isRuneStart(e.Message[cut]) {
			cut--
		}
		e.Message = e.Message[:cut]
	}
	e.Message = strings.ToValidUTF8(e.Message, "\uFFFD")
	return encode(w, "error", e)
}

func isRuneStart(b byte) bool { return b&0xC0 != 0x80 }

func encode(w io.Writer, what string, v any) error {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	if _, err := w.Write(buf.Bytes()); err != nil {
		return fmt.Errorf("writing %s: %w", what, err)
	}
	return nil
}

func checkInfo(i Info) error {
	for _, f := range []struct {
		name string
		s    string
		max  int
	}{
		{"alias", i.Alias, MaxAliasLen},
		{"version", i.Version, MaxVersionLen},
		{"deviceType", i.DeviceType, MaxTypeLen},
		{"fingerprint", i.Fingerprint, MaxFingerprint},
	} {
		if len(f.s) > f.max {
			return fmt.Errorf("%s of %d bytes (max %d): %w", f.name, len(f.s), f.max, ErrTooLarge)
		}
	}
	if i.DeviceModel != nil && len(*i.DeviceModel) > MaxModelLen {
		return fmt.Errorf("deviceModel of %d bytes (max %d): %w", len(*i.DeviceModel), MaxModelLen, ErrTooLarge)
	}
	switch i.Protocol {
	case "", ProtocolHTTP, ProtocolHTTPS:
	default:
		return fmt.Errorf("protocol %.20q: %w", i.Protocol, ErrMalformed)
	}
	return nil
}

func checkID(id string) error {
	switch {
	case id == "":
		return fmt.Errorf("empty file id: %w", ErrMalformed)
	case len(id) > MaxIDLen:
		return fmt.Errorf("file id of %d bytes (max %d): %w", len(id), MaxIDLen, ErrTooLarge)
	}
	return nil
}

func checkToken(what, t string) error {
	switch {
	case t == "":
		return fmt.Errorf("empty %s: %w", what, ErrMalformed)
	case len(t) > MaxTokenLen:
		return fmt.Errorf("%s of %d bytes (max %d): %w", what, len(t), MaxTokenLen, ErrTooLarge)
	}
	return nil
}

func checkFile(f File) error {
	switch {
	case f.FileName == "":
		return fmt.Errorf("empty fileName: %w", ErrMalformed)
	case len(f.FileName) > MaxFileNameLen:
		return fmt.Errorf("fileName of %d bytes (max %d): %w", len(f.FileName), MaxFileNameLen, ErrTooLarge)
	case f.Size < 0:
		return fmt.Errorf("negative size %d: %w", f.Size, ErrMalformed)
	case len(f.FileType) > MaxFileTypeLen:
		return fmt.Errorf("fileType of %d bytes (max %d): %w", len(f.FileType), MaxFileTypeLen, ErrTooLarge)
	case f.SHA256 != "" && !isHex64(f.SHA256):
		return fmt.Errorf("sha256 %.70q is not 64 hex digits: %w", f.SHA256, ErrMalformed)
	case len(f.Preview) > MaxPreviewLen:
		return fmt.Errorf("preview of %d bytes (max %d): %w", len(f.Preview), MaxPreviewLen, ErrTooLarge)
	case f.Metadata != nil && (len(f.Metadata.Modified) > MaxTimestampLen || len(f.Metadata.Accessed) > MaxTimestampLen):
		return fmt.Errorf("metadata time over %d bytes: %w", MaxTimestampLen, ErrTooLarge)
	}
	return nil
}

func isHex64(s string) bool {
	if len(s) != 64 {
		return false
	}
	for i := 0; i < len(s); i++ {
		if hexVal(s[i]) < 0 {
			return false
		}
	}
	return true
}

func hexVal(c byte) int {
	switch {
	case '0' <= c && c <= '9':
		return int(c - '0')
	case 'a' <= c && c <= 'f':
		return int(c-'a') + 10
	case 'A' <= c && c <= 'F':
		return int(c-'A') + 10
	}
	return -1
}

// lowerHex lower-cases the ASCII letters of s.
func lowerHex(s string) string {
	b := []byte(s)
	for i, c := range b {
		if 'A' <= c && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}
