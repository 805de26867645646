package agent

import (
	"context"
	"reflect"
	"time"

	"github.com/go-logr/logr"

	"github.com/kip-image-puller/kip/internal/agent/report"
)

// Reporter publishes the node's report (on the agent's Pod, or to stdout).
type Reporter func(context.Context, report.Node) error

// Loop runs an agent until its context ends: sync, report when the report
// changed, wait for the next retry or heal check, heal, and again.
type Loop struct {
	Agent *Agent
	// Runtime is the runtime's name and version; CanPin whether the agent
	// has a way to pin on it.
	Runtime string
	CanPin  bool
	// HealInterval is how often the agent checks that the runtime still
	// holds every cached image.
	HealInterval time.Duration
	// SecretProblems, when set, names each pull secret that cannot be used.
	// Every SecretCheck (when set) the loop asks again, which reads the
	// mounted secrets, and publishes the report if the answer changed.
	SecretProblems func() []string
	SecretCheck    time.Duration
	Report         Reporter
	Log            logr.Logger
	// Slots, when set, bound how many nodes pull at once: the agent holds
	// one while it syncs.
	Slots *Slots
	// Lists, when set, brings new lists, which the agent takes up between
	// syncs: the pins of images that left are released, new ones brought.
	Lists <-chan List

	heals int
	last  *report.Node
}

// Run releases the pins of images no longer configured, then loops. With
// once, it returns after the first sync and report.
func (l *Loop) Run(ctx context.Context, once bool) error {
	l.release(ctx)
	var secretCheck <-chan time.Time
	if l.SecretProblems != nil && l.SecretCheck > 0 {
		tick := time.NewTicker(l.SecretCheck)
		defer tick.Stop()
		secretCheck = tick.C
	}
	for {
		if err := l.sync(ctx); err != nil {
			return err
		}
		l.publish(ctx)
		if once {
			return nil
		}
		wait := l.HealInterval
		if next := l.Agent.NextAttempt(); !next.IsZero() {
			wait = min(wait, max(time.Until(next), 0))
		}
		select {
		case <-ctx.Done():
			return nil
		case list := <-l.Lists:
			if l.Agent.Update(list) {
				l.Log.Info("took up a new list", "images", len(list.Images))
				l.release(ctx)
			}
			continue
		case <-secretCheck:
			l.publish(ctx)
			continue
		case <-time.After(wait):
		}
		lost, err := l.Agent.Heal(ctx)
		if err != nil {
			l.Log.Error(err, "list the runtime's images")
			continue
		}
		if len(lost) > 0 {
			l.heals += len(lost)
			l.Log.Info("images disappeared from the runtime; pulling them again", "images", lost)
		}
	}
}

// release unpins the images no longer configured.
func (l *Loop) release(ctx context.Context) {
	released, err := l.Agent.Release(ctx)
	if err != nil {
		l.Log.Error(err, "unpin the images no longer configured")
	} else if len(released) > 0 {
		l.Log.Info("unpinned the images no longer configured; the runtime's garbage collection may remove them", "images", released)
	}
}

// sync runs one Sync, holding a pull slot when the nodes take turns.
func (l *Loop) sync(ctx context.Context) error {
	if l.Slots == nil || !l.Agent.Due() {
		l.Agent.Sync(ctx)
		return nil
	}
	release, err := l.Slots.Acquire(ctx)
	if err != nil {
		if ctx.Err() != nil {
			return nil // stopping
		}
		return err
	}
	defer release()
	l.Agent.Sync(ctx)
	return nil
}

// NodeReport is the report as it stands.
func (l *Loop) NodeReport() report.Node {
	images := l.Agent.Report()
	var problems []string
	if l.SecretProblems != nil {
		problems = l.SecretProblems()
	}
	return report.Node{
		Runtime:        l.Runtime,
		Pinning:        report.PinningNote(l.Runtime, l.CanPin, images),
		SecretProblems: problems,
		Heals:          l.heals,
		Disk:           l.Agent.Disk(),
		Images:         images,
	}
}

// publish reports when the report changed since the last one published.
func (l *Loop) publish(ctx context.Context) {
	r := l.NodeReport()
	if l.last != nil && reflect.DeepEqual(*l.last, r) {
		return
	}
	if err := l.Report(ctx, r); err != nil {
		l.Log.Error(err, "publish the node's report")
		return
	}
	l.last = &r
}
