package main

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/types"

	"github.com/kip-image-puller/kip/internal/agent/report"
	"github.com/kip-image-puller/kip/internal/config"
	"github.com/kip-image-puller/kip/internal/daemonset"
	"github.com/kip-image-puller/kip/internal/privilege"
)

// install is one scenario installed in namespace ns: what it runs on this
// host (proc) and how it is changed and read.
type install struct {
	s          *scale
	sc         scenario
	ns, dsName string
	generation int
	proc       *proc
}

const benchPullerName = "kubernetes-image-puller"

func (s *scale) install(ctx context.Context, sc scenario, ns string) (*install, error) {
	in := &install{s: s, sc: sc, ns: ns, dsName: config.ActiveDaemonSetName(benchPullerName, sc.mode)}
	if err := s.deleteNamespace(ctx, ns); err != nil {
		return nil, err
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{"pod-security.kubernetes.io/enforce": "privileged",
		privilege.LabelAgentMode: privilege.Allowed, privilege.LabelNodeWrites: privilege.Allowed}}}
	if _, err := s.cs.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
		return nil, err
	}
	if sc.operator {
		// The CRD, and the ClusterRoles the operator binds its pullers to.
		for _, f := range []string{"deploy/operator/crd", "deploy/operator/rbac/puller_role.yaml", "deploy/operator/rbac/agent_role.yaml", "deploy/operator/rbac/node_roles.yaml"} {
			if err := kubectl(s.e, "", "apply", "--server-side", "-f", f); err != nil {
				return nil, err
			}
		}
		return in, kubectl(s.e, "", "wait", "--for=condition=Established", "crd/kubernetesimagepullers.che.eclipse.org", "--timeout=60s")
	}
	manifest, err := processTemplate("serviceaccount.yaml", map[string]string{"NAMESPACE": ns})
	if err != nil {
		return nil, err
	}
	if err := kubectl(s.e, manifest, "apply", "-n", ns, "-f", "-"); err != nil {
		return nil, err
	}
	return in, in.change(ctx, 0)
}

// benchSelector and benchTolerations put the puller on the simulated nodes
// only.
var (
	benchSelector    = map[string]string{fakeNodeLabel: "fake"}
	benchTolerations = []corev1.Toleration{{Key: kwokTaint, Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}}
)

// change writes the configuration of generation g.
func (in *install) change(ctx context.Context, g int) error {
	in.generation = g
	images := benchImages(in.s.images, g)
	sel, _ := json.Marshal(benchSelector)
	tol, _ := json.Marshal(benchTolerations)
	if in.sc.operator {
		spec := map[string]any{"images": strings.Join(images, ";"), "cachingMode": in.sc.mode,
			"nodeSelector": string(sel), "tolerations": string(tol), "cachingCPURequest": "1m"}
		obj := map[string]any{"apiVersion": "che.eclipse.org/v1alpha1", "kind": "KubernetesImagePuller",
			"metadata": map[string]any{"name": "scale", "namespace": in.ns}, "spec": spec}
		b, _ := json.Marshal(obj)
		return kubectl(in.s.e, string(b), "apply", "--server-side", "--field-manager", "bench-scale", "-f", "-")
	}
	manifest, err := processTemplate("configmap.yaml", map[string]string{"NAMESPACE": in.ns, "IMAGES": strings.Join(images, ";"),
		"CACHING_MODE": in.sc.mode, "NODE_SELECTOR": string(sel), "TOLERATIONS": string(tol), "CACHING_CPU_REQUEST": "1m"})
	if err != nil {
		return err
	}
	return kubectl(in.s.e, manifest, "apply", "-n", in.ns, "-f", "-")
}

// start starts the controller, or the operator, on this host.
func (in *install) start(ctx context.Context) error {
	metricsAddr, err := freeAddr()
	if err != nil {
		return err
	}
	pprofAddr, err := freeAddr()
	if err != nil {
		return err
	}
	args := []string{"--kubeconfig", in.s.e.Kubeconfig, "--leader-elect=false", "--health-probe-bind-address", "0",
		"--metrics-secure=false", "--metrics-bind-address", metricsAddr, "--pprof-bind-address", pprofAddr, "--zap-log-level", "info"}
	name := "controller"
	if in.sc.operator {
		name = "operator"
		args = append([]string{"operator", "--namespaces", in.ns, "--checluster-bridge", "off",
			"--puller-image", in.s.e.Registry + "/kip:dev"}, args...)
	} else {
		args = append([]string{"controller", "--namespace", in.ns}, args...)
	}
	p, err := startProc(filepath.Join(in.s.e.Dir, "logs", "bench-scale-"+name+".log"), metricsAddr, in.s.kip, args...)
	if err != nil {
		return err
	}
	p.pprofAddr = pprofAddr
	in.proc = p
	if in.sc.operator && in.generation == 0 {
		return in.change(ctx, 0)
	}
	return nil
}

func (in *install) remove() {
	if in.proc != nil {
		in.proc.stop()
	}
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Minute)
	defer cancel()
	if err := in.s.deleteNamespace(ctx, in.ns); err != nil {
		in.s.log("removing namespace %s: %v", in.ns, err)
	}
}

func (s *scale) deleteNamespace(ctx context.Context, ns string) error {
	err := s.cs.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	return poll(ctx, 15*time.Minute, time.Second, "namespace "+ns+" gone", func() (bool, error) {
		_, err := s.cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
		return apierrors.IsNotFound(err), nil
	})
}

// lastRef is the reference of the last image of the current generation,
// the one a change moves.
func (in *install) lastRef() string {
	images := benchImages(in.s.images, in.generation)
	_, ref, _ := strings.Cut(images[len(images)-1], "=")
	return ref
}

// waitDaemonSetUpdated waits until the DaemonSet names the current
// generation's images.
func (in *install) waitDaemonSetUpdated(ctx context.Context) error {
	ref := in.lastRef()
	return poll(ctx, 5*time.Minute, 20*time.Millisecond, "the DaemonSet naming "+ref, func() (bool, error) {
		ds, err := in.s.cs.AppsV1().DaemonSets(in.ns).Get(ctx, in.dsName, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return false, nil
		}
		if err != nil {
			return false, err
		}
		b, _ := json.Marshal(ds)
		return strings.Contains(string(b), ref), nil
	})
}

// waitWarm waits until every one of the n nodes runs a pod of the current
// configuration with its simulated statuses, and the status says warm of
// them are warm.
func (in *install) waitWarm(ctx context.Context, n, warm int, timeout time.Duration) error {
	if err := in.waitDaemonSetUpdated(ctx); err != nil {
		return err
	}
	ref := in.lastRef()
	return poll(ctx, timeout, 250*time.Millisecond, fmt.Sprintf("%d nodes reporting, %d of them warm", n, warm), func() (bool, error) {
		pods, err := in.s.cs.CoreV1().Pods(in.ns).List(ctx, metav1.ListOptions{LabelSelector: labelsOf(daemonset.SelectorLabels(in.dsName)), ResourceVersion: "0"})
		if err != nil {
			return false, err
		}
		current := 0
		for _, p := range pods.Items {
			if p.DeletionTimestamp != nil || p.Status.Phase != corev1.PodRunning {
				continue
			}
			if in.sc.mode == config.ModeAgent {
				if strings.Contains(p.Annotations[report.Annotation], ref) {
					current++
				}
				continue
			}
			for _, c := range p.Spec.Containers {
				if c.Image == ref {
					current++
				}
			}
		}
		if current < n {
			return false, nil
		}
		return in.statusWarm(ctx, n, warm)
	})
}

// statusWarm tells whether the status (the controller's metrics, or the
// resource's status) says warm of n nodes are warm.
func (in *install) statusWarm(ctx context.Context, n, warm int) (bool, error) {
	if in.sc.operator {
		kip, err := in.resource(ctx)
		if err != nil {
			return false, err
		}
		return kip.Status.NodesWarm == fmt.Sprintf("%d/%d", warm, n), nil
	}
	m, err := in.proc.metrics()
	if err != nil {
		return false, nil // starting
	}
	return metricValue(m, "kip_nodes_selected") == float64(n) && metricValue(m, "kip_nodes_warm") == float64(warm), nil
}

// waitReported waits, after a restart, until the process has read all n
// nodes again.
// waitReported waits until a restarted process has reported on n nodes,
// warm as many as before the restart (warm, from warmNow): a report, not a
// first guess.
func (in *install) waitReported(ctx context.Context, n int, warm string) error {
	return poll(ctx, 10*time.Minute, 100*time.Millisecond, "the first full report after a restart", func() (bool, error) {
		m, err := in.proc.metrics()
		if err != nil {
			return false, nil
		}
		if in.sc.operator && metricValue(m, "controller_runtime_reconcile_total", `result="success"`) == 0 {
			return false, nil
		}
		if !in.sc.operator && metricValue(m, "kip_nodes_selected") != float64(n) {
			return false, nil
		}
		now, err := in.warmNow(ctx)
		return now == warm, err
	})
}

// warmNow is how many nodes the process says are warm: the controller's
// metric, or the operator's resource status ("W/N").
func (in *install) warmNow(ctx context.Context) (string, error) {
	if in.sc.operator {
		kip, err := in.resource(ctx)
		return kip.Status.NodesWarm, err
	}
	m, err := in.proc.metrics()
	if err != nil {
		return "", err
	}
	return strconv.FormatFloat(metricValue(m, "kip_nodes_warm"), 'f', -1, 64), nil
}

type benchResource struct {
	Status struct {
		NodesWarm string `json:"nodesWarm"`
		Failing   []struct {
			Node string `json:"node"`
			Name string `json:"name"`
		} `json:"failing"`
	} `json:"status"`
}

func (in *install) resource(ctx context.Context) (benchResource, error) {
	var kip benchResource
	raw, err := in.s.cs.CoreV1().RESTClient().Get().AbsPath("/apis/che.eclipse.org/v1alpha1/namespaces", in.ns, "kubernetesimagepullers", "scale").DoRaw(ctx)
	if err != nil {
		return kip, err
	}
	return kip, json.Unmarshal(raw, &kip)
}

// writes counts the write requests the process has sent to the API server.
func (in *install) writes() (float64, error) {
	m, err := in.proc.metrics()
	if err != nil {
		return 0, err
	}
	total := 0.0
	for _, verb := range []string{"POST", "PUT", "PATCH", "DELETE"} {
		total += metricValue(m, "rest_client_requests_total", `method="`+verb+`"`)
	}
	return total, nil
}

// agentReport is what a simulated agent on node says of images.
func agentReport(node string, images []config.Image) (string, error) {
	pulling, fail := nodeOutcome(node)
	since := time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC)
	r := report.Node{Runtime: "kwok"}
	for i, img := range images {
		ri := report.Image{Name: img.Name, Image: img.Ref, State: report.StateCached, Digest: "sha256:" + strings.Repeat("0", 64), Pinned: true, Since: &since}
		switch {
		case i == 0 && fail != "":
			ri = report.Image{Name: img.Name, Image: img.Ref, State: report.StateFailed, Reason: fail, Message: "simulated"}
		case i == len(images)-1 && pulling:
			ri = report.Image{Name: img.Name, Image: img.Ref, State: report.StatePulling}
		}
		r.Images = append(r.Images, ri)
	}
	return r.Encode()
}

// simulateAgents, in agent mode, writes each agent pod's report as its
// agent would, whenever the DaemonSet's list changes, until the returned
// func is called.
func (in *install) simulateAgents(ctx context.Context) (stop func()) {
	if in.sc.mode != config.ModeAgent {
		return func() {}
	}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for ctx.Err() == nil {
			if err := in.writeReports(ctx); err != nil && ctx.Err() == nil {
				in.s.log("simulated agents: %v", err)
			}
			select {
			case <-ctx.Done():
			case <-time.After(time.Second):
			}
		}
	}()
	return func() { cancel(); wg.Wait() }
}

func (in *install) writeReports(ctx context.Context) error {
	ds, err := in.s.cs.AppsV1().DaemonSets(in.ns).Get(ctx, in.dsName, metav1.GetOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	if err != nil {
		return err
	}
	images, err := daemonset.AgentImages(ds)
	if err != nil {
		return err
	}
	pods, err := in.s.cs.CoreV1().Pods(in.ns).List(ctx, metav1.ListOptions{LabelSelector: labelsOf(daemonset.SelectorLabels(in.dsName))})
	if err != nil {
		return err
	}
	var stale []corev1.Pod
	for _, p := range pods.Items {
		if p.Status.Phase == corev1.PodRunning && p.DeletionTimestamp == nil && !currentReport(p, images) {
			stale = append(stale, p)
		}
	}
	return forEach(ctx, len(stale), 16, func(ctx context.Context, i int) error {
		p := stale[i]
		r, err := agentReport(p.Spec.NodeName, images)
		if err != nil {
			return err
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{report.Annotation: r}}})
		_, err = in.s.cs.CoreV1().Pods(in.ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		return err
	})
}

func currentReport(p corev1.Pod, images []config.Image) bool {
	r, err := report.Decode(p.Annotations[report.Annotation])
	if err != nil || len(r.Images) != len(images) {
		return false
	}
	for i, img := range images {
		if r.Images[i].Image != img.Ref {
			return false
		}
	}
	return true
}

// failImage makes image fail on node: its container waits in ErrImagePull
// (daemonset mode), or its agent reports it Failed.
func (in *install) failImage(ctx context.Context, node, image string) error {
	pods, err := in.s.cs.CoreV1().Pods(in.ns).List(ctx, metav1.ListOptions{
		LabelSelector: labelsOf(daemonset.SelectorLabels(in.dsName)), FieldSelector: "spec.nodeName=" + node})
	if err != nil {
		return err
	}
	if len(pods.Items) != 1 {
		return fmt.Errorf("%d pods of %s on %s, want 1", len(pods.Items), in.dsName, node)
	}
	p := pods.Items[0]
	if in.sc.mode == config.ModeAgent {
		r, err := report.Decode(p.Annotations[report.Annotation])
		if err != nil {
			return err
		}
		for i := range r.Images {
			if r.Images[i].Name == image {
				r.Images[i] = report.Image{Name: image, Image: r.Images[i].Image, State: report.StateFailed, Reason: report.ReasonErrImagePull, Message: "simulated"}
			}
		}
		v, err := r.Encode()
		if err != nil {
			return err
		}
		patch, _ := json.Marshal(map[string]any{"metadata": map[string]any{"annotations": map[string]string{report.Annotation: v}}})
		_, err = in.s.cs.CoreV1().Pods(in.ns).Patch(ctx, p.Name, types.MergePatchType, patch, metav1.PatchOptions{})
		return err
	}
	for i, c := range p.Status.ContainerStatuses {
		if c.Name == image {
			p.Status.ContainerStatuses[i].Ready = false
			p.Status.ContainerStatuses[i].State = corev1.ContainerState{Waiting: &corev1.ContainerStateWaiting{Reason: "ErrImagePull", Message: "simulated"}}
		}
	}
	_, err = in.s.cs.CoreV1().Pods(in.ns).UpdateStatus(ctx, &p, metav1.UpdateOptions{})
	return err
}

// waitFailingShown waits until the status names image failing on node.
func (in *install) waitFailingShown(ctx context.Context, node, image string) error {
	return poll(ctx, 5*time.Minute, 10*time.Millisecond, image+" failing on "+node+" in the status", func() (bool, error) {
		if in.sc.operator {
			kip, err := in.resource(ctx)
			if err != nil {
				return false, err
			}
			for _, f := range kip.Status.Failing {
				if f.Node == node && f.Name == image {
					return true, nil
				}
			}
			return false, nil
		}
		m, err := in.proc.metrics()
		if err != nil {
			return false, err
		}
		return metricValue(m, "kip_image_failing", `node="`+node+`"`, `image="`+image+`"`) == 1, nil
	})
}

func (in *install) statusName() string {
	if in.sc.operator {
		return "the resource's status.failing"
	}
	return "the metric kip_image_failing"
}

// kipStatus runs `kip status` on namespace ns three times, and returns the
// fastest run's wall time and the output's size; then once more, with a CPU
// profile written to profile.
func (s *scale) kipStatus(ctx context.Context, ns, profile string) (time.Duration, int, error) {
	best, size := time.Duration(0), 0
	for i := range 4 {
		args := []string{"status", "--kubeconfig", s.e.Kubeconfig, "-n", ns}
		if i == 3 { // one more, not timed, with a CPU profile
			args = append(args, "--cpu-profile", profile)
		}
		start := time.Now()
		out, err := exec.CommandContext(ctx, s.kip, args...).Output()
		took := time.Since(start)
		if err != nil && len(out) == 0 {
			return 0, 0, fmt.Errorf("kip status -n %s: %w", ns, err)
		}
		if i < 3 && (best == 0 || took < best) {
			best = took
		}
		size = len(out)
	}
	return best, size, nil
}

// startKwok runs kwok against the local cluster, managing the nodes
// annotated kwok.x-k8s.io/node=fake, with stages; stop ends it.
func (s *scale) startKwok(kwok, stages string) (stop func(), err error) {
	p, err := startProc(filepath.Join(s.e.Dir, "logs", "bench-scale-kwok.log"), "", kwok,
		"--kubeconfig", s.e.Kubeconfig, "--manage-nodes-with-annotation-selector=kwok.x-k8s.io/node=fake",
		"-c", stages, "--cidr", "100.64.0.0/10")
	if err != nil {
		return nil, err
	}
	return p.stop, nil
}

func freeAddr() (string, error) {
	l, err := (&net.ListenConfig{}).Listen(context.Background(), "tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer l.Close()
	return l.Addr().String(), nil
}

func labelsOf(m map[string]string) string { return labels.SelectorFromSet(m).String() }
