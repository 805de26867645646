package puller

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	authorizationv1 "k8s.io/api/authorization/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	k8slabels "k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/wait"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/cache"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/healthz"
	"sigs.k8s.io/controller-runtime/pkg/manager"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
	"sigs.k8s.io/controller-runtime/pkg/source"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/observe"
	"github.com/kip-image-puller/kip/internal/registry"
)

// DefaultFieldOwner is the server-side apply field manager of the controller.
const DefaultFieldOwner = "kip-controller"

// Options configure the controller.
type Options struct {
	// Namespace holds the ConfigMap, the puller Deployment and the DaemonSet.
	Namespace string
	// ConfigMapName is the ConfigMap to watch; empty means the environment only.
	ConfigMapName string
	// DeploymentName is the controller's own Deployment, which owns the
	// DaemonSet: who the controller is comes from the process (the install
	// sets it), never from the configuration it reads.
	DeploymentName string
	// Env is the configuration when ConfigMapName is empty.
	Env map[string]string
	// DefaultKIPImage is the init container image when neither KIP_IMAGE
	// nor the puller's Deployment gives one.
	DefaultKIPImage string
	// OpenShift leaves pod UIDs to the SCC.
	OpenShift bool
	// Resolver looks up tag digests on refresh.
	Resolver registry.Resolver
	// PullSecretDir holds the pull secrets mounted by the operator, one
	// directory per Secret; empty: the refresher reads them from the API.
	PullSecretDir string
	// RefreshRetry is the first wait after a refresh that failed in part
	// (DefaultRefreshRetry when zero); it doubles up to the interval.
	RefreshRetry time.Duration
	// FieldOwner is the server-side apply field manager.
	FieldOwner string
	// PodName is the controller's own Pod, whose image (by digest) the
	// agents run; empty outside a cluster, where DefaultKIPImage stands in.
	PodName string
	// AllowedSockets are runtime sockets the installer allows beyond the
	// known ones (privilege.Policy.ExtraSockets).
	AllowedSockets []string
	// PrivilegeRecheck is how often a configuration that asks for
	// privilege reads its Namespace's grants again (DefaultPrivilegeRecheck
	// when zero).
	PrivilegeRecheck time.Duration
}

// NewManager returns a manager running the puller controller, with a cache
// limited to the one namespace and to the objects the controller reads. The
// caller sets leader election, probes and metrics in mo.
func NewManager(rc *rest.Config, mo ctrl.Options, o Options) (ctrl.Manager, error) {
	if o.Namespace == "" {
		return nil, fmt.Errorf("a namespace is required")
	}
	if o.FieldOwner == "" {
		o.FieldOwner = DefaultFieldOwner
	}
	if o.Resolver == (registry.Resolver{}) {
		o.Resolver = registry.Default
	}
	mo.Cache.DefaultNamespaces = map[string]cache.Config{o.Namespace: {}}
	managed := k8slabels.SelectorFromSet(k8slabels.Set{labels.ManagedBy: labels.ManagedByPuller})
	// Pods and nodes are cached trimmed to what the status reads: a pod
	// of 100 images drops from about 280 KB to 12 KB (see
	// observe.BenchmarkCacheContent).
	byObject := map[client.Object]cache.ByObject{
		&appsv1.DaemonSet{}: {Label: managed},
		&corev1.Pod{}:       {Label: managed, Transform: observe.TrimPod},
		&corev1.Node{}:      {Transform: observe.TrimNode},
	}
	if o.ConfigMapName != "" {
		byObject[&corev1.ConfigMap{}] = cache.ByObject{Field: fields.OneTermEqualSelector("metadata.name", o.ConfigMapName)}
	}
	mo.Cache.ByObject = byObject
	mgr, err := ctrl.NewManager(rc, mo)
	if err != nil {
		return nil, err
	}
	if err := Setup(mgr, o); err != nil {
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

// Setup registers the puller controller and its refresher with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	// Everything maps to one key: there is one configuration and one DaemonSet.
	key := types.NamespacedName{Namespace: o.Namespace, Name: o.ConfigMapName}
	if key.Name == "" {
		key.Name = "environment"
	}
	if o.DeploymentName == "" {
		o.DeploymentName = config.Defaults[config.KeyDeploymentName]
	}
	toKey := handler.EnqueueRequestsFromMapFunc(func(_ context.Context, _ client.Object) []reconcile.Request {
		return []reconcile.Request{{NamespacedName: key}}
	})
	log := mgr.GetLogger().WithName("puller")
	if o.RefreshRetry == 0 {
		o.RefreshRetry = DefaultRefreshRetry
	}
	if o.PrivilegeRecheck == 0 {
		o.PrivilegeRecheck = DefaultPrivilegeRecheck
	}
	ref := newRefresher(mgr.GetAPIReader(), o.Resolver, o.RefreshRetry, log.WithName("refresh"))
	ref.secretDir = o.PullSecretDir
	r := &reconciler{
		client:    mgr.GetClient(),
		apiReader: mgr.GetAPIReader(),
		events:    eventSink{rec: mgr.GetEventRecorderFor(o.FieldOwner)}, //nolint:staticcheck // see eventSink
		refresher: ref,
		opts:      o,
		log:       log,
	}
	if err := mgr.Add(ref); err != nil {
		return err
	}
	// Reading nodes needs a ClusterRole; without it the status still tells
	// what every node with a puller pod holds, instead of failing to start.
	nodesReadable, err := canWatchNodes(mgr.GetConfig())
	if err != nil {
		return err
	}
	r.nodesReadable = nodesReadable
	isOurConfigMap := predicate.NewPredicateFuncs(func(obj client.Object) bool {
		return o.ConfigMapName != "" && obj.GetName() == o.ConfigMapName
	})
	b := ctrl.NewControllerManagedBy(mgr).
		Named("puller").
		WatchesRawSource(source.Channel(ref.trigger, toKey)).
		Watches(&corev1.ConfigMap{}, toKey, builder.WithPredicates(isOurConfigMap)).
		Watches(&appsv1.DaemonSet{}, toKey, builder.WithPredicates(daemonSetChanged))
	// Start once even when nothing changes, to apply the environment's configuration.
	if err := mgr.Add(manager.RunnableFunc(func(ctx context.Context) error {
		select {
		case ref.trigger <- event.GenericEvent{Object: &corev1.ConfigMap{}}:
		default:
		}
		return nil
	})); err != nil {
		return err
	}
	if err := b.Complete(r); err != nil {
		return err
	}
	rep := &reporter{client: mgr.GetClient(), source: observe.Source{Reader: mgr.GetClient(), Events: mgr.GetAPIReader()}, events: r.events, log: log.WithName("status"), now: time.Now,
		nodes: &nodeWarmer{client: mgr.GetClient(), apiReader: mgr.GetAPIReader(), events: r.events, log: log.WithName("nodes"), now: time.Now, started: time.Now(), fieldOwner: o.FieldOwner}}
	sb := ctrl.NewControllerManagedBy(mgr).
		Named("puller-status").
		Watches(&appsv1.DaemonSet{}, toKey, builder.WithPredicates(daemonSetChanged)).
		Watches(&corev1.Pod{}, toKey)
	if nodesReadable {
		sb = sb.Watches(&corev1.Node{}, toKey, builder.WithPredicates(observe.NodeChanged))
	} else {
		rep.source.NodesFromPods = true
		rep.nodes.unreadable = true
		log.Info("no permission to list and watch nodes; the status counts the nodes that run a puller pod, all as Ready")
	}
	return sb.Complete(rep)
}

// canWatchNodes asks the API server whether this identity may list and
// watch nodes. A controller that starts while the API server is away (a
// control plane upgrade) asks again for up to apiWait instead of exiting.
func canWatchNodes(rc *rest.Config) (bool, error) {
	cs, err := kubernetes.NewForConfig(rc)
	if err != nil {
		return false, err
	}
	var allowed bool
	var last error
	err = wait.PollUntilContextTimeout(context.Background(), 2*time.Second, apiWait, true, func(ctx context.Context) (bool, error) {
		allowed, last = true, nil
		for _, verb := range []string{"list", "watch"} {
			review := &authorizationv1.SelfSubjectAccessReview{Spec: authorizationv1.SelfSubjectAccessReviewSpec{
				ResourceAttributes: &authorizationv1.ResourceAttributes{Verb: verb, Resource: "nodes"},
			}}
			res, err := cs.AuthorizationV1().SelfSubjectAccessReviews().Create(ctx, review, metav1.CreateOptions{})
			if err != nil {
				last = err
				return false, nil
			}
			allowed = allowed && res.Status.Allowed
		}
		return true, nil
	})
	if err != nil {
		return false, fmt.Errorf("ask whether nodes can be read: %w", errors.Join(last, err))
	}
	return allowed, nil
}

// apiWait is how long the controller, starting, waits for the API server.
const apiWait = 2 * time.Minute

// IsOpenShift tells whether the cluster serves the route.openshift.io API
// group, the way the existing puller detects OpenShift.
func IsOpenShift(rc *rest.Config) (bool, error) {
	dc, err := discovery.NewDiscoveryClientForConfig(rc)
	if err != nil {
		return false, err
	}
	groups, err := dc.ServerGroups()
	if err != nil {
		return false, err
	}
	return slices.ContainsFunc(groups.Groups, func(g metav1.APIGroup) bool { return g.Name == "route.openshift.io" }), nil
}
