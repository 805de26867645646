package checluster

import (
	"context"
	"fmt"
	"strings"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/labels"
	"github.com/kip-image-puller/kip/internal/operator"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/reconcile"
)

// Event reasons on a CheCluster.
const (
	ReasonPullerAPIMissing  = "KubernetesImagePullerAPIMissing"
	ReasonInvalidCheCluster = "InvalidImagePullerSpec"
	// ReasonManagedElsewhere: another manager (che-operator) keeps the
	// CheCluster's KubernetesImagePuller; the bridge leaves it alone.
	ReasonManagedElsewhere = "ImagePullerManagedElsewhere"
)

func (r *reconciler) Reconcile(ctx context.Context, req reconcile.Request) (reconcile.Result, error) {
	cc := operator.NewCheCluster()
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
	if why := r.standBack(cc, key, &existing, found); why != "" {
		return reconcile.Result{}, nil
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
			client.FieldOwner(labels.OperatorFieldOwner), client.ForceOwnership); err != nil {
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
	// The lists change without the CheCluster changing (a platform upgrade
	// brings new editors): read them again.
	return reconcile.Result{RequeueAfter: r.opts.DefaultImagesRefresh}, nil
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
func (r *reconciler) setCondition(ctx context.Context, key client.ObjectKey, cond metav1.Condition) error {
	cond.Message = operator.BoundMessage(cond.Message)
	// The puller controller writes the same status: read again and retry
	// on a conflict, rather than fail the reconcile.
	return retry.RetryOnConflict(retry.DefaultBackoff, func() error {
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
	})
}

// remove deletes the CheCluster's resource, if it made one.
func (r *reconciler) remove(ctx context.Context, cc *unstructured.Unstructured) error {
	var kip v1alpha1.KubernetesImagePuller
	key := client.ObjectKey{Namespace: cc.GetNamespace(), Name: operator.PullerName(cc.GetName())}
	if err := r.client.Get(ctx, key, &kip); err != nil {
		return client.IgnoreNotFound(err)
	}
	if owner := metav1.GetControllerOf(&kip); owner == nil || owner.UID != cc.GetUID() || operator.ManagedElsewhere(&kip) != "" {
		r.log.Info("leaving a KubernetesImagePuller the bridge does not manage alone", "name", key)
		return nil
	}
	if err := r.client.Delete(ctx, &kip); err != nil {
		return client.IgnoreNotFound(err)
	}
	r.log.Info("image puller disabled; removed its KubernetesImagePuller", "name", key)
	return nil
}

// standBack tells why the bridge leaves the CheCluster's resource alone,
// and says so once on the CheCluster: che-operator reconciles the
// CheCluster (mode auto), or another manager keeps the resource. It
// returns "" when the bridge may write it.
func (r *reconciler) standBack(cc *unstructured.Unstructured, key client.ObjectKey, existing *v1alpha1.KubernetesImagePuller, found bool) string {
	why := ""
	switch who := operator.CheOperatorReconciles(cc); {
	case r.opts.Bridge == operator.BridgeAuto && who != "":
		why = fmt.Sprintf("che-operator reconciles this CheCluster (%s) and writes KubernetesImagePuller %s itself; the bridge stands back (--checluster-bridge=auto)", who, key.Name)
	case found:
		if other := operator.ManagedElsewhere(existing); other != "" {
			why = fmt.Sprintf("KubernetesImagePuller %s is managed by another manager (%s); the bridge leaves its spec, labels and owner as they are and only reconciles it", key.Name, other)
		}
	}
	uid := string(cc.GetUID())
	r.mu.Lock()
	told := r.stoodBack[uid] == why
	if why == "" {
		delete(r.stoodBack, uid)
	} else {
		r.stoodBack[uid] = why
	}
	r.mu.Unlock()
	if why != "" && !told {
		r.log.Info("standing back", "checluster", client.ObjectKeyFromObject(cc), "why", why)
		r.events.Eventf(cc, nil, corev1.EventTypeNormal, ReasonManagedElsewhere, "Reconcile", "%s", why)
	}
	return why
}
