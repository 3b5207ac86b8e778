package lsdouble

import (
	"errors"
	"fmt"
	"net/http"
)

// Sentinels a sender's errors match with errors.Is.
var (
	// ErrDeclined: prepare-upload answered 403 (the person declined, or the
	// sender cancelled while it was pending).
	ErrDeclined = errors.New("lsdouble: declined")
	// ErrBusy: 409, another session is active.
	ErrBusy = errors.New("lsdouble: receiver busy")
	// ErrPIN: 401, a PIN is required or the one sent was wrong.
	ErrPIN = errors.New("lsdouble: PIN required or wrong")
	// ErrTooManyAttempts: 429 after three wrong PINs from this address.
	ErrTooManyAttempts = errors.New("lsdouble: too many PIN attempts")
	// ErrChecksum: an upload answered 422 (checksum mismatch).
	ErrChecksum = errors.New("lsdouble: checksum mismatch")
	// ErrForbidden: an upload answered 403 (bad token, other IP, file not
	// pending any more).
	ErrForbidden = errors.New("lsdouble: upload forbidden")
	// ErrFingerprintMismatch: the receiver's certificate is not the one
	// expected (see FingerprintError).
	ErrFingerprintMismatch = errors.New("lsdouble: certificate fingerprint mismatch")
	// ErrBadCertificate: a peer certificate failed the app's checks (parse,
	// dates, self-signature).
	ErrBadCertificate = errors.New("lsdouble: bad certificate")
)

// StatusError is an answer other than the one a step expected.
type StatusError struct {
	Op      string // "register", "prepare-upload", "upload", "cancel"
	Code    int
	Message string // the {"message": ...} of the body, or the raw body (capped)
}

func (e *StatusError) Error() string {
	if e.Message == "" {
		return fmt.Sprintf("lsdouble: %s: %d %s", e.Op, e.Code, http.StatusText(e.Code))
	}
	return fmt.Sprintf("lsdouble: %s: %d %s: %s", e.Op, e.Code, http.StatusText(e.Code), e.Message)
}

// Is maps status codes onto the sentinels, by step: 403 is ErrDeclined on
// prepare-upload and ErrForbidden on upload.
func (e *StatusError) Is(target error) bool {
	switch target {
	case ErrDeclined:
		return e.Code == http.StatusForbidden && e.Op == "prepare-upload"
	case ErrForbidden:
		return e.Code == http.StatusForbidden && e.Op == "upload"
	case ErrBusy:
		return e.Code == http.StatusConflict
	case ErrPIN:
		return e.Code == http.StatusUnauthorized
	case ErrTooManyAttempts:
		return e.Code == http.StatusTooManyRequests
	case ErrChecksum:
		return e.Code == http.StatusUnprocessableEntity
	}
	return false
}
