package puller

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sort"
	"strings"
	"time"

	"github.com/go-logr/logr"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/util/retry"
	"sigs.k8s.io/controller-runtime/pkg/client"

	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/nodewarm"
	"github.com/kip-image-puller/kip/internal/status"
)

// Event reasons of the node warmer.
const (
	ReasonWarmTaintRemoved = "WarmTaintRemoved"
	ReasonWarmTimeout      = "WarmTimeout"
	ReasonNodesForbidden   = "NodesForbidden"
	// ReasonNodeConditionKeptElsewhere: another puller keeps the
	// condition on some selected nodes; this one leaves it alone there.
	ReasonNodeConditionKeptElsewhere = "NodeConditionKeptElsewhere"
)

// nodeWarmer writes what package nodewarm plans for each selected node:
// the ImagesCached condition (nodes/status patch) and the removal of the
// startup taint (nodes patch, with the resourceVersion it read, since the
// autoscalers and node-readiness-controller edit taints too).
type nodeWarmer struct {
	client     client.Client // the cached nodes; writes
	apiReader  client.Reader // the whole node, before its taints are rewritten
	events     eventSink
	log        logr.Logger
	now        func() time.Time
	started    time.Time
	fieldOwner string
	// unreadable: this identity may not list and watch nodes.
	unreadable bool

	warmSeen  map[string]bool // nodes whose time to warm was observed
	forbidden map[string]bool // permission problems, reported once each
	// keptElsewhere is what was last said of other pullers keeping the
	// condition, so that it is said again only when it changes.
	keptElsewhere string
	// written is the condition last written on each node: for a few
	// seconds the cache may not show it yet, and the same write must not
	// go out twice.
	written map[string]corev1.NodeCondition
}

// cacheLag bounds how long a written condition is preferred to a cache
// that does not show it: past that, the cache is right (someone else
// removed or changed it).
const cacheLag = 10 * time.Second

// sync writes the plans of the selected nodes of report and returns when
// to look again with nothing changed (0: no need).
func (w *nodeWarmer) sync(ctx context.Context, ds *appsv1.DaemonSet, report status.Report) (time.Duration, error) {
	s, err := nodewarm.DecodeSettings(ds.Annotations[nodewarm.AnnotationSettings])
	if err != nil {
		return 0, err // the controller wrote it: not the user's doing
	}
	if s == (nodewarm.Settings{}) {
		return 0, nil
	}
	if w.warmSeen == nil {
		w.warmSeen, w.forbidden, w.written = map[string]bool{}, map[string]bool{}, map[string]corev1.NodeCondition{}
	}
	if w.unreadable {
		return 0, w.allowed(ds, apierrors.NewForbidden(corev1.Resource("nodes"), "", errors.New("this identity may not list and watch nodes")), "nodes (list, watch)", "NODE_CONDITION=true")
	}
	var nodes corev1.NodeList
	if err := w.client.List(ctx, &nodes); err != nil {
		return 0, err
	}
	byName := map[string]*corev1.Node{}
	for i := range nodes.Items {
		byName[nodes.Items[i].Name] = &nodes.Items[i]
	}
	now := w.now()
	owner := ds.Namespace + "/" + strings.TrimSuffix(ds.Name, config.AgentSuffix) // the same in either mode
	var next time.Duration
	keptBy := map[string][]string{} // another puller -> the nodes whose condition it keeps
	for _, row := range report.Nodes {
		node := byName[row.Name]
		if node == nil || !row.Selected {
			continue
		}
		want := nodewarm.Desired(warmImages(row), owner)
		w.observeWarm(node, want, s, now)
		plan := nodewarm.Decide(w.latest(node, now), want, s, now)
		if plan.KeptBy != "" {
			keptBy[plan.KeptBy] = append(keptBy[plan.KeptBy], node.Name)
		}
		if plan.Condition != nil {
			if err := w.writeCondition(ctx, ds, node.Name, *plan.Condition); err != nil {
				return 0, err
			}
			w.written[node.Name] = *plan.Condition
		}
		if plan.RemoveTaint {
			if err := w.removeTaint(ctx, ds, node, s, plan.TimedOut, want, now); err != nil {
				return 0, err
			}
		}
		if plan.After > 0 && (next == 0 || plan.After < next) {
			next = plan.After
		}
	}
	w.reportKeptElsewhere(ds, keptBy)
	return next, nil
}

// reportKeptElsewhere says, once per change, which other pullers keep the
// condition on which selected nodes: two pullers writing one condition
// would overwrite each other at every heartbeat.
func (w *nodeWarmer) reportKeptElsewhere(ds *appsv1.DaemonSet, keptBy map[string][]string) {
	var parts []string
	for other, nodes := range keptBy {
		sort.Strings(nodes)
		shown := nodes
		if len(shown) > 5 {
			shown = append(shown[:5:5], fmt.Sprintf("and %d more", len(nodes)-5))
		}
		parts = append(parts, fmt.Sprintf("the puller %s keeps it on %d node(s) (%s)", other, len(nodes), strings.Join(shown, ", ")))
	}
	sort.Strings(parts)
	said := strings.Join(parts, "; ")
	if said == w.keptElsewhere {
		return
	}
	w.keptElsewhere = said
	if said == "" {
		return
	}
	w.log.Info("another puller keeps the node condition; leaving it alone there", "condition", nodewarm.ConditionType, "pullers", said)
	w.events.emit(ds, corev1.EventTypeWarning, ReasonNodeConditionKeptElsewhere,
		"%s=true: refused where another puller keeps the condition %s: %s. One puller keeps it per node, and this one leaves it alone there: set %s=false on one of them, or give them %s values that do not overlap. A condition whose heartbeat is older than %s is taken over",
		config.KeyNodeCondition, nodewarm.ConditionType, said, config.KeyNodeCondition, config.KeyNodeSelector, nodewarm.StaleAfter)
}

// latest is the cached node, with the condition last written on it when the
// cache does not show that one yet, for at most cacheLag.
func (w *nodeWarmer) latest(node *corev1.Node, now time.Time) *corev1.Node {
	mine, ok := w.written[node.Name]
	if !ok {
		return node
	}
	if cur := nodewarm.Current(node); (cur != nil && !cur.LastHeartbeatTime.Before(&mine.LastHeartbeatTime)) || now.Sub(mine.LastHeartbeatTime.Time) > cacheLag {
		delete(w.written, node.Name)
		return node
	}
	out := node.DeepCopy()
	out.Status.Conditions = append(slices.DeleteFunc(out.Status.Conditions, func(c corev1.NodeCondition) bool { return c.Type == nodewarm.ConditionType }), mine)
	return out
}

// warmImages is a report's node row as package nodewarm reads it.
func warmImages(row status.Node) []nodewarm.Image {
	out := make([]nodewarm.Image, 0, len(row.Images))
	for name, c := range row.Images {
		img := nodewarm.Image{Name: name, Cached: c.State == status.Cached}
		if c.State == status.Failed {
			img.Failed = c.Reason
		}
		out = append(out, img)
	}
	return out
}

// observeWarm records, once per node, the time from its creation to
// holding every image: for a node that joined while this process ran, or
// that still carries the startup taint (it was never warm). Other nodes
// were warm before, or warmed while no controller looked.
func (w *nodeWarmer) observeWarm(node *corev1.Node, want corev1.NodeCondition, s nodewarm.Settings, now time.Time) {
	if want.Status != corev1.ConditionTrue || w.warmSeen[node.Name] {
		return
	}
	w.warmSeen[node.Name] = true
	joined := !node.CreationTimestamp.Time.Before(w.started)
	if joined || (s.Taint != "" && nodewarm.HasTaint(node, s.Taint)) {
		nodeWarmSeconds.Observe(now.Sub(node.CreationTimestamp.Time).Seconds())
	}
}

// writeCondition patches the one condition into the node's status; the
// strategic merge keys conditions by type, so the others stay.
func (w *nodeWarmer) writeCondition(ctx context.Context, ds *appsv1.DaemonSet, node string, c corev1.NodeCondition) error {
	patch, err := json.Marshal(map[string]any{"status": map[string]any{"conditions": []corev1.NodeCondition{c}}})
	if err != nil {
		return err
	}
	target := &corev1.Node{}
	target.Name = node
	err = w.client.Status().Patch(ctx, target, client.RawPatch(types.StrategicMergePatchType, patch), client.FieldOwner(w.fieldOwner))
	return w.allowed(ds, err, "nodes/status", "NODE_CONDITION=true")
}

// removeTaint removes the startup taint, and no other, from node. It reads
// the whole node from the API server and writes its taints back with the
// resourceVersion it read: when another controller changed them in
// between, the write is refused and made again on the newer node.
func (w *nodeWarmer) removeTaint(ctx context.Context, ds *appsv1.DaemonSet, cached *corev1.Node, s nodewarm.Settings, timedOut bool, want corev1.NodeCondition, now time.Time) error {
	removed := false
	err := retry.RetryOnConflict(retry.DefaultRetry, func() error {
		var node corev1.Node
		if err := w.apiReader.Get(ctx, client.ObjectKeyFromObject(cached), &node); err != nil {
			return err
		}
		if !nodewarm.HasTaint(&node, s.Taint) {
			return nil
		}
		before := node.DeepCopy()
		node.Spec.Taints = nodewarm.WithoutTaint(node.Spec.Taints, s.Taint)
		if err := w.client.Patch(ctx, &node, client.MergeFromWithOptions(before, client.MergeFromWithOptimisticLock{}), client.FieldOwner(w.fieldOwner)); err != nil {
			return err
		}
		removed = true
		return nil
	})
	if err := w.allowed(ds, err, "nodes", "WARM_NODE_TAINT="+s.Taint); err != nil || !removed {
		return err
	}
	after := now.Sub(cached.CreationTimestamp.Time).Round(time.Second)
	if timedOut {
		w.log.Info("removed the startup taint from a node that is not warm: WARM_NODE_TIMEOUT passed", "node", cached.Name, "taint", s.Taint, "after", after.String(), "condition", want.Message)
		w.events.emit(ds, corev1.EventTypeWarning, ReasonWarmTimeout, "removed taint %s from node %s %s after it joined, not warm: WARM_NODE_TIMEOUT=%s passed; %s",
			s.Taint, cached.Name, after, s.Timeout, want.Message)
		return nil
	}
	w.log.Info("removed the startup taint from a warm node", "node", cached.Name, "taint", s.Taint, "after", after.String())
	w.events.emit(ds, corev1.EventTypeNormal, ReasonWarmTaintRemoved, "removed taint %s from node %s: it holds every image, %s after it joined", s.Taint, cached.Name, after)
	return nil
}

// allowed turns a Forbidden answer into one Warning Event naming the
// permission the setting needs, and lets the rest of the work go on.
func (w *nodeWarmer) allowed(ds *appsv1.DaemonSet, err error, resource, setting string) error {
	if !apierrors.IsForbidden(err) {
		return err
	}
	if !w.forbidden[resource] {
		w.forbidden[resource] = true
		w.log.Error(err, "no permission on "+resource, "setting", setting)
		w.events.emit(ds, corev1.EventTypeWarning, ReasonNodesForbidden, "%s needs permission on %s, cluster-wide: %s; %v",
			setting, resource, rbacRecipe[resource], err)
	}
	return nil
}

// rbacRecipe says what grants each permission the node warmer needs.
var rbacRecipe = map[string]string{
	"nodes (list, watch)": "apply deploy/openshift/serviceaccount.yaml, whose ClusterRole reads the nodes",
	"nodes/status":        "apply deploy/openshift/node-condition-rbac.yaml (the chart adds it with configMap.nodeCondition)",
	"nodes":               "apply deploy/openshift/warm-node-taint-rbac.yaml (the chart adds it with configMap.warmNodeTaint)",
}
