package testenv

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"sigs.k8s.io/controller-runtime/pkg/metrics"
)

// Writes records the write requests a client sends, as "METHOD path".
// Wrap a rest.Config's transport with it: rc.Wrap(w.Wrap).
type Writes struct {
	mu     sync.Mutex
	writes []string
}

// Wrap records every request but reads and dry runs.
func (w *Writes) Wrap(rt http.RoundTripper) http.RoundTripper {
	return roundTripFunc(func(req *http.Request) (*http.Response, error) {
		switch {
		case req.Method == http.MethodGet, req.Method == http.MethodHead, req.Method == http.MethodOptions:
		case req.URL.Query().Has("dryRun"): // validated and admitted, stored nowhere
		default:
			w.mu.Lock()
			w.writes = append(w.writes, req.Method+" "+req.URL.Path)
			w.mu.Unlock()
		}
		return rt.RoundTrip(req)
	})
}

type roundTripFunc func(*http.Request) (*http.Response, error)

func (f roundTripFunc) RoundTrip(r *http.Request) (*http.Response, error) { return f(r) }

// Count returns the writes so far, leaving out Lease renewals (leader
// election keeps its lease alive on purpose) unless withLeases.
func (w *Writes) Count(withLeases bool) []string {
	w.mu.Lock()
	defer w.mu.Unlock()
	var out []string
	for _, wr := range w.writes {
		if withLeases || !strings.Contains(wr, "/leases/") {
			out = append(out, wr)
		}
	}
	return out
}

// Reset forgets the writes so far.
func (w *Writes) Reset() {
	w.mu.Lock()
	w.writes = nil
	w.mu.Unlock()
}

// Matching counts the writes whose "METHOD path" contains part.
func (w *Writes) Matching(part string) int {
	n := 0
	for _, wr := range w.Count(true) {
		if strings.Contains(wr, part) {
			n++
		}
	}
	return n
}

// ReconcileCount reads controller-runtime's reconcile counter of one
// controller (by its name) in this process: the sync point of a test that
// asserts that nothing happened, which first proves that the controller
// looked.
func ReconcileCount(t testing.TB, controller string) float64 {
	t.Helper()
	families, err := metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0.0
	for _, f := range families {
		if f.GetName() != "controller_runtime_reconcile_total" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "controller" && l.GetValue() == controller {
					total += m.GetCounter().GetValue()
				}
			}
		}
	}
	return total
}

// WaitForReconciles waits until controller (by its name) has finished n
// more reconciles than since, a ReconcileCount read before: with n = 2, at
// least one of them began after since was read, and so saw what the test
// had done by then.
func WaitForReconciles(t *testing.T, controller string, since float64, n int) {
	t.Helper()
	Eventually(t, 30*time.Second, fmt.Sprintf("%s reconciling %d more times", controller, n), func() (bool, string) {
		got := ReconcileCount(t, controller)
		return got >= since+float64(n), fmt.Sprintf("%v reconciles, %v before", got, since)
	})
}
