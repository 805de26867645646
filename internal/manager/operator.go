// Package manager assembles the operator process: a controller-runtime
// manager whose cache holds only what the operator made and the pullers'
// DaemonSets and pods, running the KubernetesImagePuller controller and the
// CheCluster switch, whichever of them the cluster's APIs allow. (The puller
// process has one controller and assembles itself: controller/puller.)
package manager

import (
	"fmt"
	"time"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/controller/checluster"
	"github.com/kip-image-puller/kip/internal/controller/imagepuller"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/observe"
	"github.com/kip-image-puller/kip/internal/operator"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/apimachinery/pkg/fields"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
)

// Options configure the operator process.
type Options struct {
	// Namespaces to watch; empty means all (WATCH_NAMESPACE).
	Namespaces []string
	// PullerImage runs the pullers whose resource names no imagePullerImage.
	PullerImage string
	// AllowedSockets are passed on to each puller's --cri-socket-allow.
	AllowedSockets []string
	// DefaultImageLists replace the external_images.txt URLs taken from a
	// CheCluster's status, when set.
	DefaultImageLists []string
	// FetchTimeout bounds reading a CheCluster's default images, every
	// list together.
	FetchTimeout time.Duration
	// RetryAfter is how long to wait before reading an unreachable registry
	// again, or looking again for a missing API.
	RetryAfter time.Duration
	// CheClusterBridge is operator.BridgeAuto (empty), BridgeOn or BridgeOff.
	CheClusterBridge string
	// DashboardURL replaces the in-cluster dashboard API address of every
	// CheCluster, when set.
	DashboardURL string
	// DefaultImagesRefresh is how often default images are read again.
	DefaultImagesRefresh time.Duration
	// APIPoll is how often the operator asks which APIs are served, to
	// start or stop the controllers that need them (10 s when zero).
	APIPoll time.Duration
	// Self is the operator's Deployment, which Events about starting and
	// stopping controllers are about; nil: the log only.
	Self *types.NamespacedName
}

// Scheme knows the built-in types and KubernetesImagePuller.
func Scheme() (*runtime.Scheme, error) {
	s := runtime.NewScheme()
	if err := clientgoscheme.AddToScheme(s); err != nil {
		return nil, err
	}
	if err := v1alpha1.AddToScheme(s); err != nil {
		return nil, err
	}
	return s, nil
}

// NewOperator returns a manager running the operator's controllers while
// the cluster serves their APIs: the KubernetesImagePuller controller while
// its CRD is installed, the CheCluster switch while CheClusters exist. A CRD
// installed after the operator started starts its controller within
// APIPoll, one removed stops it, without a restart. The caller sets leader
// election, probes and metrics in mo.
func NewOperator(rc *rest.Config, mo ctrl.Options, o Options) (ctrl.Manager, error) {
	if o.FetchTimeout == 0 {
		o.FetchTimeout = 30 * time.Second
	}
	if o.RetryAfter == 0 {
		o.RetryAfter = time.Minute
	}
	if o.PullerImage == "" {
		return nil, fmt.Errorf("a puller image is required")
	}
	scheme, err := Scheme()
	if err != nil {
		return nil, err
	}
	mo.Scheme = scheme
	if len(o.Namespaces) > 0 {
		mo.Cache.DefaultNamespaces = map[string]cache.Config{}
		for _, ns := range o.Namespaces {
			mo.Cache.DefaultNamespaces[ns] = cache.Config{}
		}
	}
	// Only what the operator made, and the pullers' own DaemonSets and pods.
	ours := k8slabels.SelectorFromSet(k8slabels.Set{labels.ManagedBy: labels.ManagedByOperator})
	pullers := k8slabels.SelectorFromSet(k8slabels.Set{labels.ManagedBy: labels.ManagedByPuller})
	mo.Cache.ByObject = map[client.Object]cache.ByObject{
		&corev1.ServiceAccount{}: {Label: ours},
		&rbacv1.Role{}:           {Label: ours},
		&rbacv1.RoleBinding{}:    {Label: ours},
		// The node bindings (cluster-scoped) of nodeCondition and warmNodeTaint.
		&rbacv1.ClusterRoleBinding{}: {Label: ours},
		&corev1.ConfigMap{}:          {Label: ours},
		&appsv1.Deployment{}:         {Label: ours},
		&appsv1.DaemonSet{}:          {Label: pullers},
		// Pods and nodes trimmed to what the status reads (observe.TrimPod).
		&corev1.Pod{}:  {Label: pullers, Transform: observe.TrimPod},
		&corev1.Node{}: {Transform: observe.TrimNode},
		// Only the puller's refusals of a configuration (operator.Refusal).
		&corev1.Event{}: {Field: fields.OneTermEqualSelector("reason", config.ReasonInvalidConfiguration)},
	}
	mgr, err := ctrl.NewManager(rc, mo)
	if err != nil {
		return nil, err
	}
	if o.CheClusterBridge == "" {
		o.CheClusterBridge = operator.BridgeAuto
	}
	if o.APIPoll == 0 {
		o.APIPoll = 10 * time.Second
	}
	log := mgr.GetLogger().WithName("operator")
	if o.CheClusterBridge == operator.BridgeOff {
		log.Info("the CheCluster bridge is off (--checluster-bridge=off)")
	}
	pullerGV, cheGV := v1alpha1.GroupVersion, operator.CheClusterKind.GroupVersion()
	g := &gate{
		rc: rc, options: mo, apis: []schema.GroupVersion{pullerGV, cheGV}, every: o.APIPoll,
		log: log, recorder: mgr.GetEventRecorder(labels.OperatorFieldOwner), self: o.Self,
		sets: []*controllerSet{
			{
				name: "the KubernetesImagePuller controller", action: "KubernetesImagePullerController",
				wants: func(served map[schema.GroupVersion]bool) (bool, string) {
					return served[pullerGV], ""
				},
				setup: func(m ctrl.Manager) error {
					return imagepuller.Setup(m, imagepuller.Options{PullerImage: o.PullerImage, RetryAfter: o.RetryAfter, AllowedSockets: o.AllowedSockets})
				},
			},
			{
				name: "the CheCluster bridge", action: "CheClusterBridge",
				// Restarted when the KubernetesImagePuller API comes or goes,
				// to watch the resources it makes only while they exist.
				wants: func(served map[schema.GroupVersion]bool) (bool, string) {
					return served[cheGV] && o.CheClusterBridge != operator.BridgeOff, fmt.Sprint(served[pullerGV])
				},
				setup: func(m ctrl.Manager) error {
					co := checluster.Options{DefaultImageLists: o.DefaultImageLists, FetchTimeout: o.FetchTimeout, RetryAfter: o.RetryAfter,
						Bridge: o.CheClusterBridge, DashboardURL: o.DashboardURL, DefaultImagesRefresh: o.DefaultImagesRefresh}
					return checluster.Setup(m, co, func() (bool, error) { return served(m, pullerGV.WithKind("KubernetesImagePuller")) })
				},
			},
		},
	}
	if err := mgr.Add(g); err != nil {
		return nil, err
	}
	if err := mgr.AddHealthzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	if err := mgr.AddReadyzCheck("ping", healthz.Ping); err != nil {
		return nil, err
	}
	return mgr, nil
}

// served tells whether the API server serves kind.
func served(mgr ctrl.Manager, gvk schema.GroupVersionKind) (bool, error) {
	_, err := mgr.GetRESTMapper().RESTMapping(gvk.GroupKind(), gvk.Version)
	switch {
	case err == nil:
		return true, nil
	case meta.IsNoMatchError(err):
		return false, nil
	default:
		return false, fmt.Errorf("look up %s: %w", gvk, err)
	}
}
