package puller

import (
	"fmt"

	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/tools/record"
)

// maxEventNote bounds an Event's message, as the events.k8s.io/v1 note is.
const maxEventNote = 1024

// eventSink records Kubernetes Events. It uses the core/v1 recorder on
// purpose: the events.k8s.io recorder folds every Event with the same
// object, reason and action into one series and keeps only the first note,
// so "app7 failing on node2" would vanish behind "app7 failing on node1".
// The core recorder counts identical Events and keeps distinct ones.
type eventSink struct {
	rec record.EventRecorder
}

// emit records an Event about obj; without an object or a recorder the
// caller's log line is the only report.
func (s eventSink) emit(obj runtime.Object, eventType, reason, format string, args ...any) {
	if obj == nil || s.rec == nil {
		return
	}
	note := fmt.Sprintf(format, args...)
	if len(note) > maxEventNote {
		note = note[:maxEventNote-3] + "..."
	}
	s.rec.Event(obj, eventType, reason, note)
}
