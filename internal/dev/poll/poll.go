// Package poll waits in tests for a condition that the system under test
// reaches by itself, and says what it last saw when it does not.
package poll

import (
	"testing"
	"time"
)

// Until calls cond every interval until it holds, and fails the test with
// what cond last reported when timeout passes first.
func Until(t testing.TB, timeout, interval time.Duration, what string, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	var last string
	for time.Now().Before(deadline) {
		ok, state := cond()
		if ok {
			return
		}
		last = state
		time.Sleep(interval)
	}
	t.Fatalf("%s: not within %v; last seen: %s", what, timeout, last)
}
