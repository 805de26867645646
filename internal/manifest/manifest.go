// Package manifest reads puller ConfigMaps from YAML or JSON manifests, the
// way users keep them in files: one document, several documents separated by
// "---", or a v1 List. It is pure: the caller reads the bytes.
package manifest

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"
	clientgoscheme "k8s.io/client-go/kubernetes/scheme"
)

// ConfigMaps returns every ConfigMap in the manifest, in order.
func ConfigMaps(data []byte) ([]corev1.ConfigMap, error) {
	dec := utilyaml.NewYAMLOrJSONDecoder(bytes.NewReader(data), 4096)
	var out []corev1.ConfigMap
	for doc := 1; ; doc++ {
		var u unstructured.Unstructured
		err := dec.Decode(&u.Object)
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", doc, err)
		}
		if len(u.Object) == 0 {
			continue
		}
		items := []unstructured.Unstructured{u}
		if u.IsList() {
			list, err := u.ToList()
			if err != nil {
				return nil, fmt.Errorf("document %d: %w", doc, err)
			}
			items = list.Items
		}
		for _, item := range items {
			if item.GetKind() != "ConfigMap" {
				continue
			}
			var cm corev1.ConfigMap
			if err := runtime.DefaultUnstructuredConverter.FromUnstructured(item.Object, &cm); err != nil {
				return nil, fmt.Errorf("document %d: ConfigMap %q: %w", doc, item.GetName(), err)
			}
			out = append(out, cm)
		}
	}
	return out, nil
}

// ConfigMap returns the one ConfigMap of the manifest, or the one called
// name when name is not empty.
func ConfigMap(data []byte, name string) (*corev1.ConfigMap, error) {
	cms, err := ConfigMaps(data)
	if err != nil {
		return nil, err
	}
	var names []string
	for i := range cms {
		if name == "" || cms[i].Name == name {
			names = append(names, cms[i].Name)
		}
	}
	if len(cms) == 0 {
		return nil, errors.New("the manifest holds no ConfigMap")
	}
	if len(names) == 0 {
		return nil, fmt.Errorf("the manifest holds no ConfigMap named %q", name)
	}
	if len(names) > 1 {
		return nil, fmt.Errorf("the manifest holds several ConfigMaps (%s); choose one by name", strings.Join(names, ", "))
	}
	for i := range cms {
		if name == "" || cms[i].Name == name {
			return &cms[i], nil
		}
	}
	return nil, nil // unreachable
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
