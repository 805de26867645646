package puller

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	appsv1ac "k8s.io/client-go/applyconfigurations/apps/v1"
	ctrl "sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/ssa"
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

// apply server-side applies ds and returns the UID the API server answers
// with. With dryRun the API server validates and admits it (admission
// webhooks and policies included) and stores nothing.
func (r *reconciler) apply(ctx context.Context, ds *appsv1.DaemonSet, dryRun bool) (types.UID, error) {
	ac, err := applyConfiguration(ds)
	if err != nil {
		return "", err
	}
	opts := []ctrl.ApplyOption{ctrl.FieldOwner(r.opts.FieldOwner), ctrl.ForceOwnership}
	if dryRun {
		opts = append(opts, ctrl.DryRunAll)
	}
	if err := r.client.Apply(ctx, ac, opts...); err != nil {
		return "", err
	}
	if ac.UID == nil {
		return "", nil
	}
	return *ac.UID, nil
}

func desiredHash(ds *appsv1.DaemonSet) string {
	raw, err := daemonset.JSON(ds)
	if err != nil {
		return ""
	}
	sum := sha256.Sum256(raw)
	return hex.EncodeToString(sum[:])
}

// needsApply tells whether the DaemonSet must be applied. The informer's copy
// answers the common, idle case without a request. When it says "missing" or
// "out of date", one live read confirms it: the copy may simply not have seen
// the controller's own last write yet, and applying again then would be a
// needless write.
func (r *reconciler) needsApply(ctx context.Context, cached, desired *appsv1.DaemonSet) (bool, error) {
	if cached != nil {
		same, err := upToDate(cached, desired, r.opts.FieldOwner)
		if err != nil || same {
			return false, err
		}
	}
	var live appsv1.DaemonSet
	switch err := r.apiReader.Get(ctx, ctrl.ObjectKeyFromObject(desired), &live); {
	case apierrors.IsNotFound(err):
		return true, nil
	case err != nil:
		return false, err
	}
	same, err := upToDate(&live, desired, r.opts.FieldOwner)
	return !same, err
}

// rejection turns the API server's refusal of the DaemonSet as invalid
// into the configuration problems behind it, each named by the key that
// sets the field; nil when err is no such refusal.
func rejection(err error, ds *appsv1.DaemonSet) *config.Error {
	if !apierrors.IsInvalid(err) && !apierrors.IsBadRequest(err) {
		return nil
	}
	var status apierrors.APIStatus
	if !errors.As(err, &status) {
		return nil
	}
	st := status.Status()
	var problems []config.Problem
	if st.Details != nil {
		for _, c := range st.Details.Causes {
			key, value := daemonset.KeyOfField(c.Field), c.Field
			if key == "" {
				key = "DaemonSet " + ds.Name
			}
			if value == "" {
				value = ds.Name
			}
			problems = append(problems, config.Problem{Key: key, Value: value, Expected: "what the API server accepts: " + c.Message})
		}
	}
	if len(problems) == 0 {
		problems = []config.Problem{{Key: "DaemonSet " + ds.Name, Value: ds.Name, Expected: "what the API server accepts: " + st.Message}}
	}
	return &config.Error{Problems: problems}
}
