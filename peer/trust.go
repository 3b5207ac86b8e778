package peer

import (
	"crypto/sha256"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
)

// certID is the id of the leaf certificate in raw: the SHA-256 of its
// public key (SubjectPublicKeyInfo), as Identity.ID.
func certID(raw [][]byte) (string, error) {
	if len(raw) == 0 {
		return "", errors.New("peer sent no certificate")
	}
	cert, err := x509.ParseCertificate(raw[0])
	if err != nil {
		return "", fmt.Errorf("peer's certificate: %w", err)
	}
	sum := sha256.Sum256(cert.RawSubjectPublicKeyInfo)
	return idEncoding.EncodeToString(sum[:]), nil
}

// PeerID is the id of the peer on a completed TLS connection.
func PeerID(cs tls.ConnectionState) string {
	if len(cs.PeerCertificates) == 0 {
		return ""
	}
	id, _ := certID([][]byte{cs.PeerCertificates[0].Raw})
	return id
}

// ServerTLS is the receiving agent's TLS configuration: TLS 1.3 only, and
// the sender must present a certificate, whose key is its id. Names and
// certificate chains mean nothing here; a peer is its key. The TLS 1.3
// handshake proves that the peer holds the key of the certificate it shows.
func (id *Identity) ServerTLS() *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ClientAuth:   tls.RequireAnyClientCert,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			_, err := certID(raw)
			return err
		},
	}
}

// ClientTLS is the sender's TLS configuration for a receiver expected to
// have id want. The handshake fails with ErrWrongKey, before a byte of the
// transfer is sent, when the receiver's key has another id. An empty want
// accepts any key (a target given by address); the caller then learns the
// id from PeerID.
func (id *Identity) ClientTLS(want string) *tls.Config {
	return &tls.Config{
		MinVersion:   tls.VersionTLS13,
		Certificates: []tls.Certificate{id.Cert},
		ServerName:   "lanshare",
		// The chain check is replaced by the key check below: there is no
		// CA, a peer's id is the hash of its key.
		InsecureSkipVerify: true,
		VerifyPeerCertificate: func(raw [][]byte, _ [][]*x509.Certificate) error {
			got, err := certID(raw)
			if err != nil {
				return err
			}
			if want != "" && got != want {
				return fmt.Errorf("%w: expected %s, got %s", ErrWrongKey, GroupID(want), GroupID(got))
			}
			return nil
		},
	}
}
