package agent

import (
	"context"
	"fmt"
	"slices"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/registry"
)

// The disk half of the agent: it measures the image filesystem, refuses a
// pull that would leave less than FreeFloor, and pins in IMAGES order what
// fits PinBudget.

func (a *Agent) hasMeasured() bool {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.measured
}

// measure asks the runtime for the image filesystem; a failure keeps the
// last measure (a floor is then judged on it, or not at all before one),
// and the report says why.
func (a *Agent) measure(ctx context.Context) {
	d, err := a.rt.ImageFs(ctx)
	a.mu.Lock()
	defer a.mu.Unlock()
	if err != nil {
		a.diskErr = report.Shorten(err.Error())
		return
	}
	a.disk, a.measured, a.diskErr = d, true, ""
}

// limits are PinBudget and FreeFloor in bytes on this filesystem; -1 where
// a percentage meets an unknown capacity, and for no bound.
func (a *Agent) limits() (budget, floor int64) {
	budget, floor = -1, -1
	if a.opts.PinBudget != nil {
		budget = a.opts.PinBudget.Of(a.disk.CapacityBytes)
	}
	if a.opts.FreeFloor != nil {
		floor = a.opts.FreeFloor.Of(a.disk.CapacityBytes)
	}
	return budget, floor
}

// estimate is what a pull of ref takes on the filesystem: its compressed
// size (the runtime's word when the node held it before, else its
// registry's manifest for this platform) times registry.UnpackFactor. It
// tells whether the size is known, or needs not be (no floor, or one that
// cannot be judged: a percentage of a filesystem the agent cannot see).
func (a *Agent) estimate(ctx context.Context, ref string, cred *Credential) (int64, bool) {
	a.mu.Lock()
	size, held := a.sizes[ref]
	_, floor := a.limits()
	a.mu.Unlock()
	if floor < 0 {
		return 0, true
	}
	if !held {
		if a.opts.Sizer == nil {
			return 0, false
		}
		var err error
		if size, err = a.opts.Sizer(ctx, ref, cred); err != nil || size <= 0 {
			return 0, false
		}
	}
	return size * registry.UnpackFactor, true
}

// reserve makes room for a pull of estimate bytes: it is refused when the
// free space, less what the pulls under way will take, would fall below
// the floor. A pull of unknown size (0) is judged on the free space alone.
func (a *Agent) reserve(estimate int64) error {
	a.mu.Lock()
	defer a.mu.Unlock()
	_, floor := a.limits()
	if floor < 0 || a.disk.AvailableBytes == 0 && a.disk.CapacityBytes == 0 {
		a.reserved += estimate
		return nil // no floor, or no measure to judge it on
	}
	free := a.disk.AvailableBytes - a.reserved
	if free-estimate < floor {
		what := "the image filesystem is already past IMAGEFS_FREE_FLOOR"
		if free >= floor {
			what = "the pull would go past IMAGEFS_FREE_FLOOR"
		}
		size := "an unknown size"
		if estimate > 0 {
			size = "about " + report.Bytes(estimate)
		}
		return fmt.Errorf("not pulled: %s (%s): %s free of %s, %s of it taken by pulls under way, and the image takes %s",
			what, report.Bytes(floor), report.Bytes(a.disk.AvailableBytes), report.Bytes(a.disk.CapacityBytes), report.Bytes(a.reserved), size)
	}
	a.reserved += estimate
	return nil
}

// unreserve ends a pull's reservation, and measures the filesystem again.
func (a *Agent) unreserve(ctx context.Context, estimate int64) {
	a.mu.Lock()
	a.reserved -= estimate
	a.mu.Unlock()
	a.measure(ctx)
}

// pinWithinBudget walks the images in IMAGES order: each one held is
// pinned while the ones held before it and itself fit PinBudget; the rest
// are reported OverBudget, and kip's pins on them go.
func (a *Agent) pinWithinBudget(ctx context.Context) {
	if a.pin == nil {
		return
	}
	a.pinMu.Lock()
	defer a.pinMu.Unlock()
	a.mu.Lock()
	budget, _ := a.limits()
	images := slices.Clone(a.images)
	a.mu.Unlock()

	var total int64
	var over, overNames []string
	for _, img := range images {
		a.mu.Lock()
		r := a.reports[img.Name]
		a.mu.Unlock()
		if r.State != report.StateCached {
			continue
		}
		if budget >= 0 && total+r.SizeBytes > budget {
			over, overNames = append(over, img.Ref), append(overNames, img.Name)
			a.update(img.Name, func(r *report.Image) {
				r.Reason = report.ReasonOverBudget
				r.Message = fmt.Sprintf("not pinned: PIN_BUDGET is %s, the images before it in IMAGES take %s pinned, and it takes %s",
					report.Bytes(budget), report.Bytes(total), report.Bytes(r.SizeBytes))
				r.Pinned = false
			})
			continue
		}
		total += r.SizeBytes
		if r.Pinned && r.Reason != report.ReasonOverBudget {
			continue
		}
		pinned, pinErr := r.Pinned, ""
		if err := a.pin.Pin(ctx, img.Ref); err != nil {
			pinErr = err.Error()
		} else if after, ok, err := a.rt.Status(ctx, img.Ref); err == nil && ok {
			pinned = after.Pinned
		}
		a.update(img.Name, func(r *report.Image) {
			r.Pinned, r.PinError = pinned, pinErr
			if r.Reason == report.ReasonOverBudget {
				r.Reason, r.Message = "", ""
			}
		})
	}
	a.mu.Lock()
	a.over = over
	a.mu.Unlock()
	if len(over) == 0 {
		return
	}
	// kip's pins on the images past the budget go; a failure to remove one
	// is said on each of them.
	if _, err := a.Release(ctx); err != nil {
		for _, name := range overNames {
			a.update(name, func(r *report.Image) { r.PinError = report.Shorten("unpin: " + err.Error()) })
		}
	}
}

// update changes a Cached image's report in place.
func (a *Agent) update(name string, change func(*report.Image)) {
	a.mu.Lock()
	defer a.mu.Unlock()
	r, ok := a.reports[name]
	if !ok || r.State != report.StateCached {
		return
	}
	change(&r)
	a.reports[name] = r
}

// Disk is the node's disk as the report says it: the last measure, the
// limits on it, and what the configured images take of it.
func (a *Agent) Disk() *report.Disk {
	a.mu.Lock()
	defer a.mu.Unlock()
	if !a.measured && a.diskErr == "" && a.opts.PinBudget == nil && a.opts.FreeFloor == nil {
		return nil
	}
	d := a.disk
	d.PinBudgetBytes, d.FreeFloorBytes = a.limits()
	d.Error = a.diskErr
	for _, img := range a.images {
		r := a.reports[img.Name]
		if r.State != report.StateCached {
			continue
		}
		d.CachedBytes += r.SizeBytes
		if r.Pinned {
			d.PinnedBytes += r.SizeBytes
		}
	}
	return &d
}
