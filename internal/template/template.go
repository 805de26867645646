// Package template processes OpenShift Templates (template.openshift.io/v1)
// the way `oc process` does, for machines without oc: parameters with their
// defaults, values given on the command line, required parameters, and
// ${NAME} (string) and ${{NAME}} (JSON value) substitution in every object.
// Generated values (generate: expression) are not supported and say so.
package template

import (
	"encoding/json"
	"fmt"
	"regexp"
	"sort"
	"strings"

	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"sigs.k8s.io/yaml"
)

// Parameter is one declared template parameter.
type Parameter struct {
	Name        string `json:"name"`
	Value       string `json:"value,omitempty"`
	Required    bool   `json:"required,omitempty"`
	Generate    string `json:"generate,omitempty"`
	Description string `json:"description,omitempty"`
}

// Template is the part of a Template that processing needs.
type Template struct {
	APIVersion string            `json:"apiVersion"`
	Kind       string            `json:"kind"`
	Parameters []Parameter       `json:"parameters"`
	Objects    []json.RawMessage `json:"objects"`
}

// Parse reads a Template from YAML or JSON.
func Parse(data []byte) (*Template, error) {
	var t Template
	if err := yaml.Unmarshal(data, &t); err != nil {
		return nil, err
	}
	if t.Kind != "Template" || !strings.HasPrefix(t.APIVersion, "template.openshift.io/") {
		return nil, fmt.Errorf("not an OpenShift Template: apiVersion %q, kind %q", t.APIVersion, t.Kind)
	}
	return &t, nil
}

var (
	stringRef = regexp.MustCompile(`\$\{([a-zA-Z0-9_]+)\}`)
	jsonRef   = regexp.MustCompile(`"\$\{\{([a-zA-Z0-9_]+)\}\}"`)
)

// Process returns the template's objects with parameters substituted.
// values override the declared defaults; naming an undeclared parameter, or
// leaving a required one empty, is an error, as with oc process.
func (t *Template) Process(values map[string]string) ([]unstructured.Unstructured, error) {
	params := map[string]string{}
	var problems []string
	for _, p := range t.Parameters {
		params[p.Name] = p.Value
	}
	var names []string
	for k := range values {
		names = append(names, k)
	}
	sort.Strings(names)
	for _, k := range names {
		if _, ok := params[k]; !ok {
			problems = append(problems, fmt.Sprintf("unknown parameter %q", k))
			continue
		}
		params[k] = values[k]
	}
	for _, p := range t.Parameters {
		if p.Generate != "" && params[p.Name] == "" {
			problems = append(problems, fmt.Sprintf("parameter %s: generated values are not supported; give a value", p.Name))
		}
		if p.Required && params[p.Name] == "" {
			problems = append(problems, fmt.Sprintf("parameter %s is required and has no value", p.Name))
		}
	}
	if len(problems) > 0 {
		return nil, fmt.Errorf("template: %s", strings.Join(problems, "; "))
	}

	var out []unstructured.Unstructured
	for i, raw := range t.Objects {
		js, err := yaml.YAMLToJSON(raw)
		if err != nil {
			return nil, fmt.Errorf("object %d: %w", i+1, err)
		}
		s := jsonRef.ReplaceAllStringFunc(string(js), func(m string) string {
			return params[jsonRef.FindStringSubmatch(m)[1]] // the value is JSON itself
		})
		var obj map[string]any
		if err := json.Unmarshal([]byte(s), &obj); err != nil {
			return nil, fmt.Errorf("object %d after ${{...}} substitution: %w", i+1, err)
		}
		substituted := substitute(obj, params)
		out = append(out, unstructured.Unstructured{Object: substituted.(map[string]any)})
	}
	return out, nil
}

func substitute(v any, params map[string]string) any {
	switch x := v.(type) {
	case string:
		return stringRef.ReplaceAllStringFunc(x, func(m string) string {
			name := stringRef.FindStringSubmatch(m)[1]
			if val, ok := params[name]; ok {
				return val
			}
			return m
		})
	case map[string]any:
		for k, e := range x {
			x[k] = substitute(e, params)
		}
		return x
	case []any:
		for i, e := range x {
			x[i] = substitute(e, params)
		}
		return x
	}
	return v
}

// List wraps processed objects in a v1 List, as oc process prints them.
func List(objs []unstructured.Unstructured) map[string]any {
	items := make([]any, len(objs))
	for i := range objs {
		items[i] = objs[i].Object
	}
	return map[string]any{"apiVersion": "v1", "kind": "List", "items": items}
}

// Render processes a Template given as YAML or JSON and returns the objects
// as a v1 List in YAML, as `oc process` prints them.
func Render(data []byte, values map[string]string) ([]byte, error) {
	t, err := Parse(data)
	if err != nil {
		return nil, err
	}
	objs, err := t.Process(values)
	if err != nil {
		return nil, err
	}
	return yaml.Marshal(List(objs))
}
