package status

// ReasonFailedCreate is the DaemonSet controller's Event reason when it
// cannot create a pod: admission refused it (Pod Security, a quota, a
// policy), or the API server did.
const ReasonFailedCreate = "FailedCreate"

// MarkRefused names why the selected nodes without a pod have none: the
// DaemonSet controller could not create it, as message (its latest
// FailedCreate Event) says. Their images become Failed with that reason,
// and count as failing where the node is Ready and schedulable.
func (r *Report) MarkRefused(message string) {
	for _, n := range r.Nodes {
		if !n.Selected || n.Pod != "" {
			continue
		}
		counts := n.Ready && !n.Cordoned
		for _, img := range r.Images {
			c := Cell{State: Failed, Reason: ReasonFailedCreate, Message: message}
			n.Images[img.Name] = c
			if counts {
				r.Summary.Failing = append(r.Summary.Failing, Failure{Node: n.Name, Image: img.Name, Reason: c.Reason, Message: c.Message})
			}
		}
	}
}

// MissingPods tells whether a selected node has no pod.
func (r Report) MissingPods() bool {
	for _, n := range r.Nodes {
		if n.Selected && n.Pod == "" {
			return true
		}
	}
	return false
}
