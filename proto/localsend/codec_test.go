package localsend

import (
	"bytes"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"reflect"
	"runtime"
	"strings"
	"testing"
	"testing/iotest"
	"time"
)

func TestDecodeInfoGoldens(t *testing.T) {
	for _, g := range infoGoldens {
		t.Run(g.name, func(t *testing.T) {
			got, err := DecodeInfo(strings.NewReader(g.body))
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(got, g.want) {
				t.Fatalf("got  %+v\nwant %+v", got, g.want)
			}
			var buf bytes.Buffer
			if err := EncodeInfo(&buf, got); err != nil {
				t.Fatal(err)
			}
			again, err := DecodeInfo(&buf)
			if err != nil || !reflect.DeepEqual(again, got) {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

func TestEncodeInfoLeavesOutWhatARegisterReplyHasNot(t *testing.T) {
	var buf bytes.Buffer
	if err := EncodeInfo(&buf, Info{Alias: "alice", Version: Version, Fingerprint: "AB"}); err != nil {
		t.Fatal(err)
	}
	want := `{"alias":"alice","version":"2.2","fingerprint":"AB","download":false}` + "\n"
	if buf.String() != want {
		t.Fatalf("got %s want %s", buf.String(), want)
	}
}

func TestDecodePrepareUploadGoldens(t *testing.T) {
	for _, g := range prepareGoldens {
		t.Run(g.name, func(t *testing.T) {
			// One byte at a time too: the UTF-8 check and the caps work
			// across reads.
			for _, r := range []io.Reader{strings.NewReader(g.body), iotest.OneByteReader(strings.NewReader(g.body))} {
				got, err := DecodePrepareUpload(r, Limits{})
				if err != nil {
					t.Fatal(err)
				}
				if !reflect.DeepEqual(got, g.want) {
					t.Fatalf("got  %+v\nwant %+v", got, g.want)
				}
			}
			var buf bytes.Buffer
			if err := EncodePrepareUpload(&buf, g.want); err != nil {
				t.Fatal(err)
			}
			if g.canonical && buf.String() != g.body+"\n" {
				t.Fatalf("our encoding differs from the app's:\n got %s\nwant %s", buf.String(), g.body)
			}
			again, err := DecodePrepareUpload(&buf, Limits{})
			if err != nil || !reflect.DeepEqual(again, g.want) {
				t.Fatalf("round trip: %+v, %v", again, err)
			}
		})
	}
}

// body builds a prepare-upload body with the given files object.
func body(files string) string {
	return `{"info":{"alias":"a","version":"2.2","fingerprint":"f","port":53317,"protocol":"https"},"files":{` + files + `}}`
}

func file(id, rest string) string {
	return fmt.Sprintf(`%q:{"id":%q,"fileName":"x.txt","fileType":"text/plain",%s}`, id, id, rest)
}

func TestDecodePrepareUploadRejects(t *testing.T) {
	long := func(n int) string { return strings.Repeat("a", n) }
	cases := []struct {
		name string
		body string
		want error
	}{
		{"empty body", ``, ErrMalformed},
		{"white space only", "  \n", ErrMalformed},
		{"not an object", `[1,2]`, ErrMalformed},
		{"null", `null`, ErrMalformed},
		{"truncated", body(file("a", `"size":1`))[:40], ErrMalformed},
		{"data after the body", body(file("a", `"size":1`)) + `{}`, ErrMalformed},
		{"no info", `{"files":{` + file("a", `"size":1`) + `}}`, ErrMalformed},
		{"info null", `{"info":null,"files":{` + file("a", `"size":1`) + `}}`, ErrMalformed},
		{"info twice", `{"info":{},"info":{},"files":{` + file("a", `"size":1`) + `}}`, ErrMalformed},
		{"info too large", `{"info":{"alias":"` + long(MaxInfoBytes) + `"},"files":{` + file("a", `"size":1`) + `}}`, ErrTooLarge},
		{"alias too long", `{"info":{"alias":"` + long(MaxAliasLen+1) + `"},"files":{` + file("a", `"size":1`) + `}}`, ErrTooLarge},
		{"unknown protocol", `{"info":{"protocol":"ftp"},"files":{` + file("a", `"size":1`) + `}}`, ErrMalformed},
		{"port out of range", `{"info":{"port":65536},"files":{` + file("a", `"size":1`) + `}}`, ErrMalformed},
		{"no files", body(``), ErrMalformed},
		{"files null", `{"info":{},"files":null}`, ErrMalformed},
		{"files twice", `{"info":{},"files":{` + file("a", `"size":1`) + `},"files":{` + file("b", `"size":1`) + `}}`, ErrMalformed},
		{"empty id", body(file("", `"size":1`)), ErrMalformed},
		{"id too long", body(file(long(MaxIDLen+1), `"size":1`)), ErrTooLarge},
		{"duplicate id", body(file("a", `"size":1`) + "," + file("a", `"size":2`)), ErrMalformed},
		{"id differs from key", body(`"a":{"id":"b","fileName":"x","size":1,"fileType":"t"}`), ErrMalformed},
		{"id missing", body(`"a":{"fileName":"x","size":1,"fileType":"t"}`), ErrMalformed},
		{"file null", body(`"a":null`), ErrMalformed},
		{"file not an object", body(`"a":"x"`), ErrMalformed},
		{"empty fileName", body(`"a":{"id":"a","fileName":"","size":1,"fileType":"t"}`), ErrMalformed},
		{"fileName too long", body(`"a":{"id":"a","fileName":"` + long(MaxFileNameLen+1) + `","size":1,"fileType":"t"}`), ErrTooLarge},
		{"fileName not a string", body(`"a":{"id":"a","fileName":5,"size":1,"fileType":"t"}`), ErrMalformed},
		{"size missing", body(file("a", `"preview":"p"`)), ErrMalformed},
		{"size null", body(file("a", `"size":null`)), ErrMalformed},
		{"size negative", body(file("a", `"size":-1`)), ErrMalformed},
		{"size fraction", body(file("a", `"size":1.5`)), ErrMalformed},
		{"size integral float", body(file("a", `"size":1.0`)), ErrMalformed},
		{"size exponent", body(file("a", `"size":1e3`)), ErrMalformed},
		{"size string", body(file("a", `"size":"5"`)), ErrMalformed},
		{"size 2^63", body(file("a", `"size":9223372036854775808`)), ErrTooLarge},
		{"sizes sum over 2^63-1", body(file("a", `"size":9223372036854775807`) + "," + file("b", `"size":1`)), ErrTooLarge},
		{"fileType too long", body(`"a":{"id":"a","fileName":"x","size":1,"fileType":"` + long(MaxFileTypeLen+1) + `"}`), ErrTooLarge},
		{"sha256 placeholder (the spec's example)", body(file("a", `"size":1,"sha256":"*sha256 hash*"`)), ErrMalformed},
		{"sha256 63 digits", body(file("a", `"size":1,"sha256":"`+helloSHA256[:63]+`"`)), ErrMalformed},
		{"sha256 not hex", body(file("a", `"size":1,"sha256":"`+strings.Repeat("g", 64)+`"`)), ErrMalformed},
		{"preview too long", body(file("a", `"size":1,"preview":"`+long(MaxPreviewLen+1)+`"`)), ErrTooLarge},
		{"metadata not an object", body(file("a", `"size":1,"metadata":"x"`)), ErrMalformed},
		{"metadata time too long", body(file("a", `"size":1,"metadata":{"modified":"`+long(MaxTimestampLen+1)+`"}`)), ErrTooLarge},
		{"invalid UTF-8 in a name", body(file("a", `"size":1`))[:0] + strings.Replace(body(file("a", `"size":1`)), "x.txt", "x\xff.txt", 1), ErrMalformed},
		{"invalid UTF-8 in an id", strings.Replace(body(file("a", `"size":1`)), `"a"`, "\"a\xc3\"", 1), ErrMalformed},
		{"UTF-8 cut at the end", body(file("a", `"size":1`)) + "\xe2\x82", ErrMalformed},
		{"surrogate in UTF-8", strings.Replace(body(file("a", `"size":1`)), "x.txt", "x\xed\xa0\x80.txt", 1), ErrMalformed},
		{"syntax error", body(file("a", `"size":1,`)), ErrMalformed},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			for _, r := range []io.Reader{strings.NewReader(c.body), iotest.OneByteReader(strings.NewReader(c.body))} {
				pu, err := DecodePrepareUpload(r, Limits{})
				if !errors.Is(err, c.want) {
					t.Fatalf("got %+v, %v; want %v", pu, err, c.want)
				}
				if pu.Files != nil {
					t.Fatalf("a refused body returned files: %+v", pu.Files)
				}
			}
		})
	}
}

// countingReader counts the bytes read from it.
type countingReader struct {
	r io.Reader
	n int64
}

func (c *countingReader) Read(p []byte) (int, error) {
	n, err := c.r.Read(p)
	c.n += int64(n)
	return n, err
}

// endless is a body that never ends: a field whose string goes on forever.
type endless struct{ started bool }

func (e *endless) Read(p []byte) (int, error) {
	if !e.started {
		e.started = true
		return copy(p, `{"info":{"alias":"`), nil
	}
	for i := range p {
		p[i] = 'a'
	}
	return len(p), nil
}

func TestDecodeStopsAtTheByteCap(t *testing.T) {
	const max = 64 << 10
	for _, dec := range []struct {
		name string
		run  func(io.Reader) error
	}{
		{"prepare-upload", func(r io.Reader) error { _, err := DecodePrepareUpload(r, Limits{MaxBytes: max}); return err }},
		{"reply", func(r io.Reader) error { _, err := DecodePrepareUploadReply(r, Limits{MaxBytes: max}); return err }},
	} {
		t.Run(dec.name, func(t *testing.T) {
			cr := &countingReader{r: &endless{}}
			err := dec.run(cr)
			if !errors.Is(err, ErrTooLarge) {
				t.Fatalf("endless body: %v, want ErrTooLarge", err)
			}
			if cr.n > max+1 {
				t.Fatalf("read %d bytes of an endless body, cap %d", cr.n, max)
			}
		})
	}
	cr := &countingReader{r: &endless{}}
	if _, err := DecodeInfo(cr); !errors.Is(err, ErrTooLarge) || cr.n > MaxInfoBytes+1 {
		t.Fatalf("info: %v after %d bytes", err, cr.n)
	}
	// Exactly at the cap is fine.
	b := body(file("a", `"size":1`))
	if _, err := DecodePrepareUpload(strings.NewReader(b), Limits{MaxBytes: int64(len(b))}); err != nil {
		t.Fatalf("body of exactly MaxBytes: %v", err)
	}
	if _, err := DecodePrepareUpload(strings.NewReader(b+" "), Limits{MaxBytes: int64(len(b))}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("body one byte over MaxBytes: %v", err)
	}
}

func TestDecodeCapsEachValue(t *testing.T) {
	over := `"` + strings.Repeat("a", MaxValueBytes) + `"`
	for name, b := range map[string]string{
		"unknown field": `{"info":{},"x":` + over + `,"files":{` + file("a", `"size":1`) + `}}`,
		"file entry":    body(file("a", `"size":1,"x":`+over)),
		"file key":      body(over + `:{}`),
		"reply token":   `{"sessionId":"s","files":{"a":` + over + `}}`,
	} {
		cr := &countingReader{r: strings.NewReader(b)}
		var err error
		if strings.Contains(name, "reply") {
			_, err = DecodePrepareUploadReply(cr, Limits{})
		} else {
			_, err = DecodePrepareUpload(cr, Limits{})
		}
		if !errors.Is(err, ErrTooLarge) {
			t.Errorf("%s over MaxValueBytes: %v", name, err)
		}
		if cr.n > MaxValueBytes+1<<10 {
			t.Errorf("%s: read %d bytes for a value capped at %d", name, cr.n, MaxValueBytes)
		}
	}
}

func TestDecodePrepareUploadFileCountCap(t *testing.T) {
	var files []string
	for i := range 4 {
		files = append(files, file(fmt.Sprint(i), `"size":1`))
	}
	b := body(strings.Join(files, ","))
	if _, err := DecodePrepareUpload(strings.NewReader(b), Limits{MaxFiles: 4}); err != nil {
		t.Fatalf("4 files under a cap of 4: %v", err)
	}
	if _, err := DecodePrepareUpload(strings.NewReader(b), Limits{MaxFiles: 3}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("4 files under a cap of 3: %v", err)
	}
	rb := `{"sessionId":"s","files":{"a":"1","b":"2","c":"3","d":"4"}}`
	if _, err := DecodePrepareUploadReply(strings.NewReader(rb), Limits{MaxFiles: 3}); !errors.Is(err, ErrTooLarge) {
		t.Fatalf("reply with 4 files under a cap of 3: %v", err)
	}
}

// TestDecodePassesReaderErrors: a dropped connection is not a malformed body.
func TestDecodePassesReaderErrors(t *testing.T) {
	broken := errors.New("connection reset")
	b := body(file("a", `"size":1`))
	r := io.MultiReader(strings.NewReader(b[:30]), iotest.ErrReader(broken))
	_, err := DecodePrepareUpload(r, Limits{})
	if !errors.Is(err, broken) || errors.Is(err, ErrMalformed) || errors.Is(err, ErrTooLarge) {
		t.Fatalf("got %v, want the reader's error alone", err)
	}
	_, err = DecodeInfo(iotest.ErrReader(broken))
	if !errors.Is(err, broken) || errors.Is(err, ErrMalformed) {
		t.Fatalf("info: got %v, want the reader's error alone", err)
	}
}

func TestDecodeInfoRejects(t *testing.T) {
	for name, b := range map[string]string{
		"empty":            ``,
		"null":             `null`,
		"array":            `[]`,
		"two values":       `{} {}`,
		"unknown protocol": `{"protocol":"HTTPS"}`,
		"port negative":    `{"port":-1}`,
		"port string":      `{"port":"53317"}`,
		"alias number":     `{"alias":5}`,
		"invalid UTF-8":    "{\"alias\":\"\xff\"}",
	} {
		if _, err := DecodeInfo(strings.NewReader(b)); !errors.Is(err, ErrMalformed) {
			t.Errorf("%s: %v, want ErrMalformed", name, err)
		}
	}
	long := `{"deviceModel":"` + strings.Repeat("m", MaxModelLen+1) + `"}`
	if _, err := DecodeInfo(strings.NewReader(long)); !errors.Is(err, ErrTooLarge) {
		t.Errorf("long deviceModel: %v, want ErrTooLarge", err)
	}
}

func TestInfoType(t *testing.T) {
	for in, want := range map[string]string{"mobile": "mobile", "server": "server", "": "desktop", "toaster": "desktop", "MOBILE": "desktop"} {
		if got := (Info{DeviceType: in}).Type(); got != want {
			t.Errorf("Type of %q = %q, want %q", in, got, want)
		}
	}
}

func TestPrepareUploadReplyGoldens(t *testing.T) {
	for _, g := range replyGoldens {
		got, err := DecodePrepareUploadReply(strings.NewReader(g.body), Limits{})
		if err != nil || !reflect.DeepEqual(got, g.want) {
			t.Fatalf("%s: got %+v, %v", g.name, got, err)
		}
		var buf bytes.Buffer
		if err := EncodePrepareUploadReply(&buf, got); err != nil {
			t.Fatal(err)
		}
		again, err := DecodePrepareUploadReply(&buf, Limits{})
		if err != nil || !reflect.DeepEqual(again, got) {
			t.Fatalf("%s: round trip %+v, %v", g.name, again, err)
		}
	}
}

func TestDecodePrepareUploadReplyRejects(t *testing.T) {
	for name, c := range map[string]struct {
		body string
		want error
	}{
		"no sessionId":      {`{"files":{"a":"t"}}`, ErrMalformed},
		"empty sessionId":   {`{"sessionId":"","files":{"a":"t"}}`, ErrMalformed},
		"sessionId twice":   {`{"sessionId":"s","sessionId":"t","files":{"a":"t"}}`, ErrMalformed},
		"sessionId number":  {`{"sessionId":5,"files":{"a":"t"}}`, ErrMalformed},
		"long sessionId":    {`{"sessionId":"` + strings.Repeat("s", MaxTokenLen+1) + `","files":{"a":"t"}}`, ErrTooLarge},
		"no files":          {`{"sessionId":"s"}`, ErrMalformed},
		"files null":        {`{"sessionId":"s","files":null}`, ErrMalformed},
		"empty token":       {`{"sessionId":"s","files":{"a":""}}`, ErrMalformed},
		"token not string":  {`{"sessionId":"s","files":{"a":1}}`, ErrMalformed},
		"long token":        {`{"sessionId":"s","files":{"a":"` + strings.Repeat("t", MaxTokenLen+1) + `"}}`, ErrTooLarge},
		"duplicate id":      {`{"sessionId":"s","files":{"a":"t","a":"u"}}`, ErrMalformed},
		"empty id":          {`{"sessionId":"s","files":{"":"t"}}`, ErrMalformed},
		"trailing garbage":  {`{"sessionId":"s","files":{"a":"t"}}x`, ErrMalformed},
		"invalid UTF-8 key": {"{\"sessionId\":\"s\",\"files\":{\"\xc0\":\"t\"}}", ErrMalformed},
	} {
		if got, err := DecodePrepareUploadReply(strings.NewReader(c.body), Limits{}); !errors.Is(err, c.want) {
			t.Errorf("%s: got %+v, %v; want %v", name, got, err, c.want)
		}
	}
	// 204 has no body: not a reply, and the caller must not decode it.
	if _, err := DecodePrepareUploadReply(strings.NewReader(""), Limits{}); !errors.Is(err, ErrMalformed) {
		t.Errorf("empty reply: %v", err)
	}
}

func TestErrorGoldens(t *testing.T) {
	for _, g := range errorGoldens {
		e, err := DecodeError(strings.NewReader(g))
		if err != nil || e.Message == "" {
			t.Fatalf("%s: %+v, %v", g, e, err)
		}
		var buf bytes.Buffer
		if err := EncodeError(&buf, e); err != nil {
			t.Fatal(err)
		}
		if buf.String() != g+"\n" {
			t.Fatalf("encoded %q as %s, the app writes %s", e.Message, buf.String(), g)
		}
	}
	var buf bytes.Buffer
	if err := EncodeError(&buf, Error{Message: strings.Repeat("\x01é", MaxErrorBytes)}); err != nil {
		t.Fatal(err)
	}
	if e, err := DecodeError(&buf); err != nil || e.Message == "" {
		t.Fatalf("a long message does not come back within MaxErrorBytes: %v", err)
	}
	if _, err := DecodeError(strings.NewReader("<html>bad gateway</html>")); !errors.Is(err, ErrMalformed) {
		t.Fatalf("HTML error page: %v", err)
	}
}

func TestEncodeRefusesWhatDecodeRefuses(t *testing.T) {
	info := Info{Alias: "a", Version: Version, Fingerprint: "f", Port: 53317, Protocol: ProtocolHTTPS}
	ok := File{ID: "a", FileName: "x", Size: 1, FileType: "text/plain"}
	for name, c := range map[string]struct {
		pu   PrepareUpload
		want error
	}{
		"no files":       {PrepareUpload{Info: info}, ErrMalformed},
		"key differs":    {PrepareUpload{Info: info, Files: map[string]File{"b": ok}}, ErrMalformed},
		"empty id":       {PrepareUpload{Info: info, Files: map[string]File{"": {FileName: "x"}}}, ErrMalformed},
		"negative size":  {PrepareUpload{Info: info, Files: map[string]File{"a": {ID: "a", FileName: "x", Size: -1}}}, ErrMalformed},
		"bad sha256":     {PrepareUpload{Info: info, Files: map[string]File{"a": {ID: "a", FileName: "x", SHA256: "abc"}}}, ErrMalformed},
		"empty name":     {PrepareUpload{Info: info, Files: map[string]File{"a": {ID: "a"}}}, ErrMalformed},
		"bad protocol":   {PrepareUpload{Info: Info{Protocol: "udp"}, Files: map[string]File{"a": ok}}, ErrMalformed},
		"long alias":     {PrepareUpload{Info: Info{Alias: strings.Repeat("a", MaxAliasLen+1)}, Files: map[string]File{"a": ok}}, ErrTooLarge},
		"long file name": {PrepareUpload{Info: info, Files: map[string]File{"a": {ID: "a", FileName: strings.Repeat("n", MaxFileNameLen+1)}}}, ErrTooLarge},
	} {
		var buf bytes.Buffer
		if err := EncodePrepareUpload(&buf, c.pu); !errors.Is(err, c.want) || buf.Len() != 0 {
			t.Errorf("%s: %v (wrote %d bytes), want %v", name, err, buf.Len(), c.want)
		}
	}
	if err := EncodePrepareUploadReply(io.Discard, PrepareUploadReply{Files: map[string]string{"a": "t"}}); !errors.Is(err, ErrMalformed) {
		t.Errorf("reply without sessionId: %v", err)
	}
}

func TestEncodeKeepsNamesAsTheyAre(t *testing.T) {
	// encoding/json's default escapes <, > and &; the app's serde does not.
	// Either decodes the same, but a byte-for-byte body is easier to debug.
	var buf bytes.Buffer
	pu := PrepareUpload{Info: Info{Alias: "R&D <lab>"}, Files: map[string]File{"a": {ID: "a", FileName: "a&b <c>.txt"}}}
	if err := EncodePrepareUpload(&buf, pu); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(buf.String(), `"a&b <c>.txt"`) || !strings.Contains(buf.String(), `"R&D <lab>"`) {
		t.Fatalf("names escaped: %s", buf.String())
	}
}

func TestMetadataTimes(t *testing.T) {
	m := &Metadata{Modified: "2020-08-15T10:20:30.500Z", Accessed: "yesterday"}
	got, ok := m.ModifiedTime()
	if want := time.Date(2020, 8, 15, 10, 20, 30, 500e6, time.UTC); !ok || !got.Equal(want) {
		t.Fatalf("modified %v %v", got, ok)
	}
	if _, ok := m.AccessedTime(); ok {
		t.Fatal("an unparsable time parsed")
	}
	var none *Metadata
	if _, ok := none.ModifiedTime(); ok {
		t.Fatal("nil metadata has a time")
	}
	tm := time.Date(2026, 12, 2, 9, 0, 0, 123456789, time.FixedZone("CET", 3600))
	if s := FormatTime(tm); s != "2026-12-02T08:00:00.123456789Z" {
		t.Fatalf("FormatTime = %s", s)
	}
	back, ok := (&Metadata{Modified: FormatTime(tm)}).ModifiedTime()
	if !ok || !back.Equal(tm) {
		t.Fatalf("FormatTime does not round trip: %v", back)
	}
}

func TestFingerprintOfTheAppsCertificate(t *testing.T) {
	blk, _ := pem.Decode([]byte(appCertPEM))
	if blk == nil {
		t.Fatal("no PEM block")
	}
	if got := Fingerprint(blk.Bytes); got != appCertFingerprint {
		t.Fatalf("Fingerprint = %s, the app computes %s", got, appCertFingerprint)
	}
	if !IsCertFingerprint(appCertFingerprint) || IsCertFingerprint("random string") {
		t.Fatal("IsCertFingerprint")
	}
}

func TestSameFingerprint(t *testing.T) {
	lower := strings.ToLower(appCertFingerprint)
	cases := []struct {
		a, b string
		want bool
	}{
		{appCertFingerprint, appCertFingerprint, true},
		{appCertFingerprint, lower, true},
		{lower, appCertFingerprint, true},
		{appCertFingerprint, appCertFingerprint[:63], false},
		{appCertFingerprint, appCertFingerprint[:63] + "B", false},
		{"", "", false},
		{"k", "\u212a", false}, // Kelvin sign folds to k in Unicode, not here
	}
	for _, c := range cases {
		if got := SameFingerprint(c.a, c.b); got != c.want {
			t.Errorf("SameFingerprint(%q, %q) = %v", c.a, c.b, got)
		}
	}
}

// TestDecodeMemoryWithinLimitsMemory: what a decode allocates in all stays
// under Limits.Memory, for a body of many files and for one huge field.
func TestDecodeMemoryWithinLimitsMemory(t *testing.T) {
	if testing.Short() {
		t.Skip("allocates tens of MiB")
	}
	const files = 20_000
	var b strings.Builder
	b.WriteString(`{"info":{"alias":"a","version":"2.2","fingerprint":"f","port":53317,"protocol":"https"},"files":{`)
	for i := range files {
		if i > 0 {
			b.WriteByte(',')
		}
		id := fmt.Sprintf("%08x-8f5e-4f7e-9c1a-3c2d1e0f9a8b", i)
		fmt.Fprintf(&b, `%q:{"id":%q,"fileName":"Photos/2024/IMG_%06d.jpg","size":1234567,"fileType":"image/jpeg","sha256":%q,"metadata":{"modified":"2024-01-01T12:34:56.123456789Z","accessed":"2024-01-01T12:34:56.123456789Z"}}`,
			id, id, i, helloSHA256)
	}
	b.WriteString(`}}`)
	many := b.String()
	t.Logf("%d files: %d bytes, %d per file", files, len(many), len(many)/files)
	big := `"` + strings.Repeat("a", MaxValueBytes-10) + `"`
	huge := `{"info":{},"w":` + big + `,"x":` + big + `,"y":` + big + `,"files":{` + file("a", `"size":1`) + `}}`
	for name, c := range map[string]struct {
		body string
		lim  Limits
	}{
		"many files": {many, Limits{MaxBytes: int64(len(many)), MaxFiles: files}},
		"huge field": {huge, Limits{MaxBytes: int64(len(huge)), MaxFiles: 1}},
	} {
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		pu, err := DecodePrepareUpload(strings.NewReader(c.body), c.lim)
		runtime.ReadMemStats(&after)
		if err != nil {
			t.Fatal(err)
		}
		used := int64(after.TotalAlloc - before.TotalAlloc)
		t.Logf("%s: allocated %d bytes, Memory %d", name, used, c.lim.Memory())
		if used > c.lim.Memory() {
			t.Errorf("%s: decode allocated %d bytes, over Limits.Memory %d", name, used, c.lim.Memory())
		}
		runtime.KeepAlive(pu)
	}
}
