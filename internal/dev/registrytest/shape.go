package registrytest

import (
	"context"
	"net/http"
	"time"

	"golang.org/x/time/rate"
)

// Shape makes a registry on loopback behave like a remote one: each answer
// starts latency late (the first byte of a blob from a registry an ocean
// away), and each answer's body streams at most bytesPerSecond (one TCP
// stream's share of a link). Loopback pulls are otherwise bound by CPU, so
// pulling in parallel could not show its worth. 0 leaves either one out.
func Shape(next http.Handler, latency time.Duration, bytesPerSecond int) http.Handler {
	if latency <= 0 && bytesPerSecond <= 0 {
		return next
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if latency > 0 {
			select {
			case <-time.After(latency):
			case <-r.Context().Done():
				return
			}
		}
		if bytesPerSecond > 0 {
			w = &throttled{ResponseWriter: w, ctx: r.Context(), limit: rate.NewLimiter(rate.Limit(bytesPerSecond), burst(bytesPerSecond))}
		}
		next.ServeHTTP(w, r)
	})
}

// burst is the most written at once: 64 KiB, or the whole second's share
// when that is less.
func burst(bytesPerSecond int) int {
	return min(64<<10, bytesPerSecond)
}

// throttled writes through a token bucket of one byte per token.
type throttled struct {
	http.ResponseWriter
	ctx   context.Context
	limit *rate.Limiter
}

func (t *throttled) Write(p []byte) (int, error) {
	written := 0
	for len(p) > 0 {
		n := min(len(p), t.limit.Burst())
		if err := t.limit.WaitN(t.ctx, n); err != nil {
			return written, err
		}
		m, err := t.ResponseWriter.Write(p[:n])
		written += m
		if err != nil {
			return written, err
		}
		p = p[n:]
	}
	return written, nil
}

// Flush passes a flush on, for streaming answers.
func (t *throttled) Flush() {
	if f, ok := t.ResponseWriter.(http.Flusher); ok {
		f.Flush()
	}
}
