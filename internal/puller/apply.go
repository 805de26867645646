package puller

import (
	"fmt"

	"github.com/kip-image-puller/kip/internal/ssa"

	appsv1 "k8s.io/api/apps/v1"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
)

// applyConfiguration turns a built DaemonSet into the apply configuration
// sent with server-side apply: only the fields the builder set, no status.
func applyConfiguration(ds *appsv1.DaemonSet) (*appsv1ac.DaemonSetApplyConfiguration, error) {
	return ssa.Configuration[appsv1ac.DaemonSetApplyConfiguration](ds)
}

// upToDate tells whether the fields fieldOwner manages on the live DaemonSet
// still hold the desired values.
func upToDate(live, desired *appsv1.DaemonSet, fieldOwner string) (bool, error) {
	owned, err := appsv1ac.ExtractDaemonSet(live, fieldOwner)
	if err != nil {
		return false, fmt.Errorf("extract fields managed by %s: %w", fieldOwner, err)
	}
	return ssa.UpToDate(owned, desired)
}
