package agent

import (
	"context"
	"errors"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
)

const mib = 1 << 20

// TestDiskBudget: images are pinned in IMAGES order while they fit
// PIN_BUDGET, the rest held unpinned and reported OverBudget with the
// sizes; no pull leaves less than IMAGEFS_FREE_FLOOR.
func TestDiskBudget(t *testing.T) {
	share := func(s string) *config.DiskShare {
		d, err := config.ParseDiskShare(s, 0)
		if err != nil {
			t.Fatal(err)
		}
		return &d
	}
	tests := []struct {
		name            string
		budget, floor   *config.DiskShare
		capacity        int64 // 0: the agent cannot see the filesystem
		sized           bool  // the registry tells each image's size before its pull
		images          int
		want            string // each image: P pinned, H held unpinned (OverBudget), F not pulled (OverBudget)
		wantBudget      int64
		wantPinnedBytes int64
	}{
		{"no bounds", nil, nil, 100 * mib, false, 4, "PPPP", -1, 4 * mib},
		{"a size", share("2.5Mi"), nil, 100 * mib, false, 4, "PPHH", 2.5 * mib, 2 * mib},
		{"a size on a filesystem the agent cannot see", share("2Mi"), nil, 0, false, 3, "PPH", 2 * mib, 2 * mib},
		{"a percentage", share("10%"), nil, 20 * mib, false, 4, "PPHH", 2 * mib, 2 * mib},
		{"a percentage of an unknown capacity binds nothing", share("10%"), share("20%"), 0, true, 3, "PPP", -1, 3 * mib},
		// Each image takes 1Mi, estimated at 3Mi before its pull.
		{"the floor, sizes from the registry", nil, share("70%"), 10 * mib, true, 6, "PFFFFF", -1, 1 * mib},
		{"the floor, sizes unknown: judged after each pull", nil, share("70%"), 10 * mib, false, 6, "PPPPFF", -1, 4 * mib},
		{"the floor as a size", nil, share("7Mi"), 10 * mib, true, 6, "PFFFFF", -1, 1 * mib},
		// Room is made for every pull of a round at once, in IMAGES order.
		{"both", share("1Mi"), share("50%"), 10 * mib, true, 5, "PFFFF", 1 * mib, 1 * mib},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			rt := newFakeRuntime()
			rt.disk = report.Disk{CapacityBytes: tc.capacity}
			pin := &fakePinner{rt: rt}
			o := opts(&clock{t: time.Unix(0, 0)})
			o.Parallelism, o.PinBudget, o.FreeFloor = 1, tc.budget, tc.floor
			if tc.sized {
				o.Sizer = func(context.Context, string, *Credential) (int64, error) { return mib, nil }
			}
			imgs := images(tc.images)
			a := New(rt, pin, noCreds, List{Images: imgs}, o)
			a.Sync(context.Background())
			var got strings.Builder
			for _, r := range a.Report() {
				switch {
				case r.State == report.StateCached && r.Pinned && r.Reason == "":
					got.WriteByte('P')
				case r.State == report.StateCached && !r.Pinned && r.Reason == report.ReasonOverBudget && strings.Contains(r.Message, "PIN_BUDGET is"):
					got.WriteByte('H')
				case r.State == report.StateFailed && r.Reason == report.ReasonOverBudget && strings.Contains(r.Message, "IMAGEFS_FREE_FLOOR"):
					got.WriteByte('F')
				default:
					t.Errorf("%s: %+v", r.Name, r)
					got.WriteByte('?')
				}
			}
			if got.String() != tc.want {
				t.Errorf("images %s, want %s: %+v", got.String(), tc.want, a.Report())
			}
			d := a.Disk()
			if d == nil || d.PinBudgetBytes != tc.wantBudget || d.PinnedBytes != tc.wantPinnedBytes {
				t.Errorf("disk %+v, want budget %d and %d pinned", d, tc.wantBudget, tc.wantPinnedBytes)
			}
			if held := int64(strings.Count(tc.want, "P")+strings.Count(tc.want, "H")) * mib; d.CachedBytes != held {
				t.Errorf("cached bytes %d, want %d", d.CachedBytes, held)
			}
			// kip's pins on the images past the budget go; the others stay.
			for i, c := range tc.want {
				if kept := slices.Contains(pin.keep, imgs[i].Ref); c == 'H' && kept {
					t.Errorf("%s past the budget, but its pin is kept: %v", imgs[i].Name, pin.keep)
				}
			}
		})
	}
}

// TestNothingPulledPastTheFloor: a filesystem already past the floor gets
// no pull, and the report says how full it is, or, for the images after
// the first, which one before them does not fit.
func TestNothingPulledPastTheFloor(t *testing.T) {
	rt := newFakeRuntime()
	rt.disk = report.Disk{CapacityBytes: 10 * mib}
	rt.held["reg.test/other:v1"] = Held{Size: 9 * mib} // someone else's
	floor := config.DiskShare{Percent: 20}
	o := opts(&clock{})
	o.FreeFloor = &floor
	a := New(rt, nil, noCreds, List{Images: images(2)}, o)
	if n := a.Sync(context.Background()); n != 0 || len(rt.pulls) != 0 {
		t.Errorf("pulled %d: %v", n, rt.pulls)
	}
	for i, want := range []string{
		"already past IMAGEFS_FREE_FLOOR (2Mi): 1Mi free of 10Mi, 0 of it taken by pulls under way, and the image takes an unknown size",
		"not pulled: img0, before it in IMAGES, does not fit IMAGEFS_FREE_FLOOR",
	} {
		if r := a.Report()[i]; r.Reason != report.ReasonOverBudget || !strings.Contains(r.Message, want) {
			t.Errorf("%+v, want %q", r, want)
		}
	}
	// Space freed: the next attempt pulls.
	rt.mu.Lock()
	delete(rt.held, "reg.test/other:v1")
	rt.mu.Unlock()
	a.RetryNow()
	if n := a.Sync(context.Background()); n != 2 {
		t.Errorf("after the space was freed, pulled %d; report %+v", n, a.Report())
	}
}

// TestABudgetFreedPinsAgain: once an image before them leaves the list,
// the images past the budget fit again and are pinned.
func TestABudgetFreedPinsAgain(t *testing.T) {
	rt := newFakeRuntime()
	rt.disk = report.Disk{CapacityBytes: 100 * mib}
	budget := config.DiskShare{Bytes: 2 * mib}
	o := opts(&clock{})
	o.PinBudget = &budget
	imgs := images(3)
	a := New(rt, &fakePinner{rt: rt}, noCreds, List{Images: imgs}, o)
	a.Sync(context.Background())
	if r := a.Report()[2]; r.Pinned || r.Reason != report.ReasonOverBudget {
		t.Fatalf("img2 before: %+v", r)
	}
	a.Update(List{Images: imgs[1:]})
	a.Sync(context.Background())
	for _, r := range a.Report() {
		if !r.Pinned || r.Reason != "" || r.Message != "" {
			t.Errorf("after img0 left: %+v", r)
		}
	}
}

func TestReleaseAllUnpinsEverything(t *testing.T) {
	rt := newFakeRuntime()
	pin := &fakePinner{rt: rt, keep: []string{"x"}}
	a := New(rt, pin, noCreds, List{Images: images(2)}, opts(&clock{}))
	if _, err := a.ReleaseAll(context.Background()); err != nil || pin.keep != nil {
		t.Errorf("keep %v, %v", pin.keep, err)
	}
}

// TestRoomIsMadeInListOrder: with every pull of a round sized at once, the
// images that fit are the first ones of IMAGES, whatever order the pulls
// finish in; a later round, after the backoff, makes room for the next.
func TestRoomIsMadeInListOrder(t *testing.T) {
	rt := newFakeRuntime()
	rt.disk = report.Disk{CapacityBytes: 20 * mib}
	floor := config.DiskShare{Bytes: 8 * mib}
	o := opts(&clock{})
	o.Parallelism, o.FreeFloor = 8, &floor
	o.Sizer = func(context.Context, string, *Credential) (int64, error) { return mib, nil }
	a := New(rt, nil, noCreds, List{Images: images(6)}, o)
	a.Sync(context.Background())
	// 20Mi free, 8Mi kept: 4 pulls of an estimated 3Mi each fit, 12Mi.
	if got := states(a.Report()); got != "img0=Cached img1=Cached img2=Cached img3=Cached img4=Failed img5=Failed" {
		t.Errorf("first round: %s", got)
	}
	a.RetryNow()
	a.Sync(context.Background())
	// 16Mi free now: 2 more fit, 6Mi.
	if !a.AllCached() {
		t.Errorf("second round: %s", states(a.Report()))
	}
}

// TestAFailedMeasureIsReported: the last good measure stays, and the
// report says why the next one failed.
func TestAFailedMeasureIsReported(t *testing.T) {
	rt := newFakeRuntime()
	rt.disk = report.Disk{CapacityBytes: 10 * mib}
	floor := config.DiskShare{Percent: 20}
	o := opts(&clock{})
	o.FreeFloor = &floor
	imgs := images(2)
	a := New(rt, nil, noCreds, List{Images: imgs[:1]}, o)
	a.Sync(context.Background())
	rt.mu.Lock()
	rt.fsErr = errors.New("statfs /host/imagefs: no such file or directory")
	rt.mu.Unlock()
	a.Update(List{Images: imgs})
	a.Sync(context.Background())
	d := a.Disk()
	if d == nil || d.Error != "statfs /host/imagefs: no such file or directory" || d.CapacityBytes != 10*mib || !strings.Contains(d.Summary(), "cannot measure: statfs") {
		t.Errorf("disk %+v", d)
	}
}

// TestNoSizesWithoutAFloorToJudge: where the floor cannot be judged (a
// percentage of a filesystem the agent cannot see), no registry is asked
// and the pulls run together.
func TestNoSizesWithoutAFloorToJudge(t *testing.T) {
	rt := newFakeRuntime()
	floor := config.DiskShare{Percent: 20}
	o := opts(&clock{})
	o.Parallelism, o.FreeFloor = 4, &floor
	var asked atomic.Int32
	o.Sizer = func(context.Context, string, *Credential) (int64, error) { asked.Add(1); return mib, nil }
	a := New(rt, nil, noCreds, List{Images: images(3)}, o)
	if n := a.Sync(context.Background()); n != 3 || asked.Load() != 0 {
		t.Errorf("pulled %d, asked the registry %d times", n, asked.Load())
	}
}

// TestAFailedUnpinPastTheBudgetIsReported: kip's pin on an image past the
// budget that cannot be removed is said on that image.
func TestAFailedUnpinPastTheBudgetIsReported(t *testing.T) {
	rt := newFakeRuntime()
	budget := config.DiskShare{Bytes: mib}
	o := opts(&clock{})
	o.PinBudget = &budget
	a := New(rt, &fakePinner{rt: rt, unpinErr: errors.New("containerd: unavailable")}, noCreds, List{Images: images(2)}, o)
	a.Sync(context.Background())
	if r := a.Report()[1]; r.Reason != report.ReasonOverBudget || r.PinError != "unpin: containerd: unavailable" {
		t.Errorf("%+v", r)
	}
}
