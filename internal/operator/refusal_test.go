package operator

import (
	"testing"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/kip-image-puller/kip/internal/config"
)

func TestRefusal(t *testing.T) {
	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "k8s-image-puller"}, Data: map[string]string{config.KeyImages: "a=reg/a:1"}}
	current := config.Fingerprint(cm.Data)
	replaced := config.Fingerprint(map[string]string{config.KeyImages: "a=reg/a:0"})
	event := func(reason, kind, name, fingerprint, msg string) corev1.Event {
		return corev1.Event{ObjectMeta: metav1.ObjectMeta{Annotations: map[string]string{config.AnnotationFingerprint: fingerprint}},
			Reason: reason, InvolvedObject: corev1.ObjectReference{Kind: kind, Name: name}, Message: msg}
	}
	tests := []struct {
		name   string
		events []corev1.Event
		want   string
	}{
		{"no event", nil, ""},
		{"the configuration in force refused", []corev1.Event{event(config.ReasonInvalidConfiguration, "ConfigMap", cm.Name, current, "refused")}, "refused"},
		{"a configuration since replaced", []corev1.Event{event(config.ReasonInvalidConfiguration, "ConfigMap", cm.Name, replaced, "old")}, ""},
		{"among others", []corev1.Event{
			event(config.ReasonInvalidConfiguration, "ConfigMap", cm.Name, replaced, "old"),
			event(config.ReasonInvalidConfiguration, "ConfigMap", cm.Name, current, "now"),
		}, "now"},
		{"another reason", []corev1.Event{event("Applied", "ConfigMap", cm.Name, current, "x")}, ""},
		{"another ConfigMap", []corev1.Event{event(config.ReasonInvalidConfiguration, "ConfigMap", "other", current, "x")}, ""},
		{"another kind", []corev1.Event{event(config.ReasonInvalidConfiguration, "Deployment", cm.Name, current, "x")}, ""},
		{"no fingerprint", []corev1.Event{{Reason: config.ReasonInvalidConfiguration, InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Name: cm.Name}}}, ""},
	}
	for _, tt := range tests {
		if got := Refusal(tt.events, cm); got != tt.want {
			t.Errorf("%s: Refusal = %q, want %q", tt.name, got, tt.want)
		}
	}
}
