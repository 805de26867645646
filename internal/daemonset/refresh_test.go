package daemonset

import (
	"maps"
	"slices"
	"testing"
)

func TestNextRefresh(t *testing.T) {
	const (
		a1 = "sha256:a1"
		a2 = "sha256:a2"
		b1 = "sha256:b1"
	)
	cases := []struct {
		name        string
		prev        RefreshState
		refs        []string
		resolved    map[string]string
		wantDigests map[string]string
		wantChanged []string
		wantRoll    bool
	}{
		{
			name:        "first refresh records without a roll",
			refs:        []string{"a:1", "b:1"},
			resolved:    map[string]string{"a:1": a1, "b:1": b1},
			wantDigests: map[string]string{"a:1": a1, "b:1": b1},
		},
		{
			name:        "same digests change nothing",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1}, Rollout: "r0"},
			refs:        []string{"a:1"},
			resolved:    map[string]string{"a:1": a1},
			wantDigests: map[string]string{"a:1": a1},
		},
		{
			name:        "a moved tag rolls",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1, "b:1": b1}, Rollout: "r0"},
			refs:        []string{"a:1", "b:1"},
			resolved:    map[string]string{"a:1": a2, "b:1": b1},
			wantDigests: map[string]string{"a:1": a2, "b:1": b1},
			wantChanged: []string{"a:1"},
			wantRoll:    true,
		},
		{
			name:        "an unresolved tag keeps its digest and does not roll",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1, "b:1": b1}, Rollout: "r0"},
			refs:        []string{"a:1", "b:1"},
			resolved:    map[string]string{"b:1": b1},
			wantDigests: map[string]string{"a:1": a1, "b:1": b1},
		},
		{
			name:        "an empty result counts as unresolved",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1}},
			refs:        []string{"a:1"},
			resolved:    map[string]string{"a:1": ""},
			wantDigests: map[string]string{"a:1": a1},
		},
		{
			name:        "a removed image is forgotten",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1, "b:1": b1}, Rollout: "r0"},
			refs:        []string{"b:1"},
			resolved:    map[string]string{"a:1": a2, "b:1": b1},
			wantDigests: map[string]string{"b:1": b1},
		},
		{
			name:        "a new image joins without a roll",
			prev:        RefreshState{Digests: map[string]string{"a:1": a1}, Rollout: "r0"},
			refs:        []string{"a:1", "b:1"},
			resolved:    map[string]string{"b:1": b1},
			wantDigests: map[string]string{"a:1": a1, "b:1": b1},
		},
		{
			name: "nothing resolved, nothing recorded",
			refs: []string{"a:1"},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			next, changed := NextRefresh(tc.prev, tc.refs, tc.resolved)
			if !maps.Equal(next.Digests, tc.wantDigests) {
				t.Errorf("digests = %v, want %v", next.Digests, tc.wantDigests)
			}
			if !slices.Equal(changed, tc.wantChanged) {
				t.Errorf("changed = %v, want %v", changed, tc.wantChanged)
			}
			if rolled := next.Rollout != tc.prev.Rollout; rolled != tc.wantRoll {
				t.Errorf("rollout %q -> %q: rolled = %v, want %v", tc.prev.Rollout, next.Rollout, rolled, tc.wantRoll)
			}
			// Applying the same result again is a no-op: what the controller
			// relies on to stay idle.
			again, changedAgain := NextRefresh(next, tc.refs, tc.resolved)
			if !maps.Equal(again.Digests, next.Digests) || again.Rollout != next.Rollout || len(changedAgain) != 0 {
				t.Errorf("second application changed the state: %+v -> %+v (%v)", next, again, changedAgain)
			}
		})
	}
}

func TestNextRefreshRolloutDiffersPerChange(t *testing.T) {
	prev := RefreshState{Digests: map[string]string{"a:1": "sha256:1"}, Rollout: "r0"}
	x, _ := NextRefresh(prev, []string{"a:1"}, map[string]string{"a:1": "sha256:2"})
	y, _ := NextRefresh(prev, []string{"a:1"}, map[string]string{"a:1": "sha256:3"})
	if x.Rollout == y.Rollout || x.Rollout == "" {
		t.Errorf("rollouts %q and %q: want distinct, non-empty", x.Rollout, y.Rollout)
	}
}
