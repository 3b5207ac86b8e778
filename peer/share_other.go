//go:build !unix

package peer

import "os"

// openSharedFile opens a shared file for a download. Here it follows
// links (see share_unix.go).
func openSharedFile(path string) (*os.File, error) { return os.Open(path) }

// openSharedRoot opens a shared folder for a zip.
func openSharedRoot(path string) (*os.Root, error) { return os.OpenRoot(path) }

// resolveShared is the path a share serves: abs as given, since the
// download follows links here anyway.
func resolveShared(abs string) (string, error) { return abs, nil }
