//go:build integration

package puller

import (
	"context"
	"strings"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/dev/testenv"
)

// refuseNodeSelector installs an admission policy that refuses, in
// namespace ns, a DaemonSet whose pods select nodes by the label key
// "forbidden": what the offline checks cannot know and the API server
// decides.
func refuseNodeSelector(t *testing.T, ns string) {
	t.Helper()
	ctx := context.Background()
	policy := &admissionregistrationv1.ValidatingAdmissionPolicy{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-no-forbidden"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicySpec{
			FailurePolicy: ptr.To(admissionregistrationv1.Fail),
			MatchConstraints: &admissionregistrationv1.MatchResources{ResourceRules: []admissionregistrationv1.NamedRuleWithOperations{{
				RuleWithOperations: admissionregistrationv1.RuleWithOperations{
					Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create, admissionregistrationv1.Update},
					Rule:       admissionregistrationv1.Rule{APIGroups: []string{"apps"}, APIVersions: []string{"v1"}, Resources: []string{"daemonsets"}},
				},
			}}},
			Validations: []admissionregistrationv1.Validation{{
				Expression: `!has(object.spec.template.spec.nodeSelector) || !("forbidden" in object.spec.template.spec.nodeSelector)`,
				Message:    "the node label forbidden may not be selected here",
				Reason:     ptr.To(metav1.StatusReasonInvalid),
			}},
		},
	}
	binding := &admissionregistrationv1.ValidatingAdmissionPolicyBinding{
		ObjectMeta: metav1.ObjectMeta{Name: ns + "-no-forbidden"},
		Spec: admissionregistrationv1.ValidatingAdmissionPolicyBindingSpec{
			PolicyName:        policy.Name,
			ValidationActions: []admissionregistrationv1.ValidationAction{admissionregistrationv1.Deny},
			MatchResources: &admissionregistrationv1.MatchResources{NamespaceSelector: &metav1.LabelSelector{
				MatchLabels: map[string]string{"kubernetes.io/metadata.name": ns},
			}},
		},
	}
	for _, obj := range []client.Object{policy, binding} {
		if err := k8s.Create(ctx, obj); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = k8s.Delete(context.Background(), obj) })
	}
	// The API server loads policies asynchronously: wait until it refuses.
	probe := &appsv1.DaemonSet{
		ObjectMeta: metav1.ObjectMeta{Name: "probe", Namespace: ns},
		Spec: appsv1.DaemonSetSpec{
			Selector: &metav1.LabelSelector{MatchLabels: map[string]string{"p": "p"}},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: map[string]string{"p": "p"}},
				Spec:       corev1.PodSpec{NodeSelector: map[string]string{"forbidden": "yes"}, Containers: []corev1.Container{{Name: "c", Image: "c:1"}}},
			},
		},
	}
	testenv.Eventually(t, 20*time.Second, "the policy in force", func() (bool, string) {
		err := k8s.Create(ctx, probe.DeepCopy(), client.DryRunAll)
		return err != nil, "still admitted"
	})
}

// TestAPIServerRefusalIsAnInvalidConfiguration: a configuration that passes
// every offline check but that the API server refuses (here an admission
// policy) is reported like any invalid configuration, naming the key; the
// last good DaemonSet stays, and a fixed configuration applies.
func TestAPIServerRefusalIsAnInvalidConfiguration(t *testing.T) {
	ns := newNamespace(t)
	ctx := context.Background()
	refuseNodeSelector(t, ns)
	cm := configMap(ns, map[string]string{config.KeyImages: "a=reg.example.com/a:1"})
	if err := k8s.Create(ctx, cm); err != nil {
		t.Fatal(err)
	}
	run := startController(t, ns)
	first := waitForImages(t, ns, dsName, "a=reg.example.com/a:1")

	cm.Data[config.KeyImages] = "b=reg.example.com/b:1"
	cm.Data[config.KeyNodeSelector] = `{"forbidden": "yes"}`
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	// A policy names no field, so the report names the DaemonSet; the API
	// server's own validation names fields, mapped to keys (TestRejection).
	e := waitForEvent(t, ns, ReasonInvalidConfiguration, "ConfigMap", "may not be selected")
	if !strings.Contains(e.Note, "DaemonSet "+dsName) || !strings.Contains(e.Note, "last applied DaemonSet stays") {
		t.Errorf("Event %q does not name the DaemonSet and what stays", e.Note)
	}
	// The operator tells the refused configuration by this fingerprint.
	if got, want := e.Annotations[config.AnnotationFingerprint], config.Fingerprint(cm.Data); got != want {
		t.Errorf("the Event's fingerprint %q, want %q (the refused data's)", got, want)
	}
	time.Sleep(time.Second)
	ds, err := getDaemonSet(ns, dsName)
	if err != nil {
		t.Fatal(err)
	}
	if got := containerImages(ds); got != "a=reg.example.com/a:1" || ds.Generation != first.Generation {
		t.Errorf("the refused configuration changed the DaemonSet: %s, generation %d", got, ds.Generation)
	}
	if n := len(events(t, ns, ReasonInvalidConfiguration)); n != 1 {
		t.Errorf("%d InvalidConfiguration Events for one refused configuration, want 1", n)
	}
	if n := len(events(t, ns, ReasonConfigurationValid)); n != 0 {
		t.Errorf("%d ConfigurationValid Events while the configuration stays refused", n)
	}

	cm.Data[config.KeyNodeSelector] = "{}"
	if err := k8s.Update(ctx, cm); err != nil {
		t.Fatal(err)
	}
	waitForImages(t, ns, dsName, "b=reg.example.com/b:1")
	if n := run.writes.Matching("/daemonsets/"); n != 2 {
		t.Errorf("%d DaemonSet writes, want 2 (the first configuration and the fixed one; dry runs store nothing)", n)
	}
}
