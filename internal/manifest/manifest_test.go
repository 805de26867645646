package manifest

import (
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

const puller = `apiVersion: v1
kind: ConfigMap
metadata:
  name: k8s-image-puller
data:
  IMAGES: "a=a:1"
`

func TestConfigMap(t *testing.T) {
	cases := []struct {
		name     string
		doc      string
		pick     string
		wantName string
		wantErr  string
	}{
		{"one document", puller, "", "k8s-image-puller", ""},
		{"json", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"IMAGES": "a=a:1"}}`, "", "j", ""},
		{"among other kinds", "apiVersion: v1\nkind: ServiceAccount\nmetadata: {name: sa}\n---\n" + puller + "---\n", "", "k8s-image-puller", ""},
		{"in a list", "apiVersion: v1\nkind: List\nitems:\n- apiVersion: v1\n  kind: ConfigMap\n  metadata: {name: listed}\n  data: {IMAGES: a=a:1}\n", "", "listed", ""},
		{"several, picked by name", puller + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n", "other", "other", ""},
		{"several, none picked", puller + "---\napiVersion: v1\nkind: ConfigMap\nmetadata: {name: other}\n", "", "", "several ConfigMaps"},
		{"none", "apiVersion: v1\nkind: Secret\nmetadata: {name: s}\n", "", "", "no ConfigMap"},
		{"wrong name", puller, "missing", "", `no ConfigMap named "missing"`},
		{"not yaml", "data: [unclosed", "", "", "document 1"},
		{"data not strings", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {IMAGES: [1, 2]}\n", "", "", "ConfigMap \"x\": data.IMAGES: value [1 2] is a list"},
		{"a number", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {IMAGES: a=a:1, CACHING_INTERVAL_HOURS: 5}\n", "", "", "data.CACHING_INTERVAL_HOURS: value 5 is a number: expected a string"},
		{"a boolean", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {IMAGES: a=a:1, X: yes, Y: true}\n", "", "", "data.X: value true is a boolean"},
		{"a duplicate data key", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata:\n  IMAGES: a=a:1\n  IMAGES: b=b:1\n", "", "", `"IMAGES" already set`},
		{"a duplicate top-level key", puller + "data: {}\n", "", "", `"data" already set`},
		{"a duplicate key in JSON", `{"apiVersion": "v1", "kind": "ConfigMap", "metadata": {"name": "j"}, "data": {"IMAGES": "a=a:1", "IMAGES": "b=b:1"}}`, "", "", "already set"},
		{"a ConfigMap of another apiVersion", strings.Replace(puller, "apiVersion: v1", "apiVersion: v2", 1), "", "", `apiVersion "v2": expected v1`},
		{"no kind", "apiVersion: v1\nmetadata: {name: x}\ndata: {IMAGES: a=a:1}\n", "", "", "without a kind"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cm, _, err := ConfigMap([]byte(tc.doc), tc.pick)
			if tc.wantErr != "" {
				if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
					t.Fatalf("err = %v, want one containing %q", err, tc.wantErr)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cm.Name != tc.wantName {
				t.Errorf("name = %q, want %q", cm.Name, tc.wantName)
			}
		})
	}
}

func TestTyped(t *testing.T) {
	u := func(apiVersion, kind string) *unstructured.Unstructured {
		return &unstructured.Unstructured{Object: map[string]any{
			"apiVersion": apiVersion, "kind": kind, "metadata": map[string]any{"name": "x"},
		}}
	}
	dep := u("apps/v1", "Deployment")
	dep.Object["spec"] = map[string]any{"replicas": int64(2)}
	obj, err := Typed(dep)
	if d, ok := obj.(*appsv1.Deployment); err != nil || !ok || d.Name != "x" || d.Spec.Replicas == nil || *d.Spec.Replicas != 2 {
		t.Errorf("Typed(Deployment) = %#v, %v; want the typed Deployment with its spec", obj, err)
	}
	if obj, err := Typed(u("rbac.authorization.k8s.io/v1", "Role")); err != nil {
		t.Errorf("Typed(Role): %v", err)
	} else if _, ok := obj.(*rbacv1.Role); !ok {
		t.Errorf("Typed(Role) = %T", obj)
	}
	if _, err := Typed(u("example.com/v1", "Widget")); err == nil || !strings.Contains(err.Error(), "Widget x") {
		t.Errorf("Typed(unknown kind) error %v; want one naming the kind and the object", err)
	}
	bad := u("apps/v1", "Deployment")
	bad.Object["spec"] = "not an object"
	if _, err := Typed(bad); err == nil {
		t.Error("Typed accepted a Deployment whose spec is a string")
	}
}

func TestConfigMapsNamesTheBadDocument(t *testing.T) {
	data := puller + "---\n" + puller + "---\n: not yaml: [\n"
	_, _, err := ConfigMaps([]byte(data))
	if err == nil || !strings.HasPrefix(err.Error(), "document 3: ") {
		t.Errorf("err %v, want one naming document 3", err)
	}
}

func TestConfigMapPicksOne(t *testing.T) {
	other := strings.Replace(puller, "name: k8s-image-puller", "name: other", 1)
	deployment := "apiVersion: apps/v1\nkind: Deployment\nmetadata:\n  name: d\n"
	cases := []struct {
		name, data, pick, want, err string
	}{
		{name: "the only one", data: puller, want: "k8s-image-puller"},
		{name: "by name among two", data: puller + "---\n" + other, pick: "other", want: "other"},
		{name: "none", data: deployment, err: "holds no ConfigMap"},
		{name: "no such name", data: puller, pick: "missing", err: `no ConfigMap named "missing"`},
		{name: "two, no name", data: puller + "---\n" + other, err: "several ConfigMaps (k8s-image-puller, other)"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cm, _, err := ConfigMap([]byte(tc.data), tc.pick)
			switch {
			case tc.err != "":
				if err == nil || !strings.Contains(err.Error(), tc.err) {
					t.Errorf("err %v, want %q", err, tc.err)
				}
			case err != nil || cm.Name != tc.want:
				t.Errorf("ConfigMap = %v, %v; want %s", cm, err, tc.want)
			}
		})
	}
}

func TestBinaryDataIsAWarning(t *testing.T) {
	cm, warnings, err := ConfigMap([]byte(puller+"binaryData: {KEY: AAEC}\n"), "")
	if err != nil || cm == nil {
		t.Fatal(err)
	}
	if len(warnings) != 1 || !strings.Contains(warnings[0], "binaryData (KEY) is ignored") {
		t.Errorf("warnings %q, want one naming binaryData and its key", warnings)
	}
	if _, warnings, _ := ConfigMap([]byte(puller), ""); len(warnings) != 0 {
		t.Errorf("warnings %q for a plain ConfigMap", warnings)
	}
}
