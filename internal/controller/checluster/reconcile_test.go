package checluster

import (
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kip-image-puller/kip/api/v1alpha1"
)

func TestPullerUpToDate(t *testing.T) {
	desired := func() *v1alpha1.KubernetesImagePuller {
		return &v1alpha1.KubernetesImagePuller{
			ObjectMeta: metav1.ObjectMeta{
				Labels:          map[string]string{"app.kubernetes.io/part-of": "che.eclipse.org"},
				OwnerReferences: []metav1.OwnerReference{{Name: "che", UID: "u1"}},
			},
			Spec: v1alpha1.KubernetesImagePullerSpec{Images: "a=a:1"},
		}
	}
	cases := []struct {
		name string
		edit func(*v1alpha1.KubernetesImagePuller)
		want bool
	}{
		{"as desired", func(*v1alpha1.KubernetesImagePuller) {}, true},
		{"a label of someone else's added", func(k *v1alpha1.KubernetesImagePuller) { k.Labels["team"] = "x" }, true},
		{"status only", func(k *v1alpha1.KubernetesImagePuller) { k.Status.ImagesCached = "3/3" }, true},
		{"spec changed", func(k *v1alpha1.KubernetesImagePuller) { k.Spec.Images = "a=a:2" }, false},
		{"our label removed", func(k *v1alpha1.KubernetesImagePuller) { delete(k.Labels, "app.kubernetes.io/part-of") }, false},
		{"another owner", func(k *v1alpha1.KubernetesImagePuller) { k.OwnerReferences[0].UID = "u2" }, false},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			existing := desired()
			tc.edit(existing)
			if got := pullerUpToDate(existing, desired()); got != tc.want {
				t.Errorf("up to date = %v, want %v", got, tc.want)
			}
		})
	}
}
