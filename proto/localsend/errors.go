package localsend

import "errors"

// Decode errors. Every error a Decode function returns wraps one of these,
// or is the reader's own error (wrapped), so a caller can answer a hostile
// or confused peer (400, 413) apart from a dropped connection with
// errors.Is. A body that ends inside its JSON is ErrMalformed.
var (
	// ErrTooLarge means the body, a count or a field is over its cap. It
	// is reported before anything beyond the cap is allocated.
	ErrTooLarge = errors.New("localsend: body, count or field over limit")
	// ErrMalformed means the body is not the JSON the API expects: bad
	// syntax or UTF-8, a missing or duplicate file id, a field of the wrong
	// type or with a value outside its domain.
	ErrMalformed = errors.New("localsend: malformed body")
)
