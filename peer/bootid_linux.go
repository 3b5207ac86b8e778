package peer

import (
	"os"
	"strings"
	"sync"
)

// bootID tells this boot of the system from any other: a resume that
// finds the boot of the transfer that died is after a process's death,
// whose writes are still in the page cache, not after a crash of the
// system, which may have lost them. Empty where it cannot tell.
var bootID = sync.OnceValue(func() string {
	b, err := os.ReadFile("/proc/sys/kernel/random/boot_id")
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(b))
})
