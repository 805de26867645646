package operator

import (
	corev1 "k8s.io/api/core/v1"

	"github.com/kip-image-puller/kip/internal/config"
)

// Refusal returns the message with which the puller refused the
// configuration the ConfigMap holds now: an InvalidConfiguration Event about
// the ConfigMap whose fingerprint annotation is that of its data. Events
// about configurations since replaced carry other fingerprints. It returns
// "" when the configuration in force was not refused.
func Refusal(events []corev1.Event, configMap *corev1.ConfigMap) string {
	fingerprint := config.Fingerprint(configMap.Data)
	for _, e := range events {
		if e.Reason == config.ReasonInvalidConfiguration && e.InvolvedObject.Kind == "ConfigMap" &&
			e.InvolvedObject.Name == configMap.Name && e.Annotations[config.AnnotationFingerprint] == fingerprint {
			return e.Message
		}
	}
	return ""
}
