package agent

import (
	"encoding/json"
	"fmt"
	"strings"
)

// AnnotationReport on the agent's own Pod carries its NodeReport as JSON:
// the controller reads it with the Pods it already watches, so reporting
// needs no cluster-wide write.
const AnnotationReport = "kip.dev/agent-report"

// NodeReport is what the agent says of its node.
type NodeReport struct {
	// Runtime is the runtime's name and version, as it said them.
	Runtime string `json:"runtime"`
	// Pinning is empty when every cached image is pinned; otherwise it says
	// why not and which runtime setting pins.
	Pinning string `json:"pinning,omitempty"`
	// SecretProblems names each pull secret that could not be used.
	SecretProblems []string `json:"secretProblems,omitempty"`
	// Heals counts the images pulled again after they disappeared.
	Heals  int           `json:"heals,omitempty"`
	Images []ImageReport `json:"images"`
}

// Encode is the annotation's value.
func (r NodeReport) Encode() (string, error) {
	b, err := json.Marshal(r)
	return string(b), err
}

// DecodeReport reads an annotation's value.
func DecodeReport(s string) (NodeReport, error) {
	var r NodeReport
	if err := json.Unmarshal([]byte(s), &r); err != nil {
		return r, fmt.Errorf("annotation %s: %w", AnnotationReport, err)
	}
	return r, nil
}

// PinningNote says why cached images are not pinned, and how the runtime
// pins; "" when each cached image is pinned. canPin is false where the agent
// has no way to pin on this runtime.
func PinningNote(runtime string, canPin bool, images []ImageReport) string {
	var unpinned []string
	var pinErr string
	for _, r := range images {
		if r.State == StateCached && !r.Pinned {
			unpinned = append(unpinned, r.Name)
			if pinErr == "" {
				pinErr = r.PinError
			}
		}
	}
	if len(unpinned) == 0 {
		return ""
	}
	what := fmt.Sprintf("%d cached image(s) not pinned (%s)", len(unpinned), strings.Join(firstN(unpinned, 3), ", "))
	heal := "the agent pulls again whatever disappears, every HEAL_INTERVAL"
	lower := strings.ToLower(runtime)
	switch {
	case pinErr != "":
		return fmt.Sprintf("%s: %s; %s", what, pinErr, heal)
	case strings.HasPrefix(lower, "cri-o"):
		return fmt.Sprintf("%s: CRI-O pins through its configuration, [crio.image] pinned_images in crio.conf; %s", what, heal)
	case strings.HasPrefix(lower, "containerd") && canPin:
		return fmt.Sprintf("%s: %s ignores the label io.cri-containerd.pinned=pinned, which containerd 1.6.22+, 1.7.3+ and 2.x honour: upgrade containerd to pin; %s", what, runtime, heal)
	default:
		return fmt.Sprintf("%s: the agent cannot pin on %s; %s", what, runtime, heal)
	}
}

func firstN(s []string, n int) []string {
	if len(s) <= n {
		return s
	}
	return append(s[:n:n], fmt.Sprintf("and %d more", len(s)-n))
}
