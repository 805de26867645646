// Package deploy holds the install artifacts. The OpenShift templates are
// embedded so that the operator builds the puller's objects from the very
// files admins apply by hand: one source for its RBAC and Deployment.
package deploy

import _ "embed"

// ServiceAccountTemplate is openshift/serviceaccount.yaml.
//
//go:embed openshift/serviceaccount.yaml
var ServiceAccountTemplate []byte

// AppTemplate is openshift/app.yaml.
//
//go:embed openshift/app.yaml
var AppTemplate []byte

// PullerClusterRole is the ClusterRole the operator binds, in each
// KubernetesImagePuller's namespace, to that puller's ServiceAccount
// (operator/rbac/puller_role.yaml).
const PullerClusterRole = "kip-image-puller"

// AgentClusterRole is the ClusterRole the operator binds, in agent mode's
// namespaces, to the agents' ServiceAccount (operator/rbac/agent_role.yaml):
// each agent reports on its own Pod.
const AgentClusterRole = "kip-agent"

// NodeConditionClusterRole and WarmNodeTaintClusterRole are the
// ClusterRoles the operator binds, cluster-wide, to a puller whose resource
// sets nodeCondition or warmNodeTaint (operator/rbac/node_roles.yaml).
const (
	NodeConditionClusterRole = "kip-node-condition"
	WarmNodeTaintClusterRole = "kip-warm-node-taint"
)

// PullSecretDir is where the operator mounts the pull secrets a resource
// names into the puller's pod, one directory per Secret.
const PullSecretDir = "/var/run/secrets/kip/pull-secrets" //nolint:gosec // a directory, not a credential

// Policies is policy/policies.yaml: kip's ValidatingAdmissionPolicies and
// their bindings (kip-namespace-grants, kip-agent-token, kip-node-writes),
// shipped with every install path.
//
//go:embed policy/policies.yaml
var Policies []byte
