//go:build integration

package deploy_test

import (
	"context"
	"os"
	"strings"
	"testing"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/internal/dev/testenv"
	"github.com/kip-image-puller/kip/internal/nodewarm"
)

var env *testenv.Env

func TestMain(m *testing.M) {
	crd, err := testenv.ReadinessRuleCRD()
	if err != nil {
		os.Exit(testenv.Run(m, &env, func() error { return err }))
	}
	os.Exit(testenv.Run(m, &env, func() error { return nil }, crd))
}

// TestNodeReadinessRuleIsAccepted creates the shipped NodeReadinessRule on
// an API server with the NodeReadinessRule CRD, whose schema and CEL rules
// judge it; a rule with a taint outside readiness.k8s.io/ is refused, so
// the rules did run. The rule waits for kip's condition, bootstrap-only.
func TestNodeReadinessRuleIsAccepted(t *testing.T) {
	data, err := os.ReadFile(testenv.RepoFile("deploy/node-readiness/kip-images-cached.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	rule := &unstructured.Unstructured{}
	if err := yaml.Unmarshal(data, &rule.Object); err != nil {
		t.Fatal(err)
	}
	conditions, _, _ := unstructured.NestedSlice(rule.Object, "spec", "conditions")
	mode, _, _ := unstructured.NestedString(rule.Object, "spec", "enforcementMode")
	if len(conditions) != 1 || conditions[0].(map[string]any)["type"] != string(nodewarm.ConditionType) ||
		conditions[0].(map[string]any)["requiredStatus"] != "True" || mode != "bootstrap-only" {
		t.Errorf("the rule waits for %v, %s; want %s=True, bootstrap-only", conditions, mode, nodewarm.ConditionType)
	}
	created := rule.DeepCopy()
	if err := env.Client.Create(t.Context(), created); err != nil {
		t.Fatalf("the shipped rule is refused: %v", err)
	}
	// Cluster-scoped: gone before the next run on the same API server.
	t.Cleanup(func() { _ = env.Client.Delete(context.Background(), created) })

	wrong := rule.DeepCopy()
	wrong.SetName("kip-wrong-taint")
	if err := unstructured.SetNestedField(wrong.Object, "kip.dev/warming", "spec", "taint", "key"); err != nil {
		t.Fatal(err)
	}
	err = env.Client.Create(t.Context(), wrong)
	if err == nil || !strings.Contains(err.Error(), "readiness.k8s.io") {
		t.Errorf("a rule with taint kip.dev/warming: %v; want it refused by the CRD's rules", err)
	}
}
