package puller

import (
	"encoding/json"
	"fmt"

	"github.com/kip-image-puller/kip/internal/daemonset"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/equality"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
)

// applyConfiguration turns a built DaemonSet into the apply configuration
// sent with server-side apply: only the fields the builder set, no status.
func applyConfiguration(ds *appsv1.DaemonSet) (*appsv1ac.DaemonSetApplyConfiguration, error) {
	raw, err := daemonset.JSON(ds)
	if err != nil {
		return nil, err
	}
	ac := &appsv1ac.DaemonSetApplyConfiguration{}
	if err := json.Unmarshal(raw, ac); err != nil {
		return nil, fmt.Errorf("decode DaemonSet apply configuration: %w", err)
	}
	return ac, nil
}

// upToDate tells whether the fields fieldOwner manages on the live DaemonSet
// still hold the desired values. A hand edit of one of those fields moves its
// ownership to the editor, so it shows up here as a difference; fields others
// added are theirs and do not count.
func upToDate(live, desired *appsv1.DaemonSet, fieldOwner string) (bool, error) {
	owned, err := appsv1ac.ExtractDaemonSet(live, fieldOwner)
	if err != nil {
		return false, fmt.Errorf("extract fields managed by %s: %w", fieldOwner, err)
	}
	ownedJSON, err := json.Marshal(owned)
	if err != nil {
		return false, err
	}
	wantJSON, err := daemonset.JSON(desired)
	if err != nil {
		return false, err
	}
	// Both sides as typed objects, so quantities compare by value ("0.05" is "50m").
	var have, want appsv1.DaemonSet
	if err := json.Unmarshal(ownedJSON, &have); err != nil {
		return false, err
	}
	if err := json.Unmarshal(wantJSON, &want); err != nil {
		return false, err
	}
	return equality.Semantic.DeepEqual(have, want), nil
}
