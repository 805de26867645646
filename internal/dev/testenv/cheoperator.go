package testenv

import (
	"context"
	"sync/atomic"
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/operator"
)

// CheOperatorStandIn writes the CheCluster's KubernetesImagePuller as
// che-operator does: with its own labels, a controller reference to the
// CheCluster and its own images, as field manager che-operator; then every
// second a full-object Update back to what it wants, until stop is called.
// writes counts its writes. The envtest and end-to-end tests of the
// operator's coexistence with che-operator share it.
func CheOperatorStandIn(c client.Client, cc *unstructured.Unstructured, images string) (writes *atomic.Int64, stop func(), err error) {
	c = client.WithFieldOwner(c, "che-operator")
	// The CheCluster's name and UID, read once: the test goes on writing
	// cc while the loop below runs.
	name, namespace, uid := cc.GetName(), cc.GetNamespace(), cc.GetUID()
	want := func(kip *v1alpha1.KubernetesImagePuller) {
		kip.Labels = map[string]string{"app.kubernetes.io/managed-by": "che.eclipse.org", "app.kubernetes.io/part-of": "che.eclipse.org",
			"app.kubernetes.io/component": "kubernetes-image-puller"}
		kip.OwnerReferences = []metav1.OwnerReference{{APIVersion: "org.eclipse.che/v2", Kind: "CheCluster", Name: name, UID: uid,
			Controller: ptr.To(true), BlockOwnerDeletion: ptr.To(true)}}
		kip.Spec = v1alpha1.KubernetesImagePullerSpec{Images: images, DeploymentName: "kubernetes-image-puller", ConfigMapName: "k8s-image-puller"}
	}
	kip := &v1alpha1.KubernetesImagePuller{ObjectMeta: metav1.ObjectMeta{Name: operator.PullerName(name), Namespace: namespace}}
	want(kip)
	if err := c.Create(context.Background(), kip); err != nil {
		return nil, nil, err
	}
	writes = &atomic.Int64{}
	writes.Add(1)
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			select {
			case <-ctx.Done():
				return
			case <-time.After(time.Second):
			}
			var live v1alpha1.KubernetesImagePuller
			if err := c.Get(ctx, client.ObjectKeyFromObject(kip), &live); err != nil {
				continue
			}
			want(&live)
			if err := c.Update(ctx, &live); err == nil {
				writes.Add(1)
			}
		}
	}()
	return writes, func() { cancel(); <-done }, nil
}
