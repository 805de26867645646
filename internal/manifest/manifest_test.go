package manifest

import (
	"strings"
	"testing"
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
		{"data not strings", "apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x}\ndata: {IMAGES: [1, 2]}\n", "", "", "ConfigMap \"x\""},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			cm, err := ConfigMap([]byte(tc.doc), tc.pick)
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
