package puller

import (
	"testing"
	"time"
)

func TestRefreshWait(t *testing.T) {
	const hour, retry = time.Hour, 30 * time.Second
	tests := []struct {
		interval     time.Duration
		failedInARow int
		want         time.Duration
	}{
		{hour, 0, hour},
		{hour, 1, retry},
		{hour, 2, 2 * retry},
		{hour, 3, 4 * retry},
		{hour, 7, 64 * retry},
		{hour, 8, hour}, // 128 x 30 s is above the interval: capped
		{8760 * hour, 1000, 8760 * hour},
		{10 * time.Second, 1, 10 * time.Second}, // an interval below the first retry caps it too
	}
	for _, tt := range tests {
		if got := refreshWait(tt.interval, retry, tt.failedInARow); got != tt.want {
			t.Errorf("refreshWait(%v, %v, %d) = %v, want %v", tt.interval, retry, tt.failedInARow, got, tt.want)
		}
	}
}
