package manager

import (
	"context"
	"fmt"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/events"
	"k8s.io/utils/ptr"
	ctrl "sigs.k8s.io/controller-runtime"
	metricsserver "sigs.k8s.io/controller-runtime/pkg/metrics/server"
)

// ReasonAPIServed and ReasonAPIGone are the Events on the operator's
// Deployment when a controller starts or stops with its API.
const (
	ReasonAPIServed = "APIServed"
	ReasonAPIGone   = "APIGone"
)

// controllerSet is controllers that run while their APIs are served, in a
// manager of their own, so that they start when a CRD is installed after
// the operator and stop cleanly when it is removed, with no restart.
type controllerSet struct {
	name string
	// action names the set in its Events: the events API folds Events of
	// one object, reason and action into a series that keeps the first note.
	action string
	// wants tells from the served APIs whether the set runs, and a key
	// whose change restarts it (a set that watches an optional API).
	wants func(served map[schema.GroupVersion]bool) (run bool, key string)
	setup func(mgr ctrl.Manager) error

	cancel context.CancelFunc
	done   chan struct{}
	key    string
}

// gate polls the API server's discovery and runs each controllerSet while
// it wants to. It runs on the leader only (a manager runnable).
type gate struct {
	rc       *rest.Config
	options  ctrl.Options // for each set's manager: cache and scheme of the operator
	apis     []schema.GroupVersion
	sets     []*controllerSet
	every    time.Duration
	log      logr.Logger
	recorder events.EventRecorder
	self     *types.NamespacedName // the operator's Deployment, for Events
}

// Start runs until ctx ends, then stops every set.
func (g *gate) Start(ctx context.Context) error {
	dc, err := discovery.NewDiscoveryClientForConfig(g.rc)
	if err != nil {
		return err
	}
	defer g.stopAll()
	for {
		served, err := g.served(dc)
		if err != nil {
			g.log.Error(err, "asking the API server which APIs it serves; asking again")
		} else {
			g.apply(ctx, served)
		}
		select {
		case <-ctx.Done():
			return nil
		case <-time.After(g.every):
		}
	}
}

func (g *gate) served(dc discovery.DiscoveryInterface) (map[schema.GroupVersion]bool, error) {
	out := map[schema.GroupVersion]bool{}
	for _, gv := range g.apis {
		_, err := dc.ServerResourcesForGroupVersion(gv.String())
		switch {
		case err == nil:
			out[gv] = true
		case apierrors.IsNotFound(err):
			out[gv] = false
		default:
			return nil, fmt.Errorf("discover %s: %w", gv, err)
		}
	}
	return out, nil
}

// apply starts, stops or restarts each set for what is served now.
func (g *gate) apply(ctx context.Context, served map[schema.GroupVersion]bool) {
	for _, s := range g.sets {
		if s.cancel != nil {
			select {
			case <-s.done: // its manager ended by itself (it logged why): start it again below
				s.cancel()
				s.cancel, s.done = nil, nil
			default:
			}
		}
		run, key := s.wants(served)
		running := s.cancel != nil
		switch {
		case running && (!run || key != s.key):
			g.stop(s)
			if !run {
				g.tell(s.action, corev1.EventTypeWarning, ReasonAPIGone, "%s stopped: its API is no longer served", s.name)
			}
		}
		if run && s.cancel == nil {
			if err := g.start(ctx, s, key); err != nil {
				g.log.Error(err, "starting controllers", "controllers", s.name)
				continue
			}
			g.tell(s.action, corev1.EventTypeNormal, ReasonAPIServed, "%s started: its API is served", s.name)
		}
	}
}

func (g *gate) start(ctx context.Context, s *controllerSet, key string) error {
	mo := g.options
	mo.LeaderElection = false // the gate runs on the leader
	mo.Metrics = metricsserver.Options{BindAddress: "0"}
	mo.HealthProbeBindAddress = "0"
	mo.PprofBindAddress = "0"                       // the outer manager serves the process's profiles
	mo.Controller.SkipNameValidation = ptr.To(true) // a set restarts under the same names
	mgr, err := ctrl.NewManager(g.rc, mo)
	if err != nil {
		return err
	}
	if err := s.setup(mgr); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	s.cancel, s.done, s.key = cancel, make(chan struct{}), key
	go func() {
		defer close(s.done)
		if err := mgr.Start(runCtx); err != nil {
			g.log.Error(err, "controllers stopped", "controllers", s.name)
		}
	}()
	return nil
}

func (g *gate) stop(s *controllerSet) {
	s.cancel()
	<-s.done
	s.cancel, s.done = nil, nil
}

func (g *gate) stopAll() {
	for _, s := range g.sets {
		if s.cancel != nil {
			g.stop(s)
		}
	}
}

// tell logs and records an Event on the operator's Deployment, when known.
func (g *gate) tell(action, eventType, reason, format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	g.log.Info(msg, "reason", reason)
	if g.self == nil || g.recorder == nil {
		return
	}
	d := &appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"},
		ObjectMeta: metav1.ObjectMeta{Name: g.self.Name, Namespace: g.self.Namespace}}
	g.recorder.Eventf(d, nil, eventType, reason, action, "%s", msg)
}
