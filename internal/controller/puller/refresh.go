package puller

import (
	"context"
	"maps"
	"slices"
	"sync"
	"time"

	"github.com/go-logr/logr"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/registry"
)

// refreshTarget is what the refresher resolves: the configured tags and the
// pull secrets that give access to them.
type refreshTarget struct {
	namespace string
	refs      []string
	secrets   []string
	interval  time.Duration
}

func (t refreshTarget) sameImages(o refreshTarget) bool {
	return t.namespace == o.namespace && slices.Equal(t.refs, o.refs) && slices.Equal(t.secrets, o.secrets)
}

// refreshOutcome is the result of the latest refresh.
type refreshOutcome struct {
	// digests holds the tags resolved by the latest refresh.
	digests map[string]string
	// failures maps what could not be used (a tag, or "secret/NAME") to why.
	failures map[string]string
}

// refresher resolves the configured tags to digests every
// CACHING_INTERVAL_HOURS, and at once when the configured images change. It
// only reads from registries and the API server; the reconciler, woken
// through trigger, decides what the results change.
type refresher struct {
	reader   client.Reader
	resolver registry.Resolver
	trigger  chan event.GenericEvent
	log      logr.Logger

	// secretDir holds the mounted pull secrets; empty: read them from the API.
	secretDir string
	// firstRetry is the wait after a refresh that failed in part; it doubles
	// with each failed refresh in a row, up to the interval.
	firstRetry time.Duration

	mu      sync.Mutex
	target  refreshTarget
	outcome refreshOutcome
	nudge   chan struct{}
}

// DefaultRefreshRetry is the first wait after a failed refresh.
const DefaultRefreshRetry = 30 * time.Second

func newRefresher(reader client.Reader, resolver registry.Resolver, firstRetry time.Duration, log logr.Logger) *refresher {
	return &refresher{
		reader:     reader,
		resolver:   resolver,
		firstRetry: firstRetry,
		trigger:    make(chan event.GenericEvent, 1),
		log:        log,
		nudge:      make(chan struct{}, 1),
	}
}

// track records the configuration in force, and asks for a refresh when its
// images or pull secrets changed.
func (r *refresher) track(cfg *config.Config) {
	t := refreshTarget{
		namespace: cfg.Namespace,
		refs:      daemonset.TaggedRefs(cfg),
		secrets:   slices.Clone(cfg.ImagePullSecrets),
		interval:  time.Duration(cfg.CachingIntervalHours) * time.Hour,
	}
	r.mu.Lock()
	changed := !t.sameImages(r.target)
	intervalChanged := t.interval != r.target.interval
	r.target = t
	r.mu.Unlock()
	if changed || intervalChanged {
		select {
		case r.nudge <- struct{}{}:
		default:
		}
	}
}

// latest returns the outcome of the latest refresh.
func (r *refresher) latest() refreshOutcome {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.outcome
}

// Start runs until ctx ends; it runs on the leader only.
func (r *refresher) Start(ctx context.Context) error {
	var last time.Time
	failedInARow := 0
	timer := time.NewTimer(time.Hour)
	defer timer.Stop()
	for {
		r.mu.Lock()
		target := r.target
		r.mu.Unlock()
		if target.interval > 0 && !last.IsZero() {
			timer.Reset(time.Until(last.Add(refreshWait(target.interval, r.firstRetry, failedInARow))))
		} else {
			timer.Reset(time.Hour)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-r.nudge:
		case <-timer.C:
		}
		r.mu.Lock()
		target = r.target
		r.mu.Unlock()
		if target.interval == 0 { // no valid configuration yet
			continue
		}
		last = time.Now()
		outcome := r.refresh(ctx, target)
		if len(outcome.failures) > 0 {
			failedInARow++
		} else {
			failedInARow = 0
		}
		r.mu.Lock()
		changed := !maps.Equal(outcome.digests, r.outcome.digests) || !maps.Equal(outcome.failures, r.outcome.failures)
		r.outcome = outcome
		r.mu.Unlock()
		if changed {
			select {
			case r.trigger <- event.GenericEvent{Object: &corev1.ConfigMap{}}:
			default: // a reconcile is already pending
			}
		}
	}
}

// secret reads one pull secret: from its mount under secretDir when the
// operator mounted them (the puller then holds no Secret permission), else
// from the API server.
func (r *refresher) secret(ctx context.Context, namespace, name string) (corev1.Secret, error) {
	if r.secretDir != "" {
		return registry.ReadMountedSecret(r.secretDir, name)
	}
	var s corev1.Secret
	err := r.reader.Get(ctx, types.NamespacedName{Namespace: namespace, Name: name}, &s)
	return s, err
}

// refreshWait is the time from one refresh to the next: the interval, or
// after failedInARow failed refreshes, firstRetry doubled for each one
// after the first, capped at the interval. A registry that was down for a
// minute is then not left unresolved for CACHING_INTERVAL_HOURS.
func refreshWait(interval, firstRetry time.Duration, failedInARow int) time.Duration {
	if failedInARow == 0 || firstRetry <= 0 {
		return interval
	}
	wait := firstRetry
	for i := 1; i < failedInARow && wait < interval; i++ {
		wait *= 2
	}
	return min(wait, interval)
}

func (r *refresher) refresh(ctx context.Context, t refreshTarget) refreshOutcome {
	out := refreshOutcome{digests: map[string]string{}, failures: map[string]string{}}
	if len(t.refs) == 0 {
		return out
	}
	var secrets []corev1.Secret
	for _, name := range t.secrets {
		s, err := r.secret(ctx, t.namespace, name)
		if err != nil {
			out.failures["secret/"+name] = err.Error()
			continue
		}
		secrets = append(secrets, s)
	}
	kc, problems := registry.Keychain(ctx, secrets)
	for name, err := range problems {
		out.failures["secret/"+name] = err.Error()
	}
	start := time.Now()
	refreshes.Inc()
	for ref, res := range r.resolver.Resolve(ctx, t.refs, kc) {
		if res.Err != nil {
			out.failures[ref] = res.Err.Error()
			continue
		}
		out.digests[ref] = res.Digest
	}
	r.log.V(1).Info("refreshed image digests", "resolved", len(out.digests), "failed", len(out.failures), "duration", time.Since(start).String())
	return out
}
