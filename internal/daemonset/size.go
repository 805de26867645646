package daemonset

import (
	"fmt"

	appsv1 "k8s.io/api/apps/v1"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
)

// MaxObjectBytes is the largest DaemonSet the controller applies: etcd
// refuses a request over its default --max-request-bytes (1.5 MiB), and the
// object is stored once more in the managedFields of server-side apply.
const MaxObjectBytes = 1 << 20

// CheckSize tells whether the API server would store ds: annotations of
// the object and of its pod template within the 256 KiB the API server
// allows each, and the whole object within MaxObjectBytes. A DaemonSet
// refused for its size would leave every later apply failing, fixes
// included; checked first, it is an invalid configuration instead.
func CheckSize(ds *appsv1.DaemonSet) error {
	if err := apivalidation.ValidateAnnotationsSize(ds.Annotations); err != nil {
		return fmt.Errorf("the DaemonSet's annotations (DAEMONSET_ANNOTATIONS and the recorded digests): %w", err)
	}
	if err := apivalidation.ValidateAnnotationsSize(ds.Spec.Template.Annotations); err != nil {
		return fmt.Errorf("the pod template's annotations: %w", err)
	}
	raw, err := JSON(ds)
	if err != nil {
		return err
	}
	if len(raw) > MaxObjectBytes {
		return fmt.Errorf("the DaemonSet would be %d bytes, over the %d the API server and etcd accept: cache fewer images", len(raw), MaxObjectBytes)
	}
	return nil
}
