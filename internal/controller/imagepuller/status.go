package imagepuller

import (
	"context"
	"fmt"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/operator"

	"k8s.io/apimachinery/pkg/api/equality"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
)

// writeStatus writes the status for obs when it differs from the stored one.
func (r *reconciler) writeStatus(ctx context.Context, kip *v1alpha1.KubernetesImagePuller, obs operator.Observation) error {
	st := operator.Status(kip.Status, obs)
	if equality.Semantic.DeepEqual(st, kip.Status) {
		return nil
	}
	kip.Status = st
	if err := r.client.Status().Update(ctx, kip); err != nil {
		if apierrors.IsConflict(err) {
			// Someone wrote the resource since it was read (the CheCluster
			// bridge's condition, a spec edit): that write's event brings the
			// next reconcile, which sees the newer object. Not an error.
			return nil
		}
		return fmt.Errorf("update status of %s/%s: %w", kip.Namespace, kip.Name, err)
	}
	return nil
}
