package status

import (
	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/daemonset"

	corev1 "k8s.io/api/core/v1"
)

// AgentNode is what a node's agent says of its runtime.
type AgentNode struct {
	Runtime string `json:"runtime,omitempty"`
	// Pinning says why cached images are not pinned, and how the runtime
	// pins; empty when each one is.
	Pinning        string   `json:"pinning,omitempty"`
	SecretProblems []string `json:"secretProblems,omitempty"`
	Heals          int      `json:"heals,omitempty"`
	// Disk is the node's image filesystem as the agent measured it, and
	// the bytes the configured images take and are pinned.
	Disk *report.Disk `json:"disk,omitempty"`
}

// ReasonNewList is why an image of a list the agent has not taken up yet
// is Pending; it does within a second or two, without a restart.
const ReasonNewList = "NewList"

// agentFacts is what an agent's Pod says: its report, when it wrote one.
type agentFacts struct {
	report  *report.Node
	invalid error // an annotation that does not decode
}

func agentFactsOf(p *corev1.Pod) agentFacts {
	if compact, ok := p.Annotations[AnnotationAgentReport]; ok {
		if r, ok := parseCompactReport(compact); ok {
			return agentFacts{report: &r}
		}
	}
	value, ok := p.Annotations[report.Annotation]
	if !ok {
		return agentFacts{}
	}
	r, err := report.Decode(value)
	if err != nil {
		return agentFacts{invalid: err}
	}
	return agentFacts{report: &r}
}

func (a agentFacts) node() *AgentNode {
	if a.report == nil {
		return nil
	}
	return &AgentNode{Runtime: a.report.Runtime, Pinning: a.report.Pinning, SecretProblems: a.report.SecretProblems, Heals: a.report.Heals, Disk: a.report.Disk}
}

// agentCell reads one image's state from the agent's report, or from its
// container when the agent cannot run.
func agentCell(f podFacts, a agentFacts, img Image, prints refPrints) Cell {
	if c, ok := f.containers[daemonset.AgentContainer]; ok {
		if cell, failed := containerFailure(c, "Agent:"); failed {
			return cell
		}
	}
	if a.invalid != nil {
		return Cell{State: Pending, Reason: "UnreadableReport", Message: a.invalid.Error()}
	}
	if a.report == nil {
		return Cell{State: Pulling} // the agent is starting
	}
	for _, r := range a.report.Images {
		if r.Name != img.Name {
			continue
		}
		if !prints.same(r.Image, img.Ref) {
			break // the agent has not taken up the new list yet
		}
		if r.State == report.StateCached {
			// Reason OverBudget: held, but not pinned (PIN_BUDGET).
			return Cell{State: Cached, Digest: r.Digest, Since: r.Since, PullSeconds: r.PullSeconds, Reason: r.Reason, Message: r.Message}
		}
		if r.State == report.StateFailed {
			return Cell{State: Failed, Reason: r.Reason, Message: r.Message}
		}
		return Cell{State: Pulling}
	}
	return Cell{State: Pending, Reason: ReasonNewList}
}
