package observe

import corev1 "k8s.io/api/core/v1"

// nodesOf stands in for the nodes, from the pods that run on them, all Ready.
func nodesOf(pods []corev1.Pod) []corev1.Node {
	seen := map[string]bool{}
	var nodes []corev1.Node
	for _, p := range pods {
		if p.Spec.NodeName == "" || seen[p.Spec.NodeName] {
			continue
		}
		seen[p.Spec.NodeName] = true
		n := corev1.Node{Status: corev1.NodeStatus{Conditions: []corev1.NodeCondition{{Type: corev1.NodeReady, Status: corev1.ConditionTrue}}}}
		n.Name = p.Spec.NodeName
		nodes = append(nodes, n)
	}
	return nodes
}
