// Package manifest reads puller ConfigMaps from YAML or JSON manifests, the
// way users keep them in files: one document, several documents separated by
// "---", or a v1 List. It is pure: the caller reads the bytes.
package manifest

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
	"sigs.k8s.io/yaml"
)

// ConfigMaps returns every ConfigMap in the manifest, in order, and
// warnings about what in them the puller ignores (binaryData). A key that
// appears twice in a document, a ConfigMap whose apiVersion is not v1, an
// object without a kind and a data value that is not a string are errors,
// each naming the document and the key: the API server or kubectl would
// refuse them, or keep one of two values silently.
func ConfigMaps(data []byte) ([]corev1.ConfigMap, []string, error) {
	reader := utilyaml.NewYAMLReader(bufio.NewReader(bytes.NewReader(data)))
	var out []corev1.ConfigMap
	var warnings []string
	for doc := 1; ; doc++ {
		raw, err := reader.Read()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", doc, err)
		}
		js, err := yaml.YAMLToJSONStrict(raw)
		if err != nil {
			return nil, nil, fmt.Errorf("document %d: %w", doc, err)
		}
		var u unstructured.Unstructured
		if err := json.Unmarshal(js, &u.Object); err != nil {
			return nil, nil, fmt.Errorf("document %d: expected an object: %w", doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		items := []unstructured.Unstructured{u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", doc, err)
			}
			items = list.Items
		}
		for _, item := range items {
			cm, warning, err := configMap(item)
			if err != nil {
				return nil, nil, fmt.Errorf("document %d: %w", doc, err)
			}
			if warning != "" {
				warnings = append(warnings, fmt.Sprintf("document %d: %s", doc, warning))
			}
			if cm != nil {
				out = append(out, *cm)
			}
		}
	}
	return out, warnings, nil
}

// configMap converts item when it is a ConfigMap; other kinds give nil.
func configMap(item unstructured.Unstructured) (*corev1.ConfigMap, string, error) {
	switch kind := item.GetKind(); {
	case kind == "":
		return nil, "", fmt.Errorf("an object without a kind (apiVersion %q, name %q)", item.GetAPIVersion(), item.GetName())
	case kind != "ConfigMap":
		return nil, "", nil
	case item.GetAPIVersion() != "v1":
		return nil, "", fmt.Errorf("ConfigMap %q: apiVersion %q: expected v1", item.GetName(), item.GetAPIVersion())
	}
	data, _ := item.Object["data"].(map[string]any)
	keys := slices.Sorted(maps.Keys(data))
	for _, k := range keys {
		if _, ok := data[k].(string); !ok {
			return nil, "", fmt.Errorf("ConfigMap %q: data.%s: value %v is a %s: expected a string (quote it)", item.GetName(), k, data[k], jsonType(data[k]))
		}
	}
	var cm corev1.ConfigMap
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &cm); err != nil {
		return nil, "", fmt.Errorf("ConfigMap %q: %w", item.GetName(), err)
	}
	var warning string
	if len(cm.BinaryData) > 0 {
		warning = fmt.Sprintf("ConfigMap %q: binaryData (%s) is ignored: the puller reads data only",
			cm.Name, strings.Join(slices.Sorted(maps.Keys(cm.BinaryData)), ", "))
	}
	return &cm, warning, nil
}

func jsonType(v any) string {
	switch v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case float64, int64:
		return "number"
	case []any:
		return "list"
	case map[string]any:
		return "map"
	}
	return fmt.Sprintf("%T", v)
}

// ConfigMap returns the one ConfigMap of the manifest, or the one called
// name when name is not empty, with the manifest's warnings.
func ConfigMap(data []byte, name string) (*corev1.ConfigMap, []string, error) {
	cms, warnings, err := ConfigMaps(data)
	if err != nil {
		return nil, nil, err
	}
	var names []string
	for i := range cms {
		if name == "" || cms[i].Name == name {
			names = append(names, cms[i].Name)
		}
	}
	if len(cms) == 0 {
		return nil, nil, errors.New("the manifest holds no ConfigMap")
	}
	if len(names) == 0 {
		return nil, nil, fmt.Errorf("the manifest holds no ConfigMap named %q", name)
	}
	if len(names) > 1 {
		return nil, nil, fmt.Errorf("the manifest holds several ConfigMaps (%s); choose one by name", strings.Join(names, ", "))
	}
	for i := range cms {
		if name == "" || cms[i].Name == name {
			return &cms[i], warnings, nil
		}
	}
	return nil, nil, nil // unreachable
}

// Typed decodes an object of a built-in kind (ServiceAccount, Role,
// Deployment, ...) into its typed form, chosen by its apiVersion and kind.
// Callers then pick the kinds they want with a type switch.
func Typed(u *unstructured.Unstructured) (runtime.Object, error) {
	obj, err := clientgoscheme.Scheme.New(u.GroupVersionKind())
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(u.Object, obj); err != nil {
		return nil, fmt.Errorf("%s %s: %w", u.GetKind(), u.GetName(), err)
	}
	return obj, nil
}
