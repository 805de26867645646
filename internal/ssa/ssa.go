// Package ssa holds the server-side apply rules shared by the puller and the
// operator: how a typed object is sent, and how to tell from the live
// object's managed fields whether an apply would change anything, so that an
// idle controller sends nothing. It is pure.
package ssa

import (
	"encoding/json"
	"fmt"
	"reflect"

	"k8s.io/apimachinery/pkg/api/equality"
)

// JSON renders a typed object the way it is applied: only the fields set,
// without the status and the nulls (creation timestamps) a typed object
// always serializes.
func JSON(obj any) ([]byte, error) {
	raw, err := json.Marshal(obj)
	if err != nil {
		return nil, err
	}
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		return nil, err
	}
	delete(m, "status")
	dropNulls(m)
	return json.Marshal(m)
}

// dropNulls removes null fields at every depth.
func dropNulls(v any) {
	switch t := v.(type) {
	case map[string]any:
		for k, val := range t {
			if val == nil {
				delete(t, k)
				continue
			}
			dropNulls(val)
		}
	case []any:
		for _, val := range t {
			dropNulls(val)
		}
	}
}

// UpToDate tells whether owned, the fields a manager owns on the live object
// (as client-go's Extract* functions return them), still hold desired's
// values. A hand edit of an owned field moves its ownership to the editor,
// so it shows up here as a difference; fields others added do not count.
// Both sides are compared as typed objects, so quantities compare by value
// ("0.05" is "50m").
func UpToDate[T any](owned any, desired *T) (bool, error) {
	ownedJSON, err := json.Marshal(owned)
	if err != nil {
		return false, err
	}
	wantJSON, err := JSON(desired)
	if err != nil {
		return false, err
	}
	have, want := new(T), new(T)
	if err := json.Unmarshal(ownedJSON, have); err != nil {
		return false, fmt.Errorf("decode owned fields as %s: %w", reflect.TypeFor[T](), err)
	}
	if err := json.Unmarshal(wantJSON, want); err != nil {
		return false, err
	}
	return equality.Semantic.DeepEqual(have, want), nil
}

// Configuration decodes a typed object into its apply configuration type A.
func Configuration[A any](obj any) (*A, error) {
	raw, err := JSON(obj)
	if err != nil {
		return nil, err
	}
	ac := new(A)
	if err := json.Unmarshal(raw, ac); err != nil {
		return nil, fmt.Errorf("decode %s: %w", reflect.TypeFor[A](), err)
	}
	return ac, nil
}
