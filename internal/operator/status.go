package operator

import (
	"cmp"
	"fmt"
	"math"
	"slices"
	"strings"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	agentreport "github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/status"

	appsv1 "k8s.io/api/apps/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Condition types.
const (
	TypeReady       = "Ready"
	TypeProgressing = "Progressing"
	TypeDegraded    = "Degraded"
	// TypePrivilegeGranted is False while the spec asks for privilege
	// (agent mode, node writes) that the namespace was not granted; the
	// rest is applied, in daemonset mode. Absent otherwise.
	TypePrivilegeGranted = "PrivilegeGranted"
)

// Condition reasons, stable: scripts and alerts may match on them.
const (
	ReasonAllImagesCached = "AllImagesCached"
	ReasonPulling         = "Pulling"
	ReasonDeploying       = "Deploying"
	ReasonApplying        = "Applying"
	ReasonImagesFailing   = "ImagesFailing"
	ReasonNoNodes         = "NoNodesSelected"
	ReasonInvalidSpec     = "InvalidSpec"
	ReasonApplyFailed     = "ApplyFailed"
	ReasonConflict        = "Conflict"
	ReasonAsExpected      = "AsExpected"
	// ReasonPrivilegeNotGranted: see TypePrivilegeGranted.
	ReasonPrivilegeNotGranted = config.ReasonPrivilegeNotGranted
	// ReasonInvalidImageEntries: some images entries are invalid and left
	// out; the others are cached.
	ReasonInvalidImageEntries = "InvalidImageEntries"
)

// maxFailing bounds the failures kept in the status and named in a message.
const (
	maxFailing = 50
	// maxDiskNodes bounds the nodes whose disk the status lists.
	maxDiskNodes        = 20
	maxFailingInMessage = 5
)

// Observation is what the operator saw of one resource's puller.
type Observation struct {
	Generation int64
	// Conflict names the resource that holds the namespace, when it is another.
	Conflict string
	// SpecErr is the spec's validation error; Want is the valid configuration.
	SpecErr error
	Want    *config.Config
	// Refused is the puller's message when it refused the configuration
	// the spec gives (the API server or an admission policy did): see
	// Refusal.
	Refused string
	// PrivilegeRefused says what the spec asks for that the namespace was
	// not granted (privilege.Message); "" when nothing.
	PrivilegeRefused string
	// ApplyErr is the error applying the objects, if any.
	ApplyErr    error
	PullerImage string
	Deployment  *appsv1.Deployment // nil: not there yet
	Report      *status.Report     // nil: the puller has not made its DaemonSet yet
}

// Status is the resource's status for what was observed. Conditions keep
// their last transition time while their status holds.
func Status(prev v1alpha1.KubernetesImagePullerStatus, o Observation) v1alpha1.KubernetesImagePullerStatus {
	st := v1alpha1.KubernetesImagePullerStatus{
		Conditions:         append([]metav1.Condition(nil), prev.Conditions...),
		ObservedGeneration: o.Generation,
	}
	set := func(typ string, s metav1.ConditionStatus, reason, format string, args ...any) {
		meta.SetStatusCondition(&st.Conditions, metav1.Condition{
			Type: typ, Status: s, Reason: reason, Message: BoundMessage(fmt.Sprintf(format, args...)), ObservedGeneration: o.Generation,
		})
	}
	if o.Conflict != "" {
		msg := fmt.Sprintf("KubernetesImagePuller %s already runs the puller in this namespace; only one per namespace is allowed, so this one creates nothing", o.Conflict)
		set(TypeReady, metav1.ConditionFalse, ReasonConflict, "%s", msg)
		set(TypeProgressing, metav1.ConditionFalse, ReasonConflict, "%s", msg)
		set(TypeDegraded, metav1.ConditionTrue, ReasonConflict, "%s", msg)
		return st
	}
	if o.PrivilegeRefused != "" {
		set(TypePrivilegeGranted, metav1.ConditionFalse, ReasonPrivilegeNotGranted, "%s", o.PrivilegeRefused)
	} else {
		meta.RemoveStatusCondition(&st.Conditions, TypePrivilegeGranted)
	}
	if o.Report != nil {
		s := o.Report.Summary
		st.ImagesCached = fmt.Sprintf("%d/%d", s.ImagesCached, s.ImagesWanted)
		st.NodesWarm = fmt.Sprintf("%d/%d", s.NodesWarm, s.NodesSelected)
		st.NodesTainted = int32(min(s.NodesTainted, math.MaxInt32)) //nolint:gosec // bounded above
		refs := map[string]string{}
		for _, img := range o.Report.Images {
			refs[img.Name] = img.Ref
		}
		for i, f := range s.Failing {
			if i == maxFailing {
				break
			}
			st.Failing = append(st.Failing, v1alpha1.FailingImage{Node: f.Node, Image: refs[f.Image], Name: f.Image, Reason: f.Reason, Message: f.Message})
		}
		st.Disk, st.DiskNodesOmitted = nodeDisks(*o.Report)
	}
	if o.Deployment != nil && len(o.Deployment.Spec.Template.Spec.Containers) > 0 {
		st.ImagePullerImage = o.Deployment.Spec.Template.Spec.Containers[0].Image
	}

	switch {
	case o.SpecErr != nil:
		set(TypeReady, metav1.ConditionFalse, ReasonInvalidSpec, "the spec is invalid; the last applied configuration stays in place")
		set(TypeProgressing, metav1.ConditionFalse, ReasonInvalidSpec, "waiting for a valid spec")
		set(TypeDegraded, metav1.ConditionTrue, ReasonInvalidSpec, "%v", o.SpecErr)
		return st
	case o.Refused != "":
		set(TypeReady, metav1.ConditionFalse, ReasonInvalidSpec, "the API server refused the configuration the spec gives; the last applied DaemonSet stays in place")
		set(TypeProgressing, metav1.ConditionFalse, ReasonInvalidSpec, "waiting for a spec the API server accepts")
		set(TypeDegraded, metav1.ConditionTrue, ReasonInvalidSpec, "the puller reports: %s", o.Refused)
		return st
	case o.ApplyErr != nil:
		set(TypeReady, metav1.ConditionFalse, ReasonApplyFailed, "the puller's objects could not be applied")
		set(TypeProgressing, metav1.ConditionFalse, ReasonApplyFailed, "retrying")
		set(TypeDegraded, metav1.ConditionTrue, ReasonApplyFailed, "%v", o.ApplyErr)
		return st
	}

	// Invalid entries and images failing on nodes are news whatever else
	// is going on.
	failing := o.Report != nil && len(o.Report.Summary.Failing) > 0
	switch {
	case o.Want != nil && len(o.Want.Skipped) > 0:
		msg := skippedMessage(o.Want.Skipped, len(o.Want.Images))
		if failing {
			msg += "; " + failingMessage(st.Failing, len(o.Report.Summary.Failing))
		}
		set(TypeDegraded, metav1.ConditionTrue, ReasonInvalidImageEntries, "%s", msg)
	case failing:
		set(TypeDegraded, metav1.ConditionTrue, ReasonImagesFailing, "%s", failingMessage(st.Failing, len(o.Report.Summary.Failing)))
	default:
		set(TypeDegraded, metav1.ConditionFalse, ReasonAsExpected, "no image is failing")
	}
	switch {
	case !available(o.Deployment):
		set(TypeReady, metav1.ConditionFalse, ReasonDeploying, "the puller Deployment is not available yet")
		set(TypeProgressing, metav1.ConditionTrue, ReasonDeploying, "waiting for the puller Deployment to become available")
		return st
	case o.Report == nil:
		set(TypeReady, metav1.ConditionFalse, ReasonDeploying, "the puller has not created its DaemonSet yet")
		set(TypeProgressing, metav1.ConditionTrue, ReasonDeploying, "waiting for the puller to create its DaemonSet")
		return st
	case !sameImages(o.Report.Images, o.Want):
		set(TypeReady, metav1.ConditionFalse, ReasonApplying, "the puller has not applied generation %d yet", o.Generation)
		set(TypeProgressing, metav1.ConditionTrue, ReasonApplying, "the puller is applying generation %d", o.Generation)
		return st
	}
	s := o.Report.Summary
	counts := fmt.Sprintf("%d/%d images cached, %d/%d nodes warm", s.ImagesCached, s.ImagesWanted, s.NodesWarm, s.NodesSelected)
	switch {
	case s.Complete():
		set(TypeReady, metav1.ConditionTrue, ReasonAllImagesCached, "every image is cached on every selected node: %s", counts)
		set(TypeProgressing, metav1.ConditionFalse, ReasonAsExpected, "%s", counts)
	case s.NodesSelected == 0:
		set(TypeReady, metav1.ConditionFalse, ReasonNoNodes, "no node is selected: check nodeSelector, affinity and tolerations")
		set(TypeProgressing, metav1.ConditionFalse, ReasonNoNodes, "no node to cache images on")
	case len(s.Failing) > 0:
		set(TypeReady, metav1.ConditionFalse, ReasonImagesFailing, "%s", counts)
		set(TypeProgressing, metav1.ConditionTrue, ReasonPulling, "%s", counts)
	default:
		set(TypeReady, metav1.ConditionFalse, ReasonPulling, "%s", counts)
		set(TypeProgressing, metav1.ConditionTrue, ReasonPulling, "%s", counts)
	}
	return st
}

// MaxConditionMessage is the maxLength of a condition's message in the
// API (metav1.Condition): a longer one makes the API server refuse the
// whole status update, and a stale Ready=True would stay.
const MaxConditionMessage = 32768

// BoundMessage cuts msg to MaxConditionMessage bytes. A list of problems
// ("a; b; c") is cut between two items and ends with "and N more".
func BoundMessage(msg string) string {
	if len(msg) <= MaxConditionMessage {
		return msg
	}
	const room = 32 // for "; and N more"
	cut := strings.LastIndex(msg[:MaxConditionMessage-room], "; ")
	if cut <= 0 {
		return msg[:MaxConditionMessage-3] + "..."
	}
	return fmt.Sprintf("%s; and %d more", msg[:cut], strings.Count(msg[cut:], "; "))
}

// skippedMessage names the invalid entries left out.
func skippedMessage(skipped []config.Problem, cached int) string {
	parts := make([]string, len(skipped))
	for i, p := range skipped {
		parts[i] = p.String()
	}
	return fmt.Sprintf("%d images entries are invalid and left out, the other %d are cached: %s", len(skipped), cached, strings.Join(parts, "; "))
}

// available tells whether the puller Deployment runs its current spec.
func available(d *appsv1.Deployment) bool {
	if d == nil || d.Status.ObservedGeneration < d.Generation {
		return false
	}
	want := int32(1)
	if d.Spec.Replicas != nil {
		want = *d.Spec.Replicas
	}
	return d.Status.UpdatedReplicas >= want && d.Status.AvailableReplicas >= 1
}

// sameImages tells whether the DaemonSet carries exactly the wanted images.
func sameImages(have []status.Image, want *config.Config) bool {
	if want == nil || len(have) != len(want.Images) {
		return false
	}
	for i, img := range want.Images {
		if have[i].Name != img.Name || have[i].Ref != img.Ref {
			return false
		}
	}
	return true
}

func failingMessage(failing []v1alpha1.FailingImage, total int) string {
	if total == 0 {
		return ""
	}
	var parts []string
	for i, f := range failing {
		if i == maxFailingInMessage {
			break
		}
		parts = append(parts, fmt.Sprintf("%s (%s) on %s: %s", f.Image, f.Name, f.Node, f.Reason))
	}
	msg := fmt.Sprintf("%d image pull(s) failing: %s", total, strings.Join(parts, "; "))
	if total > len(parts) {
		msg += fmt.Sprintf("; and %d more in status.failing", total-len(parts))
	}
	return msg
}

// Holder is the resource that runs the puller of a namespace: the oldest one
// not being deleted, by creation time and then name. The others get a
// Conflict. It returns "" when there is none.
func Holder(items []v1alpha1.KubernetesImagePuller) string {
	var live []v1alpha1.KubernetesImagePuller
	for _, k := range items {
		if k.DeletionTimestamp == nil {
			live = append(live, k)
		}
	}
	if len(live) == 0 {
		return ""
	}
	slices.SortFunc(live, func(a, b v1alpha1.KubernetesImagePuller) int {
		return cmp.Or(a.CreationTimestamp.Compare(b.CreationTimestamp.Time), strings.Compare(a.Name, b.Name))
	})
	return live[0].Name
}

// nodeDisks is what the agents measured, the nodes with images past the
// pin budget first, then the most pinned, at most maxDiskNodes of them, and
// how many it left out.
func nodeDisks(r status.Report) ([]v1alpha1.NodeDisk, int32) {
	var out []v1alpha1.NodeDisk
	for _, n := range r.Nodes {
		if !n.Selected || n.Agent == nil || n.Agent.Disk == nil {
			continue
		}
		d := n.Agent.Disk
		nd := v1alpha1.NodeDisk{Node: n.Name, CachedBytes: d.CachedBytes, PinnedBytes: d.PinnedBytes, PinBudgetBytes: d.PinBudgetBytes,
			AvailableBytes: d.AvailableBytes, CapacityBytes: d.CapacityBytes}
		for _, img := range r.Images {
			if c := n.Images[img.Name]; c.State == status.Cached && c.Reason == agentreport.ReasonOverBudget {
				nd.OverBudget = append(nd.OverBudget, img.Name)
			}
		}
		out = append(out, nd)
	}
	slices.SortStableFunc(out, func(a, b v1alpha1.NodeDisk) int {
		return cmp.Or(-cmp.Compare(len(a.OverBudget), len(b.OverBudget)), -cmp.Compare(a.PinnedBytes, b.PinnedBytes), cmp.Compare(a.Node, b.Node))
	})
	if len(out) <= maxDiskNodes {
		return out, 0
	}
	return out[:maxDiskNodes], int32(min(len(out)-maxDiskNodes, math.MaxInt32))
}
