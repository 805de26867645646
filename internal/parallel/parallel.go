// Package parallel runs one function over many items with a bound on how
// many run at once: registry lookups on refresh, CRI pulls on a node.
package parallel

import "golang.org/x/sync/errgroup"

// Map calls fn on every item, at most limit at a time (at least one), and
// returns the results in the order of items. fn carries its own errors in
// its result, so that one failing item never stops the others.
func Map[T, R any](items []T, limit int, fn func(T) R) []R {
	out := make([]R, len(items))
	var g errgroup.Group
	g.SetLimit(max(limit, 1))
	for i, item := range items {
		g.Go(func() error {
			out[i] = fn(item)
			return nil
		})
	}
	_ = g.Wait() // fn returns no error: every result is in out
	return out
}
