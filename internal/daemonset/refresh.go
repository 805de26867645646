package daemonset

import (
	"crypto/sha256"
	"encoding/hex"
	"sort"
)

// NextRefresh merges freshly resolved digests into the recorded state.
//
// refs are the tags configured now; resolved holds the digests a refresh
// obtained (a tag that could not be resolved is absent). A tag keeps its
// recorded digest when it could not be resolved, is recorded without a roll
// when it had no digest yet, and changes Rollout when its digest moved.
// Tags no longer configured are forgotten. It returns the tags whose digest
// changed, sorted.
func NextRefresh(prev RefreshState, refs []string, resolved map[string]string) (RefreshState, []string) {
	next := RefreshState{Digests: map[string]string{}, Rollout: prev.Rollout}
	var changed []string
	for _, ref := range refs {
		old, had := prev.Digests[ref]
		now, ok := resolved[ref]
		switch {
		case ok && now != "":
			next.Digests[ref] = now
			if had && old != now {
				changed = append(changed, ref)
			}
		case had:
			next.Digests[ref] = old
		}
	}
	if len(next.Digests) == 0 {
		next.Digests = nil
	}
	if len(changed) > 0 {
		sort.Strings(changed)
		h := sha256.New()
		h.Write([]byte(prev.Rollout))
		for _, ref := range changed {
			h.Write([]byte("\x00" + ref + "@" + next.Digests[ref]))
		}
		next.Rollout = hex.EncodeToString(h.Sum(nil))[:16]
	}
	return next, changed
}
