package ssa

import (
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	corev1ac "k8s.io/client-go/applyconfigurations/core/v1"
)

func TestJSONDropsStatusAndNullTimestamps(t *testing.T) {
	raw, err := JSON(&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	if err != nil {
		t.Fatal(err)
	}
	if s := string(raw); strings.Contains(s, "status") || strings.Contains(s, "creationTimestamp") {
		t.Errorf("JSON %s", s)
	}
}

func TestUpToDate(t *testing.T) {
	desired := &corev1.Pod{
		TypeMeta:   metav1.TypeMeta{APIVersion: "v1", Kind: "Pod"},
		ObjectMeta: metav1.ObjectMeta{Name: "p"},
		Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "c", Image: "reg/a:1",
			Resources: corev1.ResourceRequirements{Limits: corev1.ResourceList{corev1.ResourceCPU: resource.MustParse("0.05")}}}}},
	}
	owned := func(image, cpu string) *corev1ac.PodApplyConfiguration {
		return corev1ac.Pod("p", "").WithSpec(corev1ac.PodSpec().WithContainers(corev1ac.Container().WithName("c").WithImage(image).
			WithResources(corev1ac.ResourceRequirements().WithLimits(corev1.ResourceList{corev1.ResourceCPU: resource.MustParse(cpu)}))))
	}
	cases := []struct {
		name  string
		owned *corev1ac.PodApplyConfiguration
		want  bool
	}{
		{"same values, quantities compared by value", owned("reg/a:1", "50m"), true},
		{"an owned field changed by hand", owned("reg/a:2", "50m"), false},
		{"a quantity changed", owned("reg/a:1", "100m"), false},
	}
	for _, tc := range cases {
		got, err := UpToDate(tc.owned, desired)
		if err != nil {
			t.Fatal(err)
		}
		if got != tc.want {
			t.Errorf("%s: up to date %v, want %v", tc.name, got, tc.want)
		}
	}
}

func TestConfigurationErrors(t *testing.T) {
	if _, err := Configuration[corev1ac.PodApplyConfiguration](map[string]any{"bad": make(chan int)}); err == nil {
		t.Error("an object that does not encode gave no error")
	}
	_, err := Configuration[corev1ac.PodApplyConfiguration](map[string]any{"spec": "not an object"})
	if err == nil || !strings.Contains(err.Error(), "PodApplyConfiguration") {
		t.Errorf("err %v, want one naming the apply configuration type", err)
	}
	ac, err := Configuration[corev1ac.PodApplyConfiguration](&corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: "p"}})
	if err != nil || ac.Name == nil || *ac.Name != "p" {
		t.Errorf("Configuration(pod) = %+v, %v", ac, err)
	}
}
