// Package labels holds the label keys and values by which kip recognises
// what it manages: the Kubernetes recommended app.kubernetes.io labels, and
// the managed-by value of each of kip's two managers (the puller controller
// and the operator), and the operator's field manager. Builders, caches,
// selectors and appliers all take them from here.
package labels

// The recommended labels (app.kubernetes.io/*) kip sets.
const (
	Name      = "app.kubernetes.io/name"
	Instance  = "app.kubernetes.io/instance"
	Component = "app.kubernetes.io/component"
	PartOf    = "app.kubernetes.io/part-of"
	ManagedBy = "app.kubernetes.io/managed-by"
)

// Values of the managed-by label.
const (
	// ManagedByPuller marks the DaemonSet the puller controller applies, and
	// its pods.
	ManagedByPuller = "kip"
	// ManagedByOperator marks the objects the operator applies for a
	// KubernetesImagePuller (its instance label names the resource).
	ManagedByOperator = "kip-operator"
)

// OperatorFieldOwner is the operator's server-side apply field manager, for
// both of its controllers: named like its managed-by value.
const OperatorFieldOwner = ManagedByOperator
