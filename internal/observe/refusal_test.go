package observe

import (
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
)

func TestLatestRefusal(t *testing.T) {
	t0 := time.Date(2026, 11, 29, 12, 0, 0, 0, time.UTC)
	event := func(uid types.UID, msg string, last time.Time, series *time.Time, eventTime *time.Time) corev1.Event {
		e := corev1.Event{InvolvedObject: corev1.ObjectReference{UID: uid}, Message: msg, LastTimestamp: metav1.NewTime(last)}
		if series != nil {
			e.Series = &corev1.EventSeries{LastObservedTime: metav1.NewMicroTime(*series)}
		}
		if eventTime != nil {
			e.EventTime = metav1.NewMicroTime(*eventTime)
		}
		return e
	}
	later := t0.Add(3 * time.Minute)
	tests := []struct {
		name   string
		events []corev1.Event
		want   string
	}{
		{"none", nil, ""},
		{"too old", []corev1.Event{event("ds", "old", t0.Add(-time.Hour), nil, nil)}, ""},
		{"the newest wins", []corev1.Event{event("ds", "first", t0.Add(time.Minute), nil, nil), event("ds", "second", t0.Add(2*time.Minute), nil, nil)}, "second"},
		{"a series counts by its last observation", []corev1.Event{event("ds", "series", t0.Add(-time.Hour), &later, nil), event("ds", "single", t0.Add(2*time.Minute), nil, nil)}, "series"},
		{"an events.k8s.io event by its event time", []corev1.Event{event("ds", "new API", time.Time{}, nil, &later)}, "new API"},
		{"another DaemonSet of the same name", []corev1.Event{event("earlier", "gone", later, nil, nil)}, ""},
		{"no UID recorded", []corev1.Event{event("", "kept", later, nil, nil)}, "kept"},
	}
	for _, tt := range tests {
		if got := LatestRefusal(tt.events, "ds", t0); got != tt.want {
			t.Errorf("%s: %q, want %q", tt.name, got, tt.want)
		}
	}
}
