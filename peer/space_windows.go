//go:build windows

package peer

import "golang.org/x/sys/windows"

// freeSpace returns the bytes available to the caller on the volume
// holding dir.
func freeSpace(dir string) (uint64, error) {
	p, err := windows.UTF16PtrFromString(dir)
	if err != nil {
		return 0, err
	}
	var avail, total, free uint64
	if err := windows.GetDiskFreeSpaceEx(p, &avail, &total, &free); err != nil {
		return 0, err
	}
	return avail, nil
}

// freeFiles: NTFS and FAT have no fixed count of files to run out of
// before their space.
func freeFiles(string) (free, total uint64, err error) { return 0, 0, nil }
