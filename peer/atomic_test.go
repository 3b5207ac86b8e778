package peer

import "sync/atomic"

type atomicUint64 = atomic.Uint64
