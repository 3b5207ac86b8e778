package discovery

import (
	"errors"
	"net/netip"
	"strings"
	"testing"
)

const (
	fpUpper = "3F2A9C1B0D4E5F60718293A4B5C6D7E8F90A1B2C3D4E5F60718293A4B5C6D7E8"
	fpLower = "9b7e0c1d2e3f405162738495a6b7c8d9e0f1a2b3c4d5e6f708192a3b4c5d6e7f"
)

// lsGolden are datagrams as real peers send them, and what they parse to.
var lsGolden = []struct {
	name string
	in   string
	want LocalSendAnnouncement
}{
	{
		// App 1.18 (Rust core): no deviceModel when it has none, "announce" only.
		name: "app 1.18",
		in:   `{"alias":"Nice Orange","version":"2.2","deviceType":"desktop","fingerprint":"` + fpUpper + `","port":53317,"protocol":"https","download":false,"announce":true}`,
		want: LocalSendAnnouncement{Alias: "Nice Orange", Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: fpUpper, Port: 53317, Protocol: LocalSendHTTPS, Announce: true},
	},
	{
		// Apps up to 1.17 (Dart): null model, both flag spellings.
		name: "app 1.17 announcement",
		in:   `{"alias":"Secret Banana","version":"2.1","deviceModel":null,"deviceType":"mobile","fingerprint":"` + fpUpper + `","port":53318,"protocol":"https","download":true,"announcement":true,"announce":true}`,
		want: LocalSendAnnouncement{Alias: "Secret Banana", Version: "2.1", DeviceType: LocalSendMobile, Fingerprint: fpUpper, Port: 53318, Protocol: LocalSendHTTPS, Download: true, Announce: true},
	},
	{
		name: "app 1.17 multicast answer",
		in:   `{"alias":"Secret Banana","version":"2.1","deviceModel":"Samsung","deviceType":"mobile","fingerprint":"` + fpUpper + `","port":53317,"protocol":"https","download":false,"announcement":false,"announce":false}`,
		want: LocalSendAnnouncement{Alias: "Secret Banana", Version: "2.1", DeviceModel: "Samsung", DeviceType: LocalSendMobile, Fingerprint: fpUpper, Port: 53317, Protocol: LocalSendHTTPS},
	},
	{
		// npm localsend 0.1.2 over plain HTTP: a random hex fingerprint.
		name: "npm localsend http",
		in:   `{"alias":"XC LocalSend CLI 517","version":"2.1","deviceModel":"Linux 6.12.0","deviceType":"desktop","fingerprint":"` + fpLower + `","port":53317,"protocol":"http","download":false,"announce":true,"announcement":true}`,
		want: LocalSendAnnouncement{Alias: "XC LocalSend CLI 517", Version: "2.1", DeviceModel: "Linux 6.12.0", DeviceType: LocalSendDesktop, Fingerprint: fpLower, Port: 53317, Protocol: LocalSendHTTP, Announce: true},
	},
	{
		name: "v1 spelling only, no version, no type",
		in:   `{"alias":"old","fingerprint":"` + fpUpper + `","port":53317,"protocol":"https","announcement":true}`,
		want: LocalSendAnnouncement{Alias: "old", Version: "1.0", DeviceType: LocalSendDesktop, Fingerprint: fpUpper, Port: 53317, Protocol: LocalSendHTTPS, Announce: true},
	},
	{
		name: "unknown type is desktop, case folded, extra fields ignored",
		in:   `{"alias":"t","version":"2.2","deviceType":"toaster","fingerprint":"abc","port":1,"protocol":"http","future":{"x":[1,2]}}`,
		want: LocalSendAnnouncement{Alias: "t", Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: "abc", Port: 1, Protocol: LocalSendHTTP},
	},
	{
		name: "upper-case type",
		in:   `{"alias":"s","version":"2.2","deviceType":"SERVER","fingerprint":"random-string_1","port":65535,"protocol":"http","announce":false,"announcement":true}`,
		want: LocalSendAnnouncement{Alias: "s", Version: "2.2", DeviceType: LocalSendServer, Fingerprint: "random-string_1", Port: 65535, Protocol: LocalSendHTTP, Announce: true},
	},
	{
		name: "unicode alias",
		in:   `{"alias":"Zoë’s 📱 \u00e9","version":"2.2","deviceType":"headless","fingerprint":"ab","port":80,"protocol":"http"}`,
		want: LocalSendAnnouncement{Alias: "Zoë’s 📱 é", Version: "2.2", DeviceType: LocalSendHeadless, Fingerprint: "ab", Port: 80, Protocol: LocalSendHTTP},
	},
}

func TestParseLocalSendAnnouncementGolden(t *testing.T) {
	for _, c := range lsGolden {
		got, err := ParseLocalSendAnnouncement([]byte(c.in))
		if err != nil {
			t.Errorf("%s: %v", c.name, err)
			continue
		}
		if got != c.want {
			t.Errorf("%s:\n got %+v\nwant %+v", c.name, got, c.want)
		}
		b, err := got.Marshal()
		if err != nil {
			t.Errorf("%s: Marshal: %v", c.name, err)
			continue
		}
		back, err := ParseLocalSendAnnouncement(b)
		if err != nil || back != got {
			t.Errorf("%s: round trip of %s: %+v, %v", c.name, b, back, err)
		}
	}
}

// TestMarshalLocalSendAnnouncementGolden pins our datagram byte for byte:
// fields in the apps' order, no deviceModel when empty, both flag
// spellings, no HTML escaping.
func TestMarshalLocalSendAnnouncementGolden(t *testing.T) {
	for _, c := range []struct {
		a    LocalSendAnnouncement
		want string
	}{
		{
			LocalSendAnnouncement{Alias: "alice", Version: "2.2", DeviceType: LocalSendHeadless, Fingerprint: fpUpper, Port: 53317, Protocol: LocalSendHTTPS, Announce: true},
			`{"alias":"alice","version":"2.2","deviceType":"headless","fingerprint":"` + fpUpper + `","port":53317,"protocol":"https","download":false,"announce":true,"announcement":true}`,
		},
		{
			LocalSendAnnouncement{Alias: `Tom & "Jerry" <3`, Version: "2.2", DeviceModel: "lanshare", DeviceType: LocalSendServer, Fingerprint: "r4nd0m", Port: 8080, Protocol: LocalSendHTTP, Download: true},
			`{"alias":"Tom & \"Jerry\" <3","version":"2.2","deviceModel":"lanshare","deviceType":"server","fingerprint":"r4nd0m","port":8080,"protocol":"http","download":true,"announce":false,"announcement":false}`,
		},
	} {
		b, err := c.a.Marshal()
		if err != nil {
			t.Fatal(err)
		}
		if string(b) != c.want {
			t.Errorf("Marshal(%+v)\n got %s\nwant %s", c.a, b, c.want)
		}
	}
}

// lsBad are datagrams that must be refused.
var lsBad = []struct{ name, in string }{
	{"oversized", `{"alias":"a","fingerprint":"ab","port":1,"protocol":"http"}` + strings.Repeat(" ", MaxLocalSendDatagram)},
	{"not utf-8", "{\"alias\":\"a\xff\",\"fingerprint\":\"ab\",\"port\":1,\"protocol\":\"http\"}"},
	{"not json", `hello`},
	{"empty", ``},
	{"array", `[{"alias":"a"}]`},
	{"null", `null`},
	{"trailing data", `{"alias":"a","fingerprint":"ab","port":1,"protocol":"http"} {}`},
	{"no alias", `{"fingerprint":"ab","port":1,"protocol":"http"}`},
	{"null alias", `{"alias":null,"fingerprint":"ab","port":1,"protocol":"http"}`},
	{"empty alias", `{"alias":"","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"long alias", `{"alias":"` + strings.Repeat("a", MaxLocalSendAlias+1) + `","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"newline in alias", `{"alias":"a\nb","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"escape in alias", `{"alias":"a\u001b[2Jb","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"C1 in alias", `{"alias":"a` + "\u0085" + `b","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"bidi override in alias", `{"alias":"a\u202eb","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"bidi isolate in model", `{"alias":"a","deviceModel":"x\u2067y","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"number alias", `{"alias":5,"fingerprint":"ab","port":1,"protocol":"http"}`},
	{"long model", `{"alias":"a","deviceModel":"` + strings.Repeat("m", MaxLocalSendDeviceModel+1) + `","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"bad version", `{"alias":"a","version":"2.2 beta","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"empty version", `{"alias":"a","version":"","fingerprint":"ab","port":1,"protocol":"http"}`},
	{"no fingerprint", `{"alias":"a","port":1,"protocol":"http"}`},
	{"empty fingerprint", `{"alias":"a","fingerprint":"","port":1,"protocol":"http"}`},
	{"long fingerprint", `{"alias":"a","fingerprint":"` + strings.Repeat("a", MaxLocalSendFingerprint+1) + `","port":1,"protocol":"http"}`},
	{"fingerprint with space", `{"alias":"a","fingerprint":"random string","port":1,"protocol":"http"}`},
	{"fingerprint with slash", `{"alias":"a","fingerprint":"../x","port":1,"protocol":"http"}`},
	{"https fingerprint not hex", `{"alias":"a","fingerprint":"xyz","port":1,"protocol":"https"}`},
	{"no port", `{"alias":"a","fingerprint":"ab","protocol":"http"}`},
	{"port 0", `{"alias":"a","fingerprint":"ab","port":0,"protocol":"http"}`},
	{"port 65536", `{"alias":"a","fingerprint":"ab","port":65536,"protocol":"http"}`},
	{"negative port", `{"alias":"a","fingerprint":"ab","port":-1,"protocol":"http"}`},
	{"string port", `{"alias":"a","fingerprint":"ab","port":"53317","protocol":"http"}`},
	{"fractional port", `{"alias":"a","fingerprint":"ab","port":1.5,"protocol":"http"}`},
	{"huge port", `{"alias":"a","fingerprint":"ab","port":1e400,"protocol":"http"}`},
	{"no protocol", `{"alias":"a","fingerprint":"ab","port":1}`},
	{"ftp", `{"alias":"a","fingerprint":"ab","port":1,"protocol":"ftp"}`},
	{"upper-case protocol", `{"alias":"a","fingerprint":"ab","port":1,"protocol":"HTTP"}`},
	{"string flag", `{"alias":"a","fingerprint":"ab","port":1,"protocol":"http","announce":"yes"}`},
}

func TestParseLocalSendAnnouncementRefuses(t *testing.T) {
	for _, c := range lsBad {
		a, err := ParseLocalSendAnnouncement([]byte(c.in))
		if !errors.Is(err, ErrMalformedAnnouncement) {
			t.Errorf("%s: got %+v, %v; want ErrMalformedAnnouncement", c.name, a, err)
		}
		if a != (LocalSendAnnouncement{}) {
			t.Errorf("%s: returned %+v with the error", c.name, a)
		}
	}
}

func TestMarshalLocalSendAnnouncementValidates(t *testing.T) {
	ok := LocalSendAnnouncement{Alias: "a", Version: "2.2", DeviceType: LocalSendDesktop, Fingerprint: "ab", Port: 1, Protocol: LocalSendHTTP}
	for name, mut := range map[string]func(*LocalSendAnnouncement){
		"zero port":    func(a *LocalSendAnnouncement) { a.Port = 0 },
		"no type":      func(a *LocalSendAnnouncement) { a.DeviceType = "" },
		"unknown type": func(a *LocalSendAnnouncement) { a.DeviceType = "toaster" },
		"no version":   func(a *LocalSendAnnouncement) { a.Version = "" },
		"no protocol":  func(a *LocalSendAnnouncement) { a.Protocol = "" },
		"https no hex": func(a *LocalSendAnnouncement) { a.Protocol = LocalSendHTTPS; a.Fingerprint = "zz" },
		"tab in alias": func(a *LocalSendAnnouncement) { a.Alias = "a\tb" },
		"bad utf-8":    func(a *LocalSendAnnouncement) { a.Alias = "a\xc3" },
	} {
		a := ok
		mut(&a)
		if b, err := a.Marshal(); !errors.Is(err, ErrMalformedAnnouncement) || b != nil {
			t.Errorf("%s: Marshal = %q, %v; want ErrMalformedAnnouncement", name, b, err)
		}
	}
	if _, err := ok.Marshal(); err != nil {
		t.Errorf("valid announcement: %v", err)
	}
}

func TestLocalSendAnnouncementDevice(t *testing.T) {
	a := lsGolden[0].want
	d := a.Device(netip.MustParseAddr("::ffff:10.0.0.7"))
	if d.Addr != netip.MustParseAddrPort("10.0.0.7:53317") || d.Alias != a.Alias || d.Fingerprint != a.Fingerprint ||
		d.Protocol != a.Protocol || d.DeviceType != a.DeviceType || d.Version != a.Version {
		t.Errorf("Device = %+v", d)
	}
	if d := a.Device(netip.MustParseAddr("fe80::1%eth0")); d.Addr.String() != "[fe80::1%eth0]:53317" {
		t.Errorf("link-local Device.Addr = %v", d.Addr)
	}
}

// FuzzParseLocalSendAnnouncement: whatever Parse accepts is valid,
// marshals within the datagram cap and parses back to itself.
func FuzzParseLocalSendAnnouncement(f *testing.F) {
	for _, c := range lsGolden {
		f.Add([]byte(c.in))
	}
	for _, c := range lsBad {
		f.Add([]byte(c.in))
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		a, err := ParseLocalSendAnnouncement(b)
		if err != nil {
			if !errors.Is(err, ErrMalformedAnnouncement) {
				t.Fatalf("error %v does not wrap ErrMalformedAnnouncement", err)
			}
			return
		}
		if len(b) > MaxLocalSendDatagram {
			t.Fatalf("accepted %d bytes", len(b))
		}
		if err := a.Validate(); err != nil {
			t.Fatalf("accepted %+v, which Validate refuses: %v", a, err)
		}
		out, err := a.Marshal()
		if err != nil {
			t.Fatalf("Marshal(%+v): %v", a, err)
		}
		if len(out) > MaxLocalSendDatagram {
			t.Fatalf("Marshal made %d bytes", len(out))
		}
		back, err := ParseLocalSendAnnouncement(out)
		if err != nil || back != a {
			t.Fatalf("round trip: %+v -> %s -> %+v, %v", a, out, back, err)
		}
	})
}
