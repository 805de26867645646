// Package imagepuller is the operator's KubernetesImagePuller controller: for
// each resource it applies the puller's ServiceAccount, Role, RoleBinding,
// ConfigMap and Deployment, prunes what a rename left behind, and keeps the
// resource's status true to what the nodes hold. The decisions (validation,
// the objects, the status) are package operator's; this package reads the
// cluster and writes what they say.
package imagepuller

import (
	"context"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/client-go/tools/record"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/handler"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/observe"
)

// Options configure the controller.
type Options struct {
	// PullerImage runs the pullers whose resource names no imagePullerImage.
	PullerImage string
	// RetryAfter is how long to wait before applying again after a failure.
	RetryAfter time.Duration
	// AllowedSockets are passed on to each puller's --cri-socket-allow.
	AllowedSockets []string
}

// reconciler keeps one KubernetesImagePuller's objects applied and
// its status true.
type reconciler struct {
	client client.Client
	// events reads the FailedCreate Events the cache does not hold.
	events client.Reader
	// uncached reads an object the cache does not hold: the cache holds
	// only the operator's objects, and one of the same name that is not
	// there may still exist, and be another's.
	uncached client.Reader
	opts     Options
	log      logr.Logger
	recorder record.EventRecorder
}

// Setup registers the controller with mgr.
func Setup(mgr ctrl.Manager, o Options) error {
	r := &reconciler{client: mgr.GetClient(), events: mgr.GetAPIReader(), uncached: mgr.GetAPIReader(), opts: o, log: mgr.GetLogger().WithName("kubernetesimagepuller"),
		recorder: mgr.GetEventRecorderFor(labels.OperatorFieldOwner)} //nolint:staticcheck // core/v1 Events, as the puller's eventSink
	// DaemonSets and pods belong to the puller Deployment, not the resource:
	// they map to the resources of their namespace. Nodes map to all.
	// Creating or deleting a resource wakes the others of its namespace.
	inNamespace := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, obj client.Object) []reconcile.Request {
		return r.requests(ctx, client.InNamespace(obj.GetNamespace()))
	})
	everywhere := handler.EnqueueRequestsFromMapFunc(func(ctx context.Context, _ client.Object) []reconcile.Request {
		return r.requests(ctx)
	})
	return ctrl.NewControllerManagedBy(mgr).
		Named("kubernetesimagepuller").
		For(&v1alpha1.KubernetesImagePuller{}).
		Owns(&corev1.ServiceAccount{}).
		Owns(&rbacv1.Role{}).
		Owns(&rbacv1.RoleBinding{}).
		Owns(&corev1.ConfigMap{}).
		Owns(&appsv1.Deployment{}).
		// Another resource of the namespace coming or going may hand it over.
		Watches(&v1alpha1.KubernetesImagePuller{}, inNamespace, builder.WithPredicates(predicate.Funcs{
			UpdateFunc: func(e event.UpdateEvent) bool { return e.ObjectNew.GetDeletionTimestamp() != nil },
		})).
		Watches(&appsv1.DaemonSet{}, inNamespace).
		Watches(&corev1.Pod{}, inNamespace).
		Watches(&corev1.Event{}, inNamespace). // the puller refusing a configuration; the cache holds only those

		Watches(&corev1.Node{}, everywhere, builder.WithPredicates(observe.NodeChanged)).
		Complete(r)
}

// requests lists the resources to reconcile, in one namespace or all.
func (r *reconciler) requests(ctx context.Context, opts ...client.ListOption) []reconcile.Request {
	var list v1alpha1.KubernetesImagePullerList
	if err := r.client.List(ctx, &list, opts...); err != nil {
		r.log.Error(err, "list KubernetesImagePullers")
		return nil
	}
	reqs := make([]reconcile.Request, len(list.Items))
	for i := range list.Items {
		reqs[i] = reconcile.Request{NamespacedName: client.ObjectKeyFromObject(&list.Items[i])}
	}
	return reqs
}
