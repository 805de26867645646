package registrytest

import (
	"bytes"
	"io"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

// TestShapeSetsAFloor: an answer through Shape can never come sooner than
// the latency, nor a body faster than the cap (lower bounds only: a slow
// machine only makes them longer).
func TestShapeSetsAFloor(t *testing.T) {
	body := bytes.Repeat([]byte("x"), 512<<10) // 512 KiB
	h := http.HandlerFunc(func(w http.ResponseWriter, _ *http.Request) { _, _ = w.Write(body) })
	tests := []struct {
		name      string
		latency   time.Duration
		bandwidth int
		atLeast   time.Duration
	}{
		{"latency", 150 * time.Millisecond, 0, 150 * time.Millisecond},
		{"bandwidth: 512 KiB at 1 MiB/s", 0, 1 << 20, 400 * time.Millisecond}, // 0.5 s, less the first burst
		{"both", 100 * time.Millisecond, 2 << 20, 300 * time.Millisecond},
	}
	for _, tt := range tests {
		srv := httptest.NewServer(Shape(h, tt.latency, tt.bandwidth))
		start := time.Now()
		resp, err := http.Get(srv.URL)
		if err != nil {
			t.Fatal(err)
		}
		got, err := io.ReadAll(resp.Body)
		_ = resp.Body.Close()
		took := time.Since(start)
		srv.Close()
		if err != nil || !bytes.Equal(got, body) {
			t.Fatalf("%s: body of %d bytes, %v", tt.name, len(got), err)
		}
		if took < tt.atLeast {
			t.Errorf("%s: answered in %s, sooner than %s", tt.name, took, tt.atLeast)
		}
	}
}
