package main

import (
	"os"
	"runtime/debug"
	"strconv"
	"strings"
)

// cgroupMemoryMax is the container's memory limit (cgroup v2).
const cgroupMemoryMax = "/sys/fs/cgroup/memory.max"

// memoryLimitFraction of the container's limit is the Go heap's soft limit:
// near it the garbage collector works harder instead of letting the kernel
// kill the process, and the rest is left for stacks and the runtime.
const memoryLimitFraction = 0.9

// softMemoryLimit returns the heap limit for a container limit read from
// cgroupMax ("max" or bytes), or 0 for none.
func softMemoryLimit(cgroupMax string) int64 {
	limit, err := strconv.ParseInt(strings.TrimSpace(cgroupMax), 10, 64)
	if err != nil || limit <= 0 {
		return 0
	}
	return int64(float64(limit) * memoryLimitFraction)
}

// setMemoryLimit sets the Go heap's soft limit from the container's memory
// limit, unless GOMEMLIMIT says otherwise.
func setMemoryLimit() {
	if os.Getenv("GOMEMLIMIT") != "" {
		return
	}
	data, err := os.ReadFile(cgroupMemoryMax)
	if err != nil {
		return
	}
	if limit := softMemoryLimit(string(data)); limit > 0 {
		debug.SetMemoryLimit(limit)
	}
}

// defaultGCPercent is the garbage collector's target when GOGC is not set:
// the heap may grow to 1.5 times what is live after a collection, not 2
// times. The controllers' live heap is mostly their cache and one status
// report in the making (2,000 nodes x 100 images: about 40 MB); the
// default would let idle memory double that. The price is collecting twice
// as often, which costs nothing while the cluster is idle (make
// bench-scale measures both).
const defaultGCPercent = 50

// gcPercent is the GC target to set for the environment's GOGC value, and
// false when GOGC says it already.
func gcPercent(gogc string) (int, bool) {
	if gogc != "" {
		return 0, false
	}
	return defaultGCPercent, true
}

// setGCPercent sets defaultGCPercent unless GOGC is set.
func setGCPercent() {
	if p, ok := gcPercent(os.Getenv("GOGC")); ok {
		debug.SetGCPercent(p)
	}
}
