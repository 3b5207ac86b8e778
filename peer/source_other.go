//go:build !unix

package peer

import "os"

// openSource opens a local file to send, for reading.
func openSource(name string) (*os.File, error) { return os.Open(name) }

// checkOpen reports whether name, a regular file, opens for reading.
func checkOpen(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	return f.Close()
}

// readWhole reports false: small files are sent the common way here.
func readWhole(Item, []byte) bool { return false }

// unchanged reports false: nothing is read ahead here (see readWhole).
func unchanged(Item) bool { return false }
