package template

import (
	"fmt"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"

	"github.com/kip-image-puller/kip/deploy"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
)

const sample = `apiVersion: template.openshift.io/v1
kind: Template
metadata: {name: t}
objects:
- apiVersion: v1
  kind: ConfigMap
  metadata:
    name: ${NAME}-config
  data:
    GREETING: hello ${WHO}, ${WHO}
    EMPTY: ${OPTIONAL}
    UNDECLARED: ${NOT_A_PARAM}
- apiVersion: apps/v1
  kind: Deployment
  metadata: {name: "${NAME}"}
  spec:
    replicas: "${{REPLICAS}}"
parameters:
- name: NAME
  required: true
- name: WHO
  value: world
- name: OPTIONAL
- name: REPLICAS
  value: "2"
`

func TestProcess(t *testing.T) {
	tmpl, err := Parse([]byte(sample))
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name    string
		values  map[string]string
		wantErr string
		check   func(t *testing.T, cm, deploy map[string]any)
	}{
		{
			name:   "defaults and a given value",
			values: map[string]string{"NAME": "kip"},
			check: func(t *testing.T, cm, deploy map[string]any) {
				data := cm["data"].(map[string]any)
				if cm["metadata"].(map[string]any)["name"] != "kip-config" || data["GREETING"] != "hello world, world" || data["EMPTY"] != "" {
					t.Errorf("ConfigMap %v", cm)
				}
				if data["UNDECLARED"] != "${NOT_A_PARAM}" {
					t.Errorf("an undeclared reference was replaced: %v", data["UNDECLARED"])
				}
				if r, ok := deploy["spec"].(map[string]any)["replicas"].(float64); !ok || r != 2 {
					t.Errorf("${{REPLICAS}} gave %#v, want the number 2", deploy["spec"].(map[string]any)["replicas"])
				}
			},
		},
		{
			name:   "overrides",
			values: map[string]string{"NAME": "x", "WHO": "admins", "REPLICAS": "3"},
			check: func(t *testing.T, cm, deploy map[string]any) {
				if cm["data"].(map[string]any)["GREETING"] != "hello admins, admins" || deploy["spec"].(map[string]any)["replicas"].(float64) != 3 {
					t.Errorf("overrides not applied: %v %v", cm, deploy)
				}
			},
		},
		{name: "required missing", values: nil, wantErr: "parameter NAME is required"},
		{name: "unknown parameter", values: map[string]string{"NAME": "x", "NAMESPCE": "y"}, wantErr: `unknown parameter "NAMESPCE"`},
		{name: "bad JSON value", values: map[string]string{"NAME": "x", "REPLICAS": "two"}, wantErr: "object 2"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			objs, err := tmpl.Process(tc.values)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if len(objs) != 2 {
				t.Fatalf("%d objects", len(objs))
			}
			tc.check(t, objs[0].Object, objs[1].Object)
		})
	}
}

func TestParseRejectsOtherKinds(t *testing.T) {
	if _, err := Parse([]byte("apiVersion: v1\nkind: ConfigMap\n")); err == nil {
		t.Error("a ConfigMap was taken for a Template")
	}
}

// processShipped processes deploy/openshift/FILE with its defaults.
func processShipped(t *testing.T, file string) []unstructured.Unstructured {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("..", "..", "deploy", "openshift", file))
	if err != nil {
		t.Fatal(err)
	}
	tmpl, err := Parse(data)
	if err != nil {
		t.Fatal(err)
	}
	objs, err := tmpl.Process(nil)
	if err != nil {
		t.Fatal(err)
	}
	return objs
}

// TestShippedTemplates processes the project's own templates with their
// defaults, as `oc process -f X` with no parameters does.
func TestShippedTemplates(t *testing.T) {
	want := map[string][]string{
		"serviceaccount.yaml": {"ServiceAccount", "Role", "RoleBinding", "ServiceAccount", "Role", "RoleBinding", "ClusterRole", "ClusterRoleBinding", "ClusterRole", "ClusterRoleBinding", "ClusterRole"},
		"configmap.yaml":      {"ConfigMap"},
		"app.yaml":            {"Deployment"},
		"agent-scc.yaml":      {"SecurityContextConstraints"},
	}
	for file, kinds := range want {
		t.Run(file, func(t *testing.T) {
			objs := processShipped(t, file)
			var got []string
			for _, o := range objs {
				got = append(got, o.GetKind())
				raw, _ := o.MarshalJSON()
				if strings.Contains(string(raw), "${") {
					t.Errorf("%s %s keeps an unsubstituted parameter: %s", o.GetKind(), o.GetName(), raw)
				}
			}
			if strings.Join(got, ",") != strings.Join(kinds, ",") {
				t.Errorf("kinds %v, want %v", got, kinds)
			}
		})
	}
}

// TestAppTemplateEnvironmentIsExplicit keeps the ConfigMap out of the
// controller's environment: it is read through the API.
func TestAppTemplateEnvironmentIsExplicit(t *testing.T) {
	var d appsv1.Deployment
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(processShipped(t, "app.yaml")[0].Object, &d); err != nil {
		t.Fatal(err)
	}
	c := d.Spec.Template.Spec.Containers[0]
	env, err := deploy.CheckControllerContainer(c)
	if err != nil {
		t.Error(err)
	}
	if env["CONFIGMAP_NAME"] != config.DefaultConfigMapName || env["DEPLOYMENT_NAME"] != d.Name {
		t.Errorf("env %v: the controller must be told its ConfigMap and its own Deployment %s", env, d.Name)
	}
}

// TestConfigMapTemplateMatchesTheContract keeps the template's parameter
// defaults equal to the documented defaults of the configuration contract,
// and the result valid.
func TestConfigMapTemplateMatchesTheContract(t *testing.T) {
	objs := processShipped(t, "configmap.yaml")
	cmData := map[string]string{}
	for k, v := range objs[0].Object["data"].(map[string]any) {
		cmData[k] = v.(string)
	}
	for _, key := range config.Keys {
		if _, ok := cmData[key]; !ok {
			t.Errorf("the template has no %s", key)
		}
		if def, ok := config.Defaults[key]; ok && cmData[key] != def {
			t.Errorf("%s defaults to %q in the template, %q in the contract", key, cmData[key], def)
		}
	}
	if _, warnings, err := config.Parse(cmData); err != nil || len(warnings) > 0 {
		t.Errorf("the template's ConfigMap: %v, warnings %v", err, warnings)
	}
}

// TestAgentSCCAllowsTheAgent: the SecurityContextConstraints shipped for
// agent mode admit the agents' pod as the DaemonSet builder makes it: its
// ServiceAccount in the namespace, each volume type it mounts, root with
// every capability dropped, a read-only root filesystem, no escalation.
func TestAgentSCCAllowsTheAgent(t *testing.T) {
	objs := processShipped(t, "agent-scc.yaml")
	scc := objs[0].Object
	cfg, _, err := config.Parse(map[string]string{config.KeyImages: "a=reg/a:1", config.KeyCachingMode: config.ModeAgent, config.KeyImagePullSecrets: "regcred"})
	if err != nil {
		t.Fatal(err)
	}
	pod := daemonset.Build(cfg, daemonset.Options{KIPImage: "k:1"}).Spec.Template.Spec
	users, _, _ := unstructured.NestedStringSlice(scc, "users")
	if want := "system:serviceaccount:" + cfg.Namespace + ":" + pod.ServiceAccountName; !slices.Contains(users, want) {
		t.Errorf("users %v, want %s", users, want)
	}
	volumes, _, _ := unstructured.NestedStringSlice(scc, "volumes")
	used := []string{"projected"} // the ServiceAccount token
	for _, v := range pod.Volumes {
		switch {
		case v.HostPath != nil:
			used = append(used, "hostPath")
		case v.Secret != nil:
			used = append(used, "secret")
		default:
			t.Errorf("volume %s of an unexpected type", v.Name)
		}
	}
	for _, u := range used {
		if !slices.Contains(volumes, u) {
			t.Errorf("the SCC does not allow %s volumes (it allows %v)", u, volumes)
		}
	}
	c := pod.Containers[0].SecurityContext
	uid, _, _ := unstructured.NestedInt64(scc, "runAsUser", "uid")
	if uid != *c.RunAsUser {
		t.Errorf("the SCC runs as %d, the agent as %d", uid, *c.RunAsUser)
	}
	drop, _, _ := unstructured.NestedStringSlice(scc, "requiredDropCapabilities")
	ro, _, _ := unstructured.NestedBool(scc, "readOnlyRootFilesystem")
	privileged, _, _ := unstructured.NestedBool(scc, "allowPrivilegedContainer")
	escalation, _, _ := unstructured.NestedBool(scc, "allowPrivilegeEscalation")
	if fmt.Sprint(drop) != "[ALL]" || !ro || privileged || escalation || !*c.ReadOnlyRootFilesystem || *c.AllowPrivilegeEscalation {
		t.Errorf("SCC drop %v, read-only %v, privileged %v, escalation %v; agent %+v", drop, ro, privileged, escalation, c)
	}
}
