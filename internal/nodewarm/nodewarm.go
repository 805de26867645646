// Package nodewarm decides, for each selected node, the node condition that
// says whether it holds every image (ImagesCached), when to write it, and
// when a startup taint that keeps workloads off a cold node goes. It is
// pure: the controller reads the nodes and the status report, asks Decide,
// and writes what the plan says.
package nodewarm

import (
	"encoding/json"
	"fmt"
	"sort"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
)

// ConditionType is the node condition kip keeps on each selected node when
// NODE_CONDITION=true. node-readiness-controller rules and schedulers'
// filters name it.
const ConditionType corev1.NodeConditionType = "kip.dev/ImagesCached"

// The condition's reasons.
const (
	// ReasonAllCached: the node holds every image.
	ReasonAllCached = "AllCached"
	// ReasonWarming: images are on their way, none failing.
	ReasonWarming = "Warming"
	// ReasonImagesFailing: at least one image cannot be pulled or run there.
	ReasonImagesFailing = "ImagesFailing"
)

// HeartbeatInterval is how often an unchanged condition is written again,
// as the kubelet refreshes its own conditions (nodeStatusReportFrequency).
const HeartbeatInterval = 5 * time.Minute

// StaleAfter is how old a condition's heartbeat may be while the puller
// that wrote it still counts as keeping it: two heartbeats and a minute.
const StaleAfter = 2*HeartbeatInterval + time.Minute

// keptBy ends a condition's message with the puller that keeps it.
const keptBy = "; kept by "

// AnnotationSettings on the DaemonSet carries the Settings, as JSON, to the
// part of the controller that writes the nodes; absent when both are off.
const AnnotationSettings = "kip.dev/new-nodes"

// Settings are what NODE_CONDITION, WARM_NODE_TAINT and WARM_NODE_TIMEOUT
// ask for.
type Settings struct {
	// Condition keeps ConditionType on each selected node.
	Condition bool
	// Taint is a startup taint's key, removed once the node is warm.
	Taint string
	// Timeout removes Taint that long after the node's creation even if it
	// is not warm; 0 waits for ever.
	Timeout time.Duration
}

// settingsJSON is the annotation's form, with the timeout as "30m0s".
type settingsJSON struct {
	Condition bool   `json:"condition,omitempty"`
	Taint     string `json:"taint,omitempty"`
	Timeout   string `json:"timeout,omitempty"`
}

// Encode renders s as the AnnotationSettings value; "" when all is off.
func (s Settings) Encode() string {
	if s == (Settings{}) {
		return ""
	}
	w := settingsJSON{Condition: s.Condition, Taint: s.Taint}
	if s.Timeout > 0 {
		w.Timeout = s.Timeout.String()
	}
	b, _ := json.Marshal(w) // a bool and two strings always marshal
	return string(b)
}

// DecodeSettings reads an AnnotationSettings value; "" is all off.
func DecodeSettings(v string) (Settings, error) {
	if v == "" {
		return Settings{}, nil
	}
	var w settingsJSON
	if err := json.Unmarshal([]byte(v), &w); err != nil {
		return Settings{}, fmt.Errorf("annotation %s: %w", AnnotationSettings, err)
	}
	s := Settings{Condition: w.Condition, Taint: w.Taint}
	if w.Timeout != "" {
		d, err := time.ParseDuration(w.Timeout)
		if err != nil {
			return Settings{}, fmt.Errorf("annotation %s: timeout: %w", AnnotationSettings, err)
		}
		s.Timeout = d
	}
	return s, nil
}

// Image is one image's state on a node, as the status report says it.
type Image struct {
	Name   string
	Cached bool
	// Failed is the reason it fails there (ErrImagePull, ...); "" when not.
	Failed string
}

// Desired is the condition a selected node holding images should carry:
// True when it holds every one; False otherwise, with how many are cached
// and which fail; its message ends with the puller that keeps it, owner
// (namespace/name), as "7/9 cached; failing: app7 (ErrImagePull); kept by
// che/kubernetes-image-puller".
func Desired(images []Image, owner string) corev1.NodeCondition {
	cached := 0
	var failing []string
	for _, img := range images {
		if img.Cached {
			cached++
		} else if img.Failed != "" {
			reason := img.Failed
			if reason == "ImagePullBackOff" {
				// The kubelet alternates between the two while a pull keeps
				// failing: one state, or the condition would be written
				// again at each turn.
				reason = "ErrImagePull"
			}
			failing = append(failing, fmt.Sprintf("%s (%s)", img.Name, reason))
		}
	}
	sort.Strings(failing)
	c := corev1.NodeCondition{Type: ConditionType, Status: corev1.ConditionFalse, Reason: ReasonWarming,
		Message: fmt.Sprintf("%d/%d cached", cached, len(images))}
	if cached == len(images) {
		c.Status, c.Reason = corev1.ConditionTrue, ReasonAllCached
	} else if len(failing) > 0 {
		c.Reason = ReasonImagesFailing
		c.Message += "; failing: " + strings.Join(failing, ", ")
	}
	if owner != "" {
		c.Message += keptBy + owner
	}
	return c
}

// Owner is the puller that keeps c, as its message names it; "" when it
// names none (an earlier kip's condition).
func Owner(c *corev1.NodeCondition) string {
	i := strings.LastIndex(c.Message, keptBy)
	if i < 0 {
		return ""
	}
	return c.Message[i+len(keptBy):]
}

// Plan is what to write on one node.
type Plan struct {
	// Condition is the condition to write, timestamps set; nil when the
	// node's condition is as it should be and its heartbeat recent.
	Condition *corev1.NodeCondition
	// RemoveTaint: the node carries Settings.Taint, and is warm or waited
	// past Settings.Timeout.
	RemoveTaint bool
	// TimedOut: the taint goes because of the timeout, not warm.
	TimedOut bool
	// KeptBy is another puller that keeps the node's condition, its
	// heartbeat recent: the condition is left alone, not fought over.
	KeptBy string
	// After is when to look at the node again with nothing changed (the
	// next heartbeat, or the taint's deadline); 0: no need.
	After time.Duration
}

// Decide plans what to write on node, which should carry want, at now.
// The times it writes are whole seconds, as the API server keeps them.
func Decide(node *corev1.Node, want corev1.NodeCondition, s Settings, now time.Time) Plan {
	now = now.Truncate(time.Second)
	var p Plan
	if s.Condition {
		current := Current(node)
		var age time.Duration
		if current != nil {
			age = now.Sub(current.LastHeartbeatTime.Time)
		}
		// (if-else rather than a switch: the mutation tester reaches the
		// conditions of if statements only.)
		if current != nil && Owner(current) != "" && Owner(current) != Owner(&want) && age < StaleAfter {
			p.KeptBy = Owner(current)
			p.After = StaleAfter - age
		} else if current == nil || current.Status != want.Status || current.Reason != want.Reason || current.Message != want.Message {
			c := want
			c.LastHeartbeatTime.Time, c.LastTransitionTime.Time = now, now
			if current != nil && current.Status == want.Status {
				c.LastTransitionTime = current.LastTransitionTime
			}
			p.Condition = &c
			p.After = HeartbeatInterval
		} else if age >= HeartbeatInterval {
			c := *current
			c.LastHeartbeatTime.Time = now
			p.Condition = &c
			p.After = HeartbeatInterval
		} else {
			p.After = HeartbeatInterval - age
		}
	}
	if s.Taint == "" || !HasTaint(node, s.Taint) {
		return p
	}
	if want.Status == corev1.ConditionTrue {
		p.RemoveTaint = true
		return p
	}
	if s.Timeout > 0 {
		left := node.CreationTimestamp.Add(s.Timeout).Sub(now)
		if left <= 0 {
			p.RemoveTaint, p.TimedOut = true, true
		} else if p.After == 0 || left < p.After {
			p.After = left
		}
	}
	return p
}

// Current is node's ConditionType condition, or nil.
func Current(node *corev1.Node) *corev1.NodeCondition {
	for i := range node.Status.Conditions {
		if node.Status.Conditions[i].Type == ConditionType {
			return &node.Status.Conditions[i]
		}
	}
	return nil
}

// HasTaint tells whether node carries a taint of key, whatever its effect.
func HasTaint(node *corev1.Node, key string) bool {
	for _, t := range node.Spec.Taints {
		if t.Key == key {
			return true
		}
	}
	return false
}

// WithoutTaint is taints without those of key; every other taint stays, in
// its order.
func WithoutTaint(taints []corev1.Taint, key string) []corev1.Taint {
	out := make([]corev1.Taint, 0, len(taints))
	for _, t := range taints {
		if t.Key != key {
			out = append(out, t)
		}
	}
	return out
}

// Toleration lets the puller's pods run on a node that carries the
// startup taint key, whatever its effect and value.
func Toleration(key string) corev1.Toleration {
	return corev1.Toleration{Key: key, Operator: corev1.TolerationOpExists}
}
