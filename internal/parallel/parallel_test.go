package parallel

import (
	"sync/atomic"
	"testing"
	"time"
)

func TestMapKeepsOrderAndBound(t *testing.T) {
	for _, tc := range []struct{ items, limit, wantMax int }{
		{items: 20, limit: 3, wantMax: 3},
		{items: 5, limit: 0, wantMax: 1}, // at least one at a time
		{items: 0, limit: 4, wantMax: 0},
	} {
		var running, peak atomic.Int32
		items := make([]int, tc.items)
		for i := range items {
			items[i] = i
		}
		got := Map(items, tc.limit, func(i int) int {
			n := running.Add(1)
			for {
				p := peak.Load()
				if n <= p || peak.CompareAndSwap(p, n) {
					break
				}
			}
			time.Sleep(2 * time.Millisecond)
			running.Add(-1)
			return i * i
		})
		if len(got) != tc.items {
			t.Fatalf("limit %d: %d results for %d items", tc.limit, len(got), tc.items)
		}
		for i, v := range got {
			if v != i*i {
				t.Errorf("limit %d: result %d is %d, want %d (results out of order)", tc.limit, i, v, i*i)
			}
		}
		if int(peak.Load()) > tc.wantMax || (tc.items > tc.wantMax && int(peak.Load()) != tc.wantMax) {
			t.Errorf("limit %d: peak %d running at once, want %d", tc.limit, peak.Load(), tc.wantMax)
		}
	}
}
