package peer

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"os"
)

// checkWritable makes sure received files can land in the shared folder
// before the agent announces itself: it creates, writes and removes a
// probe file in the staging folder, where every file is written (a
// read-only file system, a full quota fail there), and then one in the
// shared folder, where files get their final names (its permissions). The
// probes are named as temporary files are, so the sweep removes one left
// by a crash. The error wraps ErrNotWritable.
func (in *Inbox) checkWritable() error {
	s, err := in.staging()
	if err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, in.cfg.Dir, err)
	}
	var rnd [8]byte
	_, _ = rand.Read(rnd[:])
	probe := "tmp-" + hex.EncodeToString(rnd[:])
	if err := writeProbe(s.root, probe); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, in.cfg.Dir, errReasonNoPath(err))
	}
	if err := writeProbe(in.root, "."+stagingDir+"-"+probe); err != nil {
		return fmt.Errorf("%w: %s: %w", ErrNotWritable, in.cfg.Dir, errReasonNoPath(err))
	}
	return nil
}

// writeProbe creates name under root, writes a byte to it and removes it.
func writeProbe(root *os.Root, name string) error {
	f, err := root.OpenFile(name, os.O_CREATE|os.O_EXCL|os.O_WRONLY, 0o600)
	if err != nil {
		return err
	}
	_, err = f.Write([]byte{0})
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if rerr := root.Remove(name); err == nil {
		err = rerr
	}
	return err
}
