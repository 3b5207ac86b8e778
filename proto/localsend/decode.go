package localsend

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math"
	"strconv"
	"unicode/utf8"
)

// DecodeInfo reads an Info body (register request or reply, info) of at
// most MaxInfoBytes from r, and checks it: field caps, port 0–65535,
// protocol "http", "https" or missing. It reads r up to the end of the
// body (one byte past the cap at most).
func DecodeInfo(r io.Reader) (Info, error) {
	var info Info
	err := decodeWhole(r, MaxInfoBytes, "info", func(raw []byte) error {
		var err error
		info, err = parseInfo(raw)
		return err
	})
	return info, err
}

// DecodeError reads an Error body of at most MaxErrorBytes from r.
func DecodeError(r io.Reader) (Error, error) {
	var e Error
	err := decodeWhole(r, MaxErrorBytes, "error", func(raw []byte) error {
		return unmarshal(raw, &e)
	})
	return e, err
}

// decodeWhole reads one JSON value of at most max bytes from r and hands
// it to parse.
func decodeWhole(r io.Reader, max int64, what string, parse func([]byte) error) error {
	br := newBodyReader(r, max)
	dec := json.NewDecoder(br)
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return br.wrap("reading "+what, err)
	}
	if err := expectEnd(dec, br); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	if raw[0] != '{' {
		return fmt.Errorf("reading %s: %.20s is not an object: %w", what, raw, ErrMalformed)
	}
	if err := parse(raw); err != nil {
		return fmt.Errorf("reading %s: %w", what, err)
	}
	return nil
}

// DecodePrepareUpload reads a prepare-upload body from r under lim (zero
// fields: defaults) and checks every file: id non-empty, at most MaxIDLen,
// equal to its key and not given twice; fileName non-empty and at most
// MaxFileNameLen; size an integer from 0 to 2^63-1, and the sizes' sum too;
// sha256 missing or 64 hex digits (returned in lower case); preview at most
// MaxPreviewLen; at least one file. It streams: what it holds is the decoded
// request plus one file's JSON, never the whole body (see Limits.Memory).
// It reads r up to the end of the body (one byte past lim.MaxBytes at most).
func DecodePrepareUpload(r io.Reader, lim Limits) (PrepareUpload, error) {
	lim = lim.withDefaults()
	br := newBodyReader(r, lim.MaxBytes)
	dec := json.NewDecoder(br)
	var (
		pu                  PrepareUpload
		haveInfo, haveFiles bool
	)
	err := decodeObject(dec, br, func(key string) error {
		switch key {
		case "info":
			if haveInfo {
				return fmt.Errorf("info given twice: %w", ErrMalformed)
			}
			haveInfo = true
			br.window(dec, MaxInfoBytes)
			var raw json.RawMessage
			if err := dec.Decode(&raw); err != nil {
				return br.wrap("info", err)
			}
			if raw[0] != '{' {
				return fmt.Errorf("info %.20s is not an object: %w", raw, ErrMalformed)
			}
			var err error
			pu.Info, err = parseInfo(raw)
			return err
		case "files":
			if haveFiles {
				return fmt.Errorf("files given twice: %w", ErrMalformed)
			}
			haveFiles = true
			var err error
			pu.Files, err = decodeFiles(dec, br, lim.MaxFiles)
			return err
		}
		return skipValue(dec, br)
	})
	if err != nil {
		return PrepareUpload{}, fmt.Errorf("reading prepare-upload: %w", err)
	}
	switch {
	case !haveInfo:
		err = fmt.Errorf("no info: %w", ErrMalformed)
	case len(pu.Files) == 0:
		err = fmt.Errorf("no files: %w", ErrMalformed)
	}
	if err != nil {
		return PrepareUpload{}, fmt.Errorf("reading prepare-upload: %w", err)
	}
	return pu, nil
}

// wireFile is File as it arrives: size is kept raw so that only a JSON
// integer is taken (encoding/json would take 1e3, or "5" into a
// json.Number).
type wireFile struct {
	ID       string          `json:"id"`
	FileName string          `json:"fileName"`
	Size     json.RawMessage `json:"size"`
	FileType string          `json:"fileType"`
	SHA256   string          `json:"sha256"`
	Preview  string          `json:"preview"`
	Metadata *Metadata       `json:"metadata"`
}

func decodeFiles(dec *json.Decoder, br *bodyReader, maxFiles int) (map[string]File, error) {
	files := map[string]File{}
	var total int64
	err := decodeObject(dec, br, func(id string) error {
		if len(files) >= maxFiles {
			return fmt.Errorf("more than %d files: %w", maxFiles, ErrTooLarge)
		}
		if err := checkID(id); err != nil {
			return err
		}
		if _, dup := files[id]; dup {
			return fmt.Errorf("file id %.40q given twice: %w", id, ErrMalformed)
		}
		var w wireFile
		if err := dec.Decode(&w); err != nil {
			return br.wrap(fmt.Sprintf("file %.40q", id), err)
		}
		f, err := w.file()
		if err == nil && f.ID != id {
			err = fmt.Errorf("id %.40q under the key %.40q: %w", f.ID, id, ErrMalformed)
		}
		if err != nil {
			return fmt.Errorf("file %.40q: %w", id, err)
		}
		if f.Size > math.MaxInt64-total {
			return fmt.Errorf("sizes add up to more than 2^63-1 bytes: %w", ErrTooLarge)
		}
		total += f.Size
		files[id] = f
		return nil
	})
	return files, err
}

func (w *wireFile) file() (File, error) {
	f := File{ID: w.ID, FileName: w.FileName, FileType: w.FileType,
		SHA256: w.SHA256, Preview: w.Preview, Metadata: w.Metadata}
	size, err := parseSize(w.Size)
	if err != nil {
		return File{}, err
	}
	f.Size = size
	if len(f.SHA256) == 64 {
		f.SHA256 = lowerHex(f.SHA256)
	}
	return f, checkFile(f)
}

// parseSize takes a JSON integer from 0 to 2^63-1.
func parseSize(raw json.RawMessage) (int64, error) {
	switch {
	case raw == nil || string(raw) == "null":
		return 0, fmt.Errorf("no size: %w", ErrMalformed)
	case raw[0] == '-':
		return 0, fmt.Errorf("negative size %.30s: %w", raw, ErrMalformed)
	case raw[0] < '0' || raw[0] > '9' || bytes.ContainsAny(raw, ".eE"):
		return 0, fmt.Errorf("size %.30s is not an integer: %w", raw, ErrMalformed)
	}
	n, err := strconv.ParseInt(string(raw), 10, 64)
	if err != nil {
		return 0, fmt.Errorf("size %.30s over 2^63-1: %w", raw, ErrTooLarge)
	}
	return n, nil
}

// DecodePrepareUploadReply reads the body of a 200 answer to prepare-upload
// from r under lim (zero fields: defaults): sessionId and every token
// non-empty and at most MaxTokenLen, ids as in DecodePrepareUpload. Whether
// the ids are ones the caller offered is the caller's to check.
func DecodePrepareUploadReply(r io.Reader, lim Limits) (PrepareUploadReply, error) {
	lim = lim.withDefaults()
	br := newBodyReader(r, lim.MaxBytes)
	dec := json.NewDecoder(br)
	var (
		rep       PrepareUploadReply
		haveFiles bool
	)
	err := decodeObject(dec, br, func(key string) error {
		switch key {
		case "sessionId":
			if rep.SessionID != "" {
				return fmt.Errorf("sessionId given twice: %w", ErrMalformed)
			}
			if err := decodeString(dec, br, "sessionId", MaxTokenLen, &rep.SessionID); err != nil {
				return err
			}
			if rep.SessionID == "" {
				return fmt.Errorf("empty sessionId: %w", ErrMalformed)
			}
			return nil
		case "files":
			if haveFiles {
				return fmt.Errorf("files given twice: %w", ErrMalformed)
			}
			haveFiles = true
			rep.Files = map[string]string{}
			return decodeObject(dec, br, func(id string) error {
				if len(rep.Files) >= lim.MaxFiles {
					return fmt.Errorf("more than %d files: %w", lim.MaxFiles, ErrTooLarge)
				}
				if err := checkID(id); err != nil {
					return err
				}
				if _, dup := rep.Files[id]; dup {
					return fmt.Errorf("file id %.40q given twice: %w", id, ErrMalformed)
				}
				var token string
				if err := decodeString(dec, br, "token", MaxTokenLen, &token); err != nil {
					return fmt.Errorf("file %.40q: %w", id, err)
				}
				if token == "" {
					return fmt.Errorf("file %.40q: empty token: %w", id, ErrMalformed)
				}
				rep.Files[id] = token
				return nil
			})
		}
		return skipValue(dec, br)
	})
	if err == nil && (rep.SessionID == "" || !haveFiles) {
		err = fmt.Errorf("no sessionId or no files: %w", ErrMalformed)
	}
	if err != nil {
		return PrepareUploadReply{}, fmt.Errorf("reading prepare-upload reply: %w", err)
	}
	return rep, nil
}

// decodeObject reads a whole JSON object with dec and calls field for
// each key, with dec positioned before the key's value, which field must
// consume. Keys are matched exactly. It checks that nothing but white
// space follows the object when it is the top-level value (dec's first).
func decodeObject(dec *json.Decoder, br *bodyReader, field func(key string) error) error {
	top := dec.InputOffset() == 0
	if err := expectDelim(dec, br, '{'); err != nil {
		return err
	}
	for {
		br.window(dec, MaxValueBytes)
		if !dec.More() {
			break
		}
		tok, err := dec.Token()
		if err != nil {
			return br.wrap("reading a key", err)
		}
		key, ok := tok.(string)
		if !ok { // json.Decoder reports non-string keys as syntax errors; be safe
			return fmt.Errorf("key %v: %w", tok, ErrMalformed)
		}
		br.window(dec, MaxValueBytes)
		if err := field(key); err != nil {
			return err
		}
	}
	if err := expectDelim(dec, br, '}'); err != nil {
		return err
	}
	if top {
		return expectEnd(dec, br)
	}
	return nil
}

func expectDelim(dec *json.Decoder, br *bodyReader, want json.Delim) error {
	tok, err := dec.Token()
	if err != nil {
		return br.wrap(fmt.Sprintf("expecting %q", want), err)
	}
	if d, ok := tok.(json.Delim); !ok || d != want {
		return fmt.Errorf("%v where %q belongs: %w", tok, want, ErrMalformed)
	}
	return nil
}

// expectEnd checks that the body has nothing but white space left.
func expectEnd(dec *json.Decoder, br *bodyReader) error {
	_, err := dec.Token()
	if err == io.EOF {
		return nil
	}
	if err != nil {
		return br.wrap("after the body", err)
	}
	return fmt.Errorf("data after the body: %w", ErrMalformed)
}

func skipValue(dec *json.Decoder, br *bodyReader) error {
	var skip json.RawMessage
	if err := dec.Decode(&skip); err != nil {
		return br.wrap("skipping a field", err)
	}
	return nil
}

func decodeString(dec *json.Decoder, br *bodyReader, what string, max int, s *string) error {
	var raw json.RawMessage
	if err := dec.Decode(&raw); err != nil {
		return br.wrap(what, err)
	}
	if len(raw) > max+2 {
		return fmt.Errorf("%s of %d bytes (max %d): %w", what, len(raw)-2, max, ErrTooLarge)
	}
	if err := unmarshal(raw, s); err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if len(*s) > max {
		return fmt.Errorf("%s of %d bytes (max %d): %w", what, len(*s), max, ErrTooLarge)
	}
	return nil
}

// wireInfo is Info as it arrives: deviceType may be null.
type wireInfo struct {
	Alias       string  `json:"alias"`
	Version     string  `json:"version"`
	DeviceModel *string `json:"deviceModel"`
	DeviceType  *string `json:"deviceType"`
	Fingerprint string  `json:"fingerprint"`
	Port        uint16  `json:"port"`
	Protocol    string  `json:"protocol"`
	Download    bool    `json:"download"`
}

func parseInfo(raw []byte) (Info, error) {
	var w wireInfo
	if err := unmarshal(raw, &w); err != nil {
		return Info{}, err
	}
	info := Info{Alias: w.Alias, Version: w.Version, DeviceModel: w.DeviceModel,
		Fingerprint: w.Fingerprint, Port: w.Port, Protocol: w.Protocol, Download: w.Download}
	if w.DeviceType != nil {
		info.DeviceType = *w.DeviceType
	}
	if err := checkInfo(info); err != nil {
		return Info{}, err
	}
	return info, nil
}

// unmarshal decodes raw, which the caller's bodyReader has checked for
// UTF-8, into v, with every failure wrapping ErrMalformed.
func unmarshal(raw []byte, v any) error {
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%v: %w", err, ErrMalformed)
	}
	return nil
}

// bodyReader caps a body at max bytes, and what the decoder may read
// ahead of its position (its buffer) at a window, and refuses invalid
// UTF-8 (which encoding/json would silently replace), across reads.
type bodyReader struct {
	r       io.Reader
	max     int64 // bytes in all
	limit   int64 // bytes in all that the current window allows, ≤ max
	win     int64 // the current window's size
	read    int64
	over    bool              // more than limit bytes were asked for
	badUTF8 bool              // the body is not UTF-8
	readErr error             // the last error of r other than io.EOF
	pend    [utf8.UTFMax]byte // the start of a rune cut by a read
	npend   int
}

var (
	errOver    = errors.New("body over its cap")
	errBadUTF8 = errors.New("body is not UTF-8")
)

func newBodyReader(r io.Reader, max int64) *bodyReader {
	return &bodyReader{r: r, max: max, limit: max, win: max}
}

// window lets dec read at most n bytes beyond its position: no key or
// value it reads next may be longer. A value's JSON is buffered whole by
// the decoder, so this caps the buffer.
func (b *bodyReader) window(dec *json.Decoder, n int64) {
	b.win = n
	b.limit = min(b.max, dec.InputOffset()+n)
}

func (b *bodyReader) Read(p []byte) (int, error) {
	if b.over {
		return 0, errOver
	}
	if b.badUTF8 {
		return 0, errBadUTF8
	}
	if b.read >= b.limit {
		var one [1]byte
		n, err := b.r.Read(one[:])
		if n > 0 {
			b.over = true
			return 0, errOver
		}
		return 0, b.note(err)
	}
	if int64(len(p)) > b.limit-b.read {
		p = p[:b.limit-b.read]
	}
	n, err := b.r.Read(p)
	b.read += int64(n)
	if !b.valid(p[:n]) {
		b.badUTF8 = true
		return 0, errBadUTF8
	}
	if err == io.EOF && b.npend > 0 {
		b.badUTF8 = true
		return 0, errBadUTF8
	}
	return n, b.note(err)
}

func (b *bodyReader) note(err error) error {
	if err != nil && err != io.EOF {
		b.readErr = err
	}
	return err
}

// valid checks p, which follows the bytes checked before, keeping a rune
// cut at its end for the next call.
func (b *bodyReader) valid(p []byte) bool {
	for b.npend > 0 && len(p) > 0 {
		b.pend[b.npend] = p[0]
		b.npend++
		p = p[1:]
		if utf8.FullRune(b.pend[:b.npend]) {
			r, size := utf8.DecodeRune(b.pend[:b.npend])
			if r == utf8.RuneError && size <= 1 || size != b.npend {
				return false
			}
			b.npend = 0
		}
	}
	if b.npend > 0 { // p ended inside the cut rune
		return true
	}
	cut := len(p)
	for i := len(p) - 1; i >= 0 && i >= len(p)-utf8.UTFMax+1; i-- {
		if utf8.RuneStart(p[i]) {
			if !utf8.FullRune(p[i:]) {
				cut = i
			}
			break
		}
	}
	if !utf8.Valid(p[:cut]) {
		return false
	}
	b.npend = copy(b.pend[:], p[cut:])
	return true
}

// wrap turns an error of the JSON decoder reading from b into one that
// says what went wrong: over a cap, not UTF-8, truncated or bad JSON (all
// wrapping a sentinel), or the reader's own error (as is).
func (b *bodyReader) wrap(what string, err error) error {
	switch {
	case b.over && b.limit == b.max:
		return fmt.Errorf("%s: body over %d bytes: %w", what, b.max, ErrTooLarge)
	case b.over:
		return fmt.Errorf("%s: a value over %d bytes: %w", what, b.win, ErrTooLarge)
	case b.badUTF8:
		return fmt.Errorf("%s: invalid UTF-8: %w", what, ErrMalformed)
	case b.readErr != nil && errors.Is(err, b.readErr):
		return fmt.Errorf("%s: %w", what, err)
	case err == io.EOF && b.read == 0:
		return fmt.Errorf("%s: empty body: %w", what, ErrMalformed)
	case err == io.EOF || err == io.ErrUnexpectedEOF:
		return fmt.Errorf("%s: body ends early: %w", what, ErrMalformed)
	}
	return fmt.Errorf("%s: %v: %w", what, err, ErrMalformed)
}
