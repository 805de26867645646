package puller

import (
	"errors"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/util/validation/field"

	"github.com/kip-image-puller/kip/internal/config"
)

func TestRejection(t *testing.T) {
	ds := &appsv1.DaemonSet{ObjectMeta: metav1.ObjectMeta{Name: "puller"}}
	gk := schema.GroupKind{Group: "apps", Kind: "DaemonSet"}
	invalid := apierrors.NewInvalid(gk, "puller", field.ErrorList{
		field.Invalid(field.NewPath("spec", "template", "spec", "tolerations").Index(0).Child("tolerationSeconds"), -1, "must be positive"),
		field.Required(field.NewPath("spec", "template", "spec", "affinity", "nodeAffinity"), "a term"),
		field.Invalid(field.NewPath("spec", "revisionHistoryLimit"), 0, "odd"),
	})
	got := rejection(invalid, ds)
	if got == nil {
		t.Fatal("an Invalid error was not taken for a rejected configuration")
	}
	keys := strings.Join(got.Keys(), ",")
	if want := config.KeyTolerations + "," + config.KeyAffinity + ",DaemonSet puller"; keys != want {
		t.Errorf("keys %s, want %s", keys, want)
	}
	if !strings.Contains(got.Error(), "must be positive") {
		t.Errorf("%v does not carry the API server's reason", got)
	}
	noCauses := apierrors.NewBadRequest("admission webhook denied the request")
	if got := rejection(noCauses, ds); got == nil || got.Keys()[0] != "DaemonSet puller" || !strings.Contains(got.Error(), "webhook denied") {
		t.Errorf("a bad request without causes: %v", got)
	}
	for _, err := range []error{
		apierrors.NewForbidden(schema.GroupResource{Group: "apps", Resource: "daemonsets"}, "puller", errors.New("RBAC")),
		apierrors.NewConflict(schema.GroupResource{Group: "apps", Resource: "daemonsets"}, "puller", errors.New("conflict")),
		errors.New("connection refused"),
	} {
		if got := rejection(err, ds); got != nil {
			t.Errorf("%v was taken for an invalid configuration: %v", err, got)
		}
	}
}
