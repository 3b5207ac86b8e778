//go:build !unix

package main

import (
	"io"
	"os"
)

// pollableStdin returns f: a read in progress is waited for.
func pollableStdin(f *os.File) (r io.Reader, restore func()) { return f, func() {} }
