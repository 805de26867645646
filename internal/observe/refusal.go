package observe

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/types"
)

// LatestRefusal is the message of the newest Event about the DaemonSet
// with uid seen after since; "" when none is.
func LatestRefusal(events []corev1.Event, uid types.UID, since time.Time) string {
	var latest time.Time
	msg := ""
	for _, e := range events {
		if e.InvolvedObject.UID != "" && uid != "" && e.InvolvedObject.UID != uid {
			continue // about an earlier DaemonSet of the same name
		}
		seen := e.LastTimestamp.Time
		if e.Series != nil && e.Series.LastObservedTime.After(seen) {
			seen = e.Series.LastObservedTime.Time
		}
		if t := e.EventTime.Time; t.After(seen) {
			seen = t
		}
		if seen.After(since) && seen.After(latest) {
			latest, msg = seen, e.Message
		}
	}
	return msg
}
