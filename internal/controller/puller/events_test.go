package puller

import (
	"strings"
	"testing"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/tools/record"
)

func drain(rec *record.FakeRecorder) []string {
	var out []string
	for {
		select {
		case e := <-rec.Events:
			out = append(out, e)
		default:
			return out
		}
	}
}

func TestEmitBoundsTheNote(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	s := eventSink{rec: rec}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	s.emit(ds, "Warning", "R", "%s", strings.Repeat("x", 3000))
	s.emit(nil, "Warning", "R", "no object: only the log tells")
	eventSink{}.emit(ds, "Warning", "R", "no recorder: only the log tells")
	got := drain(rec)
	if len(got) != 1 {
		t.Fatalf("%d events, want 1: %q", len(got), got)
	}
	note := strings.TrimPrefix(got[0], "Warning R ")
	if len(note) != maxEventNote || !strings.HasSuffix(note, "...") {
		t.Errorf("note of %d bytes ending %q; want %d bytes ending in ...", len(note), note[len(note)-5:], maxEventNote)
	}
}

func TestResolveFailuresReportedOncePerDistinctFailure(t *testing.T) {
	rec := record.NewFakeRecorder(10)
	r := &reconciler{events: eventSink{rec: rec}, log: logr.Discard()}
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "p"}}
	steps := []struct {
		failures map[string]string
		want     []string
	}{
		{map[string]string{"b:1": "timeout", "a:1": "denied"}, []string{"Warning ResolveFailed a:1: denied", "Warning ResolveFailed b:1: timeout"}},
		{map[string]string{"b:1": "timeout", "a:1": "denied"}, nil}, // the same failures: nothing new
		{map[string]string{"b:1": "not found"}, []string{"Warning ResolveFailed b:1: not found"}},
		{nil, nil},
		{map[string]string{"b:1": "not found"}, []string{"Warning ResolveFailed b:1: not found"}}, // back after a good refresh
	}
	for i, step := range steps {
		r.reportResolveFailures(ds, step.failures)
		got := drain(rec)
		if strings.Join(got, "|") != strings.Join(step.want, "|") {
			t.Errorf("step %d: events %q, want %q", i, got, step.want)
		}
	}
}
