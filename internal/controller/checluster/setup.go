// Package checluster is the operator's CheCluster switch: while a
// CheCluster's spec.components.imagePuller.enable is true it keeps a
// KubernetesImagePuller for it (its own spec, or the platform's default
// images read from the registries), and removes it after. The rules are
// package operator's; this package reads the cluster and writes what they
// say.
package checluster

import (
	"sync"
	"time"

	"github.com/go-logr/logr"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/predicate"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/images"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/operator"
)

// Options configure the switch.
type Options struct {
	// DefaultImageLists replace the external_images.txt URLs taken from a
	// CheCluster's status, when set.
	DefaultImageLists []string
	// FetchTimeout bounds reading a CheCluster's default images, every
	// list together (one deadline).
	FetchTimeout time.Duration
	// RetryAfter is how long to wait before reading an unreachable registry
	// again, or looking again for a missing API.
	RetryAfter time.Duration
	// DefaultImagesRefresh is how often the default images are read again
	// while a CheCluster uses them (as well as on each CheCluster change).
	DefaultImagesRefresh time.Duration
	// DashboardURL replaces the in-cluster dashboard API address
	// (operator.DashboardAPI) of every CheCluster, when set.
	DashboardURL string
	// Bridge is operator.BridgeAuto or operator.BridgeOn (BridgeOff does
	// not set the switch up).
	Bridge string
}

// reconciler makes a CheCluster's KubernetesImagePuller exist
// while spec.components.imagePuller.enable is true, and removes it after.
type reconciler struct {
	client    client.Client
	events    events.EventRecorder
	opts      Options
	log       logr.Logger
	pullerAPI func() (bool, error)

	mu        sync.Mutex
	stoodBack map[string]string // CheCluster UID -> why the bridge stands back, told once

	lists images.Cache // the default image lists, asked again conditionally
}

// Setup registers the switch with mgr. pullerAPI tells whether the
// KubernetesImagePuller API is served now; it is asked again on each
// reconcile, as the API may be installed later.
func Setup(mgr ctrl.Manager, o Options, pullerAPI func() (bool, error)) error {
	r := &reconciler{
		client:    mgr.GetClient(),
		events:    mgr.GetEventRecorder(labels.OperatorFieldOwner),
		opts:      o,
		log:       mgr.GetLogger().WithName("checluster"),
		pullerAPI: pullerAPI,
		stoodBack: map[string]string{},
	}
	if r.opts.Bridge == "" {
		r.opts.Bridge = operator.BridgeAuto
	}
	if r.opts.DefaultImagesRefresh == 0 {
		r.opts.DefaultImagesRefresh = time.Hour
	}
	served, err := pullerAPI()
	if err != nil {
		return err
	}
	// A reconcile may read the registries' image lists over the network, so
	// it runs on what can change its outcome: the CheCluster's spec and
	// registry URLs, and the spec of the resource it made, not on the status
	// updates both see all the time.
	b := ctrl.NewControllerManagedBy(mgr).Named("checluster").
		For(operator.NewCheCluster(), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, registryURLsChanged)))
	if served {
		b = b.Owns(&v1alpha1.KubernetesImagePuller{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(r)
}
