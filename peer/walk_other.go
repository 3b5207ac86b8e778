//go:build !unix

package peer

// walk adds the directory root, offered as base, and everything in it
// that can be sent (see walkSerial).
func (c *collector) walk(root, base string) error { return c.walkSerial(root, base) }
