// Package predicates makes controller-runtime event filters from plain
// comparisons of an object's old and new state, so each controller states
// only what a change of interest is.
package predicates

import (
	"sigs.k8s.io/controller-runtime/pkg/client"
	"sigs.k8s.io/controller-runtime/pkg/event"
	"sigs.k8s.io/controller-runtime/pkg/predicate"
)

// UpdateChanged lets an update through when changed says the object of type
// T changed in a way that matters, and always when the objects are not of
// type T. Creations, deletions and generic events always pass.
func UpdateChanged[T client.Object](changed func(old, cur T) bool) predicate.Funcs {
	return predicate.Funcs{
		UpdateFunc: func(e event.UpdateEvent) bool {
			old, okOld := e.ObjectOld.(T)
			cur, okNew := e.ObjectNew.(T)
			if !okOld || !okNew {
				return true
			}
			return changed(old, cur)
		},
	}
}
