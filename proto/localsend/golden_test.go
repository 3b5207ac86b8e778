package localsend

// Golden bodies from the real app and its spec. Where a source is JSON5
// (the spec's README), comments and trailing commas are removed and
// nothing else is changed unless said.

// helloSHA256 is sha256("hello"), lower-case hex as the 1.18 apps send it.
const helloSHA256 = "2cf24dba5fb0a30e26e83b2ac5b9e29e1b161e5c1fa7425e73043362938b9824"

func ptr[T any](v T) *T { return &v }

var infoGoldens = []struct {
	name string
	body string
	want Info
}{{
	// github.com/localsend/protocol README §3.2, register request.
	name: "spec register request",
	body: `{
  "alias": "Secret Banana",
  "version": "2.0",
  "deviceModel": "Windows",
  "deviceType": "desktop",
  "fingerprint": "random string",
  "port": 53317,
  "protocol": "https",
  "download": true
}`,
	want: Info{Alias: "Secret Banana", Version: "2.0", DeviceModel: ptr("Windows"), DeviceType: DeviceDesktop,
		Fingerprint: "random string", Port: 53317, Protocol: ProtocolHTTPS, Download: true},
}, {
	// README §3.2, register response (no port, no protocol).
	name: "spec register response",
	body: `{
  "alias": "Nice Orange",
  "version": "2.0",
  "deviceModel": "Samsung",
  "deviceType": "mobile",
  "fingerprint": "random string",
  "download": true
}`,
	want: Info{Alias: "Nice Orange", Version: "2.0", DeviceModel: ptr("Samsung"), DeviceType: DeviceMobile,
		Fingerprint: "random string", Download: true},
}, {
	// README §3.1, a multicast announcement: "announce" is not Info's and is ignored.
	name: "spec announcement",
	body: `{
  "alias": "Nice Orange",
  "version": "2.0",
  "deviceModel": "Samsung",
  "deviceType": "mobile",
  "fingerprint": "random string",
  "port": 53317,
  "protocol": "https",
  "download": true,
  "announce": true
}`,
	want: Info{Alias: "Nice Orange", Version: "2.0", DeviceModel: ptr("Samsung"), DeviceType: DeviceMobile,
		Fingerprint: "random string", Port: 53317, Protocol: ProtocolHTTPS, Download: true},
}, {
	// localsend/localsend packages/core/src/model/discovery.rs,
	// test_multicast_message_without_optional_fields.
	name: "app 1.18 without optional fields",
	body: `{
            "alias": "Secret Banana",
            "version": "2.2",
            "fingerprint": "random string",
            "port": 53317,
            "protocol": "http"
        }`,
	want: Info{Alias: "Secret Banana", Version: "2.2", Fingerprint: "random string", Port: 53317, Protocol: ProtocolHTTP},
}, {
	// What serde_json makes of packages/core/tests/v2_server.rs sender_info():
	// device_type None is skipped, download is always written.
	name: "app 1.18 RegisterDtoV2",
	body: `{"alias":"Test Sender","version":"2.2","deviceModel":"Rust","fingerprint":"sender-fingerprint","port":53317,"protocol":"http","download":false}`,
	want: Info{Alias: "Test Sender", Version: "2.2", DeviceModel: ptr("Rust"), Fingerprint: "sender-fingerprint",
		Port: 53317, Protocol: ProtocolHTTP},
}, {
	// Dart apps up to 1.17 wrote null for missing optional fields.
	name: "nulls",
	body: `{"alias":"Old Phone","version":"2.1","deviceModel":null,"deviceType":null,"fingerprint":"x","port":53317,"protocol":"https","download":null}`,
	want: Info{Alias: "Old Phone", Version: "2.1", Fingerprint: "x", Port: 53317, Protocol: ProtocolHTTPS},
}}

var prepareGoldens = []struct {
	name string
	body string
	want PrepareUpload
	// canonical: our encoding of want is this body byte for byte (plus
	// the encoder's newline), which proves we write what the app writes.
	canonical bool
}{{
	// README §4.1 request; the spec's "*sha256 hash*" placeholders are
	// replaced with sha256("hello") (a placeholder is refused: see
	// TestDecodePrepareUploadRejects).
	name: "spec prepare-upload",
	body: `{
  "info": {
    "alias": "Nice Orange",
    "version": "2.0",
    "deviceModel": "Samsung",
    "deviceType": "mobile",
    "fingerprint": "random string",
    "port": 53317,
    "protocol": "https",
    "download": true
  },
  "files": {
    "some file id": {
      "id": "some file id",
      "fileName": "my image.png",
      "size": 324242,
      "fileType": "image/jpeg",
      "sha256": "` + helloSHA256 + `",
      "preview": "*preview data*",
      "metadata": {
        "modified": "2021-01-01T12:34:56Z",
        "accessed": "2021-01-01T12:34:56Z"
      }
    },
    "another file id": {
      "id": "another file id",
      "fileName": "another image.jpg",
      "size": 1234,
      "fileType": "image/jpeg",
      "sha256": "` + helloSHA256 + `",
      "preview": "*preview data*"
    }
  }
}`,
	want: PrepareUpload{
		Info: Info{Alias: "Nice Orange", Version: "2.0", DeviceModel: ptr("Samsung"), DeviceType: DeviceMobile,
			Fingerprint: "random string", Port: 53317, Protocol: ProtocolHTTPS, Download: true},
		Files: map[string]File{
			"some file id": {ID: "some file id", FileName: "my image.png", Size: 324242, FileType: "image/jpeg",
				SHA256: helloSHA256, Preview: "*preview data*",
				Metadata: &Metadata{Modified: "2021-01-01T12:34:56Z", Accessed: "2021-01-01T12:34:56Z"}},
			"another file id": {ID: "another file id", FileName: "another image.jpg", Size: 1234, FileType: "image/jpeg",
				SHA256: helloSHA256, Preview: "*preview data*"},
		},
	},
}, {
	// serde_json of packages/core/tests/v2_server.rs
	// test_upload_with_matching_sha256's request (field order is the DTOs').
	name:      "app 1.18 with sha256",
	body:      `{"info":{"alias":"Test Sender","version":"2.2","deviceModel":"Rust","fingerprint":"sender-fingerprint","port":53317,"protocol":"http","download":false},"files":{"file-a":{"id":"file-a","fileName":"a.bin","size":5,"fileType":"application/octet-stream","sha256":"` + helloSHA256 + `"}}}`,
	canonical: true,
	want: PrepareUpload{
		Info: Info{Alias: "Test Sender", Version: "2.2", DeviceModel: ptr("Rust"), Fingerprint: "sender-fingerprint",
			Port: 53317, Protocol: ProtocolHTTP},
		Files: map[string]File{"file-a": {ID: "file-a", FileName: "a.bin", Size: 5, FileType: "application/octet-stream", SHA256: helloSHA256}},
	},
}, {
	// test_upload_applies_file_timestamps's request: metadata with one time.
	name:      "app 1.18 with metadata",
	body:      `{"info":{"alias":"Test Sender","version":"2.2","deviceModel":"Rust","fingerprint":"sender-fingerprint","port":53317,"protocol":"http","download":false},"files":{"file-a":{"id":"file-a","fileName":"a.bin","size":5,"fileType":"application/octet-stream","metadata":{"modified":"2020-08-15T10:20:30.500Z"}}}}`,
	canonical: true,
	want: PrepareUpload{
		Info: Info{Alias: "Test Sender", Version: "2.2", DeviceModel: ptr("Rust"), Fingerprint: "sender-fingerprint",
			Port: 53317, Protocol: ProtocolHTTP},
		Files: map[string]File{"file-a": {ID: "file-a", FileName: "a.bin", Size: 5, FileType: "application/octet-stream",
			Metadata: &Metadata{Modified: "2020-08-15T10:20:30.500Z"}}},
	},
}, {
	// Two files in folders and a text message, as a 1.18 sender makes them
	// (UUID ids, relative names with "/", upper-case hex accepted and
	// lowered).
	name: "folders and a text message",
	body: `{"info":{"alias":"Pixel 9","version":"2.2","deviceModel":"Google","deviceType":"mobile","fingerprint":"4BADDE53A7F7CDEEED93189FD898E02BF6B4806CA4C05DE0ACE08319B86552FA","port":53317,"protocol":"https","download":false},` +
		`"files":{"0b5e8a2c-8f5e-4f7e-9c1a-3c2d1e0f9a8b":{"id":"0b5e8a2c-8f5e-4f7e-9c1a-3c2d1e0f9a8b","fileName":"Photos/2024/IMG_0001.jpg","size":0,"fileType":"image/jpeg","sha256":"E3B0C44298FC1C149AFBF4C8996FB92427AE41E4649B934CA495991B7852B855"},` +
		`"7d1f3e2a-1111-4222-8333-944455556666":{"id":"7d1f3e2a-1111-4222-8333-944455556666","fileName":"message.txt","size":12,"fileType":"text/plain","preview":"Hello, Ünïcø"}}}`,
	want: PrepareUpload{
		Info: Info{Alias: "Pixel 9", Version: "2.2", DeviceModel: ptr("Google"), DeviceType: DeviceMobile,
			Fingerprint: "4BADDE53A7F7CDEEED93189FD898E02BF6B4806CA4C05DE0ACE08319B86552FA", Port: 53317, Protocol: ProtocolHTTPS},
		Files: map[string]File{
			"0b5e8a2c-8f5e-4f7e-9c1a-3c2d1e0f9a8b": {ID: "0b5e8a2c-8f5e-4f7e-9c1a-3c2d1e0f9a8b", FileName: "Photos/2024/IMG_0001.jpg",
				FileType: "image/jpeg", SHA256: "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855"},
			"7d1f3e2a-1111-4222-8333-944455556666": {ID: "7d1f3e2a-1111-4222-8333-944455556666", FileName: "message.txt",
				Size: 12, FileType: "text/plain", Preview: "Hello, Ünïcø"},
		},
	},
}}

var replyGoldens = []struct {
	name string
	body string
	want PrepareUploadReply
}{{
	// README §4.1 response.
	name: "spec",
	body: `{
  "sessionId": "mySessionId",
  "files": {
    "someFileId": "someFileToken",
    "someOtherFileId": "someOtherFileToken"
  }
}`,
	want: PrepareUploadReply{SessionID: "mySessionId",
		Files: map[string]string{"someFileId": "someFileToken", "someOtherFileId": "someOtherFileToken"}},
}, {
	// The 1.18 server: UUID session and tokens.
	name: "app 1.18",
	body: `{"sessionId":"5f0c7d8e-2a1b-4c3d-9e8f-0a1b2c3d4e5f","files":{"file-a":"c2a9e0f1-3b4c-4d5e-8f9a-0b1c2d3e4f5a"}}`,
	want: PrepareUploadReply{SessionID: "5f0c7d8e-2a1b-4c3d-9e8f-0a1b2c3d4e5f",
		Files: map[string]string{"file-a": "c2a9e0f1-3b4c-4d5e-8f9a-0b1c2d3e4f5a"}},
}}

// errorGoldens are the 1.18 server's error bodies
// (packages/core/src/http/server/common/{error,pin}.rs, server/v2.rs).
var errorGoldens = []string{
	`{"message":"PIN required"}`,
	`{"message":"Invalid PIN"}`,
	`{"message":"Too many requests"}`,
	`{"message":"Rejected"}`,
	`{"message":"Blocked by another session"}`,
	`{"message":"Invalid token or IP address"}`,
	`{"message":"Checksum mismatch"}`,
	`{"message":"Invalid JSON body"}`,
}

// appCertPEM and appCertFingerprint are the test certificate of the 1.18
// app's packages/core/src/http/client/server_cert_verifier.rs and the
// fingerprint the app computes for it.
const appCertPEM = `-----BEGIN CERTIFICATE-----
MIIDGTCCAgGgAwIBAgIBATANBgkqhkiG9w0BAQsFADBQMRcwFQYDVQQDEw5Mb2Nh
bFNlbmQgVXNlcjEJMAcGA1UEChMAMQkwBwYDVQQLEwAxCTAHBgNVBAcTADEJMAcG
A1UECBMAMQkwBwYDVQQGEwAwHhcNMjUwMjA5MDAwMzE0WhcNMzUwMjA3MDAwMzE0
WjBQMRcwFQYDVQQDEw5Mb2NhbFNlbmQgVXNlcjEJMAcGA1UEChMAMQkwBwYDVQQL
EwAxCTAHBgNVBAcTADEJMAcGA1UECBMAMQkwBwYDVQQGEwAwggEiMA0GCSqGSIb3
DQEBAQUAA4IBDwAwggEKAoIBAQCL24MxhGfrdJm0Q8ZGiBkZ27ldcEChB4w7rSbJ
yiKeosoNbJl2kyj5dZjfBhWGgDLGDMM5w+Mh/5SrWgTL/QrhbB+lsrxILLznWqBi
R8wJP0P2YW9fBahQskJQcUXt/3jsCsMTWea4rWc3HZGh03bAkJfLM+PDSOfTpvAZ
6DQSp9QLzC9bgVNnq3W0SvOZGpF0xRa4InCyTUgxsNsV4+GIrmN5w4EbRFVVYu7D
5OS5fxNSCukiS0fb6oQzUp0vIAycvvWHHbAy8T6UMoUor2nfvNcryiaOX5WBMLyh
yMZ5gMOyXjdm1bT1XSlvtXPYUzxvsGAzTqS8mXjw8h7mm5htAgMBAAEwDQYJKoZI
hvcNAQELBQADggEBABZ+I7D6wkeSrsi1NBLP2zoZ5oGh+INNcGTravfOQHs4Fbas
/CysaUYjsD3fmaDh4MxgWEqAmWnnBiojfpGX2SGuFqRBKyT9DgitBt0L7Ezg1k3h
bfSiFW4hXWp75grVO8xfML7ZcWMlhKrOsOMUGiy1qs3qsyJ3w7B2Tz78HhXGO5dd
jyPmZarhixKO92UpEvKGxjO0E/3UUNUzxKTAAgFfhKpuwHUgIijM/EppZtA8OcSh
fEztiV0xKfcPVx4d6dqRt/NMElK1Ivw2vUuxTymphZkkFOzht9m73/kyKaeFp8Ij
VRus1zGVD8IVpIdPMyz01WJyS7M0fWaHXKWo+Bo=
-----END CERTIFICATE-----`

const appCertFingerprint = "4BADDE53A7F7CDEEED93189FD898E02BF6B4806CA4C05DE0ACE08319B86552FA"
