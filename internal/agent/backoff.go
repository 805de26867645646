package agent

import (
	"strings"
	"time"
)

// Backoff is an exponential backoff with a cap: Initial after the first
// failure, doubling after each next one, never more than Max.
type Backoff struct {
	Initial, Max time.Duration
}

// After is the wait after the given number of consecutive failures (1 for
// the first).
func (b Backoff) After(failures int) time.Duration {
	if failures < 1 || b.Initial <= 0 {
		return b.Initial
	}
	d := b.Initial
	for i := 1; i < failures; i++ {
		d *= 2
		if b.Max > 0 && d >= b.Max {
			return b.Max
		}
	}
	if b.Max > 0 && d > b.Max {
		return b.Max
	}
	return d
}

// cutDigest splits name@sha256:... into the name and the digest.
func cutDigest(ref string) (string, string, bool) {
	i := strings.LastIndex(ref, "@")
	if i < 0 {
		return ref, "", false
	}
	return ref[:i], ref[i+1:], true
}
