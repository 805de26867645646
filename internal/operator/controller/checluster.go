package controller

import (
	"context"
	"fmt"
	"slices"
	"strings"

	"github.com/go-logr/logr"
	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/images"
	"github.com/kip-image-puller/kip/internal/operator"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/events"
	ctrl "sigs.k8s.io/controller-runtime"
	"sigs.k8s.io/controller-runtime/pkg/builder"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Event reasons on a CheCluster.
const (
	ReasonPullerAPIMissing  = "KubernetesImagePullerAPIMissing"
	ReasonInvalidCheCluster = "InvalidImagePullerSpec"
)

// cheClusterReconciler makes a CheCluster's KubernetesImagePuller exist
// while spec.components.imagePuller.enable is true, and removes it after.
type cheClusterReconciler struct {
	client    client.Client
	events    events.EventRecorder
	opts      Options
	log       logr.Logger
	pullerAPI func() (bool, error)
}

func setupCheClusters(mgr ctrl.Manager, o Options, pullerAPI bool) error {
	r := &cheClusterReconciler{
		client: mgr.GetClient(),
		events: mgr.GetEventRecorder(FieldOwner),
		opts:   o,
		log:    mgr.GetLogger().WithName("checluster"),
		pullerAPI: func() (bool, error) {
			return served(mgr, v1alpha1.GroupVersion.WithKind("KubernetesImagePuller"))
		},
	}
	// A reconcile may read the registries' image lists over the network, so
	// it runs on what can change its outcome: the CheCluster's spec and
	// registry URLs, and the spec of the resource it made, not on the status
	// updates both see all the time.
	b := ctrl.NewControllerManagedBy(mgr).Named("checluster").
		For(cheCluster(), builder.WithPredicates(predicate.Or(predicate.GenerationChangedPredicate{}, registryURLsChanged)))
	if pullerAPI {
		b = b.Owns(&v1alpha1.KubernetesImagePuller{}, builder.WithPredicates(predicate.GenerationChangedPredicate{}))
	}
	return b.Complete(r)
}

// registryURLsChanged lets through the CheCluster updates that move the
// registry URLs its default images come from.
var registryURLsChanged = predicate.Funcs{
	UpdateFunc: func(e event.UpdateEvent) bool {
		old, okOld := e.ObjectOld.(*unstructured.Unstructured)
		cur, okNew := e.ObjectNew.(*unstructured.Unstructured)
		if !okOld || !okNew {
			return true
		}
		return !slices.Equal(operator.DefaultImageLists(old), operator.DefaultImageLists(cur))
	},
}

func cheCluster() *unstructured.Unstructured {
	u := &unstructured.Unstructured{}
	u.SetGroupVersionKind(operator.CheClusterKind)
	return u
}

func (r *cheClusterReconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cc := cheCluster()
	if err := r.client.Get(ctx, req.NamespacedName, cc); err != nil {
		// Deleted: the garbage collector removes the resource it owned.
		return reconcile.Result{}, client.IgnoreNotFound(err)
	}
	log := r.log.WithValues("checluster", req.NamespacedName)
	want, err := operator.FromCheCluster(cc)
	if err != nil {
		log.Error(err, "cannot read the image puller settings")
		r.events.Eventf(cc, nil, corev1.EventTypeWarning, ReasonInvalidCheCluster, "Reconcile", "%v", err)
		return reconcile.Result{}, nil // wait for the next edit
	}
	if cc.GetDeletionTimestamp() != nil {
		return reconcile.Result{}, nil
	}
	apiOK, err := r.pullerAPI()
	if err != nil {
		return reconcile.Result{}, err
	}
	if !want.Enabled {
		if !apiOK {
			return reconcile.Result{}, nil
		}
		return reconcile.Result{}, r.remove(ctx, cc)
	}
	if !apiOK {
		msg := "spec.components.imagePuller.enable is true, but the KubernetesImagePuller API (kubernetesimagepullers.che.eclipse.org/v1alpha1) is not installed in this cluster: install the image puller operator's CRD (deploy/operator/crd)"
		log.Error(nil, msg)
		r.events.Eventf(cc, nil, corev1.EventTypeWarning, ReasonPullerAPIMissing, "Reconcile", "%s", msg)
		return reconcile.Result{RequeueAfter: r.opts.RetryAfter}, nil
	}

	var existing v1alpha1.KubernetesImagePuller
	key := client.ObjectKey{Namespace: cc.GetNamespace(), Name: operator.PullerName(cc.GetName())}
	found := true
	if err := r.client.Get(ctx, key, &existing); apierrors.IsNotFound(err) {
		found = false
	} else if err != nil {
		return reconcile.Result{}, err
	}

	spec := want.Spec
	var defaults *metav1.Condition
	if strings.TrimSpace(spec.Images) == "" {
		defaults = r.defaultImages(ctx, cc, &spec)
		if defaults.Status != metav1.ConditionTrue && found {
			spec.Images = existing.Spec.Images // keep the last images read
		}
	}
	desired := operator.PullerFor(cc, spec)
	if !found || !pullerUpToDate(&existing, desired) {
		u, err := runtime.DefaultUnstructuredConverter.ToUnstructured(desired)
		if err != nil {
			return reconcile.Result{}, err
		}
		delete(u, "status")
		if err := r.client.Apply(ctx, client.ApplyConfigurationFromUnstructured(&unstructured.Unstructured{Object: u}),
			client.FieldOwner(FieldOwner), client.ForceOwnership); err != nil {
			return reconcile.Result{}, fmt.Errorf("apply KubernetesImagePuller %s: %w", key, err)
		}
		log.Info("applied KubernetesImagePuller", "name", key.Name, "images", len(strings.FieldsFunc(spec.Images, func(r rune) bool { return r == ';' })))
	}
	if defaults == nil {
		return reconcile.Result{}, nil
	}
	if err := r.setCondition(ctx, key, *defaults); err != nil {
		return reconcile.Result{}, err
	}
	if defaults.Status != metav1.ConditionTrue {
		return reconcile.Result{RequeueAfter: r.opts.RetryAfter}, nil
	}
	return reconcile.Result{}, nil
}

// defaultImages fills spec.Images with the platform's default images and
// returns the condition saying how that went.
func (r *cheClusterReconciler) defaultImages(ctx context.Context, cc *unstructured.Unstructured, spec *v1alpha1.KubernetesImagePullerSpec) *metav1.Condition {
	cond := &metav1.Condition{Type: operator.TypeDefaultImages, ObservedGeneration: cc.GetGeneration()}
	urls := r.opts.DefaultImageLists
	if len(urls) == 0 {
		urls = operator.DefaultImageLists(cc)
	}
	if len(urls) == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonNoRegistry
		cond.Message = "spec.images is empty and the CheCluster's status names no plugin or devfile registry URL yet; waiting for it"
		return cond
	}
	var lists [][]string
	var problems []string
	for _, u := range urls {
		text, err := images.Read(ctx, u, r.opts.FetchTimeout)
		if err != nil {
			problems = append(problems, fmt.Sprintf("GET %s: %v", u, err))
			continue
		}
		refs, bad := images.Parse(u, text)
		for _, p := range bad {
			problems = append(problems, p.String())
		}
		lists = append(lists, refs)
	}
	if len(problems) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonRegistryUnreachable
		cond.Message = fmt.Sprintf("reading the default images failed, retrying in %v: %s", r.opts.RetryAfter, strings.Join(problems, "; "))
		return cond
	}
	merged := images.Merge(lists...)
	if len(merged) == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonRegistryUnreachable
		cond.Message = "the registries list no image: " + strings.Join(urls, ", ")
		return cond
	}
	spec.Images = images.Value(merged)
	cond.Status, cond.Reason = metav1.ConditionTrue, operator.ReasonDefaultImagesRead
	cond.Message = fmt.Sprintf("%d default images from %s", len(merged), strings.Join(urls, ", "))
	return cond
}

// pullerUpToDate tells whether existing already is what the CheCluster asks.
func pullerUpToDate(existing, desired *v1alpha1.KubernetesImagePuller) bool {
	if existing.Spec != desired.Spec || !equality.Semantic.DeepEqual(existing.OwnerReferences, desired.OwnerReferences) {
		return false
	}
	for k, v := range desired.Labels {
		if existing.Labels[k] != v {
			return false
		}
	}
	return true
}

// setCondition records cond on the resource's status, leaving the
// conditions the puller controller keeps alone.
func (r *cheClusterReconciler) setCondition(ctx context.Context, key client.ObjectKey, cond metav1.Condition) error {
	var kip v1alpha1.KubernetesImagePuller
	if err := r.client.Get(ctx, key, &kip); err != nil {
		return err
	}
	if old := meta.FindStatusCondition(kip.Status.Conditions, cond.Type); old != nil &&
		old.Status == cond.Status && old.Reason == cond.Reason && old.Message == cond.Message {
		return nil
	}
	meta.SetStatusCondition(&kip.Status.Conditions, cond)
	return r.client.Status().Update(ctx, &kip)
}

// remove deletes the CheCluster's resource, if it made one.
func (r *cheClusterReconciler) remove(ctx context.Context, cc *unstructured.Unstructured) error {
	var kip v1alpha1.KubernetesImagePuller
	key := client.ObjectKey{Namespace: cc.GetNamespace(), Name: operator.PullerName(cc.GetName())}
	if err := r.client.Get(ctx, key, &kip); err != nil {
		return client.IgnoreNotFound(err)
	}
	if owner := metav1.GetControllerOf(&kip); owner == nil || owner.UID != cc.GetUID() {
		r.log.Info("leaving a KubernetesImagePuller the CheCluster does not own", "name", key)
		return nil
	}
	if err := r.client.Delete(ctx, &kip); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.log.Info("image puller disabled; removed its KubernetesImagePuller", "name", key)
	return nil
}
