// Package chart tests the Helm chart with the Helm SDK: lint, and what it
// renders against the configuration contract and the OpenShift templates.
package chart

import (
	"bytes"
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"sort"
	"strings"
	"testing"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
	"helm.sh/helm/v3/pkg/chartutil"
	"helm.sh/helm/v3/pkg/engine"
	"helm.sh/helm/v3/pkg/lint"
	"helm.sh/helm/v3/pkg/lint/support"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	psapi "k8s.io/pod-security-admission/api"
	"k8s.io/pod-security-admission/policy"
	"sigs.k8s.io/yaml"

	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/template"
)

var chartDir = filepath.Join("..", "..", "deploy", "helm", "kubernetes-image-puller")

func load(t *testing.T) *chart.Chart {
	t.Helper()
	c, err := loader.Load(chartDir)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// render returns the chart's objects by kind, for the given values.
func render(t *testing.T, values map[string]any) map[string][]byte {
	t.Helper()
	return renderOn(t, values, nil)
}

// renderOn renders for a cluster serving the extra API versions too.
func renderOn(t *testing.T, values map[string]any, apis []string) map[string][]byte {
	t.Helper()
	c := load(t)
	caps := chartutil.DefaultCapabilities.Copy()
	caps.APIVersions = append(caps.APIVersions, apis...)
	vals, err := chartutil.ToRenderValues(c, values, chartutil.ReleaseOptions{Name: "kip", Namespace: "tools", IsInstall: true}, caps)
	if err != nil {
		t.Fatal(err)
	}
	files, err := engine.Render(c, vals)
	if err != nil {
		t.Fatal(err)
	}
	byKind := map[string][]byte{}
	names := make([]string, 0, len(files))
	for n := range files {
		names = append(names, n)
	}
	sort.Strings(names)
	for _, n := range names {
		for _, doc := range strings.Split(files[n], "\n---\n") {
			var meta struct {
				Kind     string
				Metadata struct{ Name string }
			}
			if err := yaml.Unmarshal([]byte(doc), &meta); err != nil {
				t.Fatalf("%s: %v", n, err)
			}
			if meta.Kind != "" {
				byKind[meta.Kind] = []byte(doc)
				byKind[meta.Kind+"/"+meta.Metadata.Name] = []byte(doc)
			}
		}
	}
	return byKind
}

func TestLint(t *testing.T) {
	linter := lint.All(chartDir, nil, "tools", true)
	for _, m := range linter.Messages {
		if m.Severity >= support.WarningSev {
			t.Errorf("helm lint: %s", m)
		}
	}
}

func TestRenderDefaults(t *testing.T) {
	objs := render(t, nil)
	for _, kind := range []string{"ServiceAccount", "Role", "RoleBinding", "ConfigMap", "Deployment"} {
		if objs[kind] == nil {
			t.Errorf("no %s rendered", kind)
		}
	}
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(objs["ConfigMap"], &cm); err != nil {
		t.Fatal(err)
	}
	for _, key := range config.Keys {
		if _, ok := cm.Data[key]; !ok {
			t.Errorf("the ConfigMap has no %s", key)
		}
		if def, ok := config.Defaults[key]; ok && key != config.KeyNamespace && cm.Data[key] != def {
			t.Errorf("%s defaults to %q in the chart, %q in the contract", key, cm.Data[key], def)
		}
	}
	if cm.Data[config.KeyNamespace] != "tools" {
		t.Errorf("NAMESPACE %q, want the release namespace", cm.Data[config.KeyNamespace])
	}
	if _, warnings, err := config.Parse(cm.Data); err != nil || len(warnings) > 0 {
		t.Errorf("the chart's ConfigMap: %v, warnings %v", err, warnings)
	}

	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(objs["Deployment"], &d); err != nil {
		t.Fatal(err)
	}
	evaluator, err := policy.NewEvaluator(policy.DefaultChecks(), nil)
	if err != nil {
		t.Fatal(err)
	}
	for _, r := range evaluator.EvaluatePod(psapi.LevelVersion{Level: psapi.LevelRestricted, Version: psapi.LatestVersion()}, &d.Spec.Template.ObjectMeta, &d.Spec.Template.Spec) {
		if !r.Allowed {
			t.Errorf("restricted policy: %s: %s", r.ForbiddenReason, r.ForbiddenDetail)
		}
	}
	if got := d.Spec.Template.Spec.Containers[0].Image; got != "ghcr.io/kip-image-puller/kip:latest" {
		t.Errorf("image %q", got)
	}
}

func TestRenderValuesInEitherForm(t *testing.T) {
	objs := render(t, map[string]any{
		"deploymentName": "puller",
		"image":          map[string]any{"repository": "reg.example.com/kip", "tag": "v1"},
		"configMap": map[string]any{
			"name":                 "my-config",
			"images":               "a=reg.example.com/a:1",
			"nodeSelector":         map[string]any{"kubernetes.io/os": "linux"},
			"tolerations":          `[{"key": "dedicated", "operator": "Exists"}]`,
			"cachingIntervalHours": 5,
		},
	})
	var cm corev1.ConfigMap
	if err := yaml.UnmarshalStrict(objs["ConfigMap"], &cm); err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		"NODE_SELECTOR":          `{"kubernetes.io/os":"linux"}`,
		"TOLERATIONS":            `[{"key": "dedicated", "operator": "Exists"}]`,
		"CACHING_INTERVAL_HOURS": "5",
		"DEPLOYMENT_NAME":        "puller",
		"IMAGES":                 "a=reg.example.com/a:1",
	}
	for k, v := range want {
		if cm.Data[k] != v {
			t.Errorf("%s = %q, want %q", k, cm.Data[k], v)
		}
	}
	if cm.Name != "my-config" {
		t.Errorf("ConfigMap name %q", cm.Name)
	}
	if _, _, err := config.Parse(cm.Data); err != nil {
		t.Error(err)
	}
	var d appsv1.Deployment
	if err := yaml.UnmarshalStrict(objs["Deployment"], &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env, err := deploy.CheckControllerContainer(c)
	if err != nil {
		t.Error(err)
	}
	if d.Name != "puller" || c.Image != "reg.example.com/kip:v1" || env["CONFIGMAP_NAME"] != "my-config" || env["DEPLOYMENT_NAME"] != "puller" {
		t.Errorf("Deployment %s: image %s, env %v", d.Name, c.Image, env)
	}
}

// TestRolesMatchTheOpenShiftTemplate keeps the two install paths granting
// the same permissions.
func TestRolesMatchTheOpenShiftTemplate(t *testing.T) {
	rendered := render(t, nil)
	objs := openShiftTemplate(t, "serviceaccount.yaml", nil)
	// Cluster-wide names carry the service account and namespace; compare
	// each role by kind and what its name ends with.
	suffix := func(name string) string {
		for _, p := range []string{"-nodes", "-metrics-auth", "-metrics-reader", "kip-agent"} {
			if strings.HasSuffix(name, p) {
				return p
			}
		}
		return ""
	}
	chartRoles := map[string][]byte{}
	for key, doc := range rendered {
		if kind, name, ok := strings.Cut(key, "/"); ok && (kind == "Role" || kind == "ClusterRole") {
			chartRoles[kind+suffix(name)] = doc
		}
	}
	compared := 0
	for _, o := range objs {
		if o.GetKind() != "Role" && o.GetKind() != "ClusterRole" {
			continue
		}
		key := o.GetKind() + suffix(o.GetName())
		var chartRole, templateRole rbacv1.ClusterRole // Role and ClusterRole share the rules field
		if err := yaml.Unmarshal(chartRoles[key], &chartRole); err != nil {
			t.Fatal(err)
		}
		raw, _ := o.MarshalJSON()
		if err := yaml.Unmarshal(raw, &templateRole); err != nil {
			t.Fatal(err)
		}
		if len(chartRole.Rules) == 0 || !reflect.DeepEqual(chartRole.Rules, templateRole.Rules) {
			t.Errorf("%s %s: chart rules %v differ from the template's %v", o.GetKind(), o.GetName(), chartRole.Rules, templateRole.Rules)
		}
		compared++
	}
	if compared != len(chartRoles) || compared < 5 {
		t.Errorf("compared %d roles of the template; the chart has %d", compared, len(chartRoles))
	}
}

// TestAgentSCCOnOpenShiftOnly: the chart renders the agents'
// SecurityContextConstraints where the cluster serves that API and agent
// mode is chosen, the same as deploy/openshift/agent-scc.yaml grants.
func TestAgentSCCOnOpenShiftOnly(t *testing.T) {
	openshift := []string{"security.openshift.io/v1", "security.openshift.io/v1/SecurityContextConstraints"}
	agent := map[string]any{"configMap": map[string]any{"cachingMode": "agent"}}
	if objs := renderOn(t, agent, nil); objs["SecurityContextConstraints"] != nil {
		t.Error("an SCC rendered for a cluster without the API")
	}
	if objs := renderOn(t, nil, openshift); objs["SecurityContextConstraints"] != nil {
		t.Error("an SCC rendered in daemonset mode")
	}
	doc := renderOn(t, agent, openshift)["SecurityContextConstraints"]
	if doc == nil {
		t.Fatal("no SCC for agent mode on OpenShift")
	}
	var chartSCC map[string]any
	if err := yaml.Unmarshal(doc, &chartSCC); err != nil {
		t.Fatal(err)
	}
	want := openShiftTemplate(t, "agent-scc.yaml", map[string]string{"NAMESPACE": "tools"})[0].Object
	delete(want, "metadata")
	delete(chartSCC, "metadata")
	if !reflect.DeepEqual(normalize(t, chartSCC), normalize(t, want)) {
		t.Errorf("the chart's SCC %v differs from the template's %v", chartSCC, want)
	}
}

// openShiftTemplate processes deploy/openshift/FILE as oc process does.
func openShiftTemplate(t *testing.T, file string, params map[string]string) []unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "openshift", file))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := template.Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := tmpl.Process(params)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// normalize round-trips through JSON, so that numbers compare alike.
func normalize(t *testing.T, v map[string]any) map[string]any {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var out map[string]any
	if err := json.Unmarshal(b, &out); err != nil {
		t.Fatal(err)
	}
	return out
}

// TestNewNodesRBACOnlyWhenAsked: the chart grants nodes/status patch only
// with configMap.nodeCondition, and nodes patch only with
// configMap.warmNodeTaint, each as the OpenShift template of that option
// does; by default the puller may not write nodes at all.
func TestNewNodesRBACOnlyWhenAsked(t *testing.T) {
	writes := func(objs map[string][]byte) map[string]bool {
		out := map[string]bool{}
		for key, doc := range objs {
			if kind, _, ok := strings.Cut(key, "/"); !ok || kind != "ClusterRole" {
				continue
			}
			var role rbacv1.ClusterRole
			if err := yaml.Unmarshal(doc, &role); err != nil {
				t.Fatal(err)
			}
			for _, r := range role.Rules {
				for _, res := range r.Resources {
					if strings.HasPrefix(res, "nodes") && !reflect.DeepEqual(r.Verbs, []string{"get", "list", "watch"}) {
						out[res+" "+strings.Join(r.Verbs, ",")] = true
					}
				}
			}
		}
		return out
	}
	condition := map[string]any{"nodeCondition": true}
	taint := map[string]any{"nodeCondition": true, "warmNodeTaint": "kip.dev/warming"}
	for _, tc := range []struct {
		name   string
		values map[string]any
		want   []string
	}{
		{"default", nil, nil},
		{"nodeCondition", condition, []string{"nodes/status patch"}},
		{"warmNodeTaint", taint, []string{"nodes patch", "nodes/status patch"}},
	} {
		var values map[string]any
		if tc.values != nil {
			values = map[string]any{"configMap": tc.values}
		}
		got := writes(render(t, values))
		var keys []string
		for k := range got {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		if !reflect.DeepEqual(keys, tc.want) && (len(keys) != 0 || len(tc.want) != 0) {
			t.Errorf("%s: the puller may %v, want %v", tc.name, keys, tc.want)
		}
	}
	for file, resource := range map[string]string{"node-condition-rbac.yaml": "nodes/status", "warm-node-taint-rbac.yaml": "nodes"} {
		objs := openShiftTemplate(t, file, map[string]string{"NAMESPACE": "tools"})
		var role rbacv1.ClusterRole
		raw, _ := objs[0].MarshalJSON()
		if err := yaml.Unmarshal(raw, &role); err != nil {
			t.Fatal(err)
		}
		// The write, then the marker that puts it under kip-node-writes.
		marker := rbacv1.PolicyRule{APIGroups: []string{"kip.dev"}, Resources: []string{"nodewriters"}, Verbs: []string{"write"}}
		if len(role.Rules) != 2 || !reflect.DeepEqual(role.Rules[0].Resources, []string{resource}) || !reflect.DeepEqual(role.Rules[0].Verbs, []string{"patch"}) ||
			!reflect.DeepEqual(role.Rules[1], marker) || objs[1].GetKind() != "ClusterRoleBinding" {
			t.Errorf("%s: %+v, then %s", file, role.Rules, objs[1].GetKind())
		}
	}
}

// TestShipsThePolicies: the chart, the operator's manifests and
// deploy/policy hold the same admission policies; the chart renders them
// unless told another install did.
func TestShipsThePolicies(t *testing.T) {
	want, err := os.ReadFile(filepath.Join("..", "..", "deploy", "policy", "policies.yaml"))
	if err != nil {
		t.Fatal(err)
	}
	for _, copy := range []string{filepath.Join(chartDir, "files", "policies.yaml"), filepath.Join("..", "..", "deploy", "operator", "policy", "policies.yaml")} {
		got, err := os.ReadFile(copy)
		if err != nil || !bytes.Equal(got, want) {
			t.Errorf("%s differs from deploy/policy/policies.yaml (%v): copy it again", copy, err)
		}
	}
	for _, name := range []string{"kip-agent-token", "kip-namespace-grants"} {
		objs := render(t, nil)
		if objs["ValidatingAdmissionPolicy/"+name] == nil || objs["ValidatingAdmissionPolicyBinding/"+name] == nil {
			t.Errorf("the chart renders no policy %s and its binding", name)
		}
		if objs := render(t, map[string]any{"admissionPolicies": false}); objs["ValidatingAdmissionPolicy/"+name] != nil {
			t.Errorf("admissionPolicies=false still renders %s", name)
		}
	}
}
