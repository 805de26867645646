package config

import (
	"fmt"
	"path"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/distribution/reference"
	"github.com/google/go-containerregistry/pkg/name"
	"gopkg.in/inf.v0"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	apivalidation "k8s.io/apimachinery/pkg/api/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	kjson "sigs.k8s.io/json"
)

// ReservedContainerName is the name of the init container that installs the
// sleeper; an IMAGES entry may not use it.
const ReservedContainerName = "kip-install-sleep"

// MaxImages bounds IMAGES. Each image is a container on every node; 200
// is several times what a workspace platform ships (Che: about 30), keeps
// the DaemonSet far below the API server's object and annotation limits,
// and bounds what the status tracks per node.
const MaxImages = 200

// MaxCachingIntervalHours bounds CACHING_INTERVAL_HOURS to one year.
const MaxCachingIntervalHours = 8760 // 24 hours x 365 days

// MaxPullParallelism bounds PULL_PARALLELISM: more pulls at once on one node
// than this only queue inside the runtime.
const MaxPullParallelism = 32

// MaxNodesPulling bounds MAX_NODES_PULLING: one Lease per slot.
const MaxNodesPulling = 1000

// MinHealInterval and MaxHealInterval bound HEAL_INTERVAL: a check is one
// ListImages call, cheap but not free; a day is the longest an image may stay
// lost.
const (
	MinHealInterval = 10 * time.Second
	MaxHealInterval = 24 * time.Hour
)

// FromEnviron picks the configuration keys out of a process environment
// (as os.Environ returns it). Other variables are ignored: an environment
// holds many unrelated ones.
func FromEnviron(environ []string) map[string]string {
	known := map[string]bool{}
	for _, k := range Keys {
		known[k] = true
	}
	data := map[string]string{}
	for _, kv := range environ {
		k, v, ok := strings.Cut(kv, "=")
		if ok && known[k] {
			data[k] = v
		}
	}
	return data
}

// Value is the value of key in data, trimmed, or its documented default when
// it is empty or absent. It is how every reader of the configuration (the
// parser, `kip status`, the operator) names the DaemonSet and the Deployment,
// even before the rest of the configuration is valid.
func Value(data map[string]string, key string) string {
	if v := strings.TrimSpace(data[key]); v != "" {
		return v
	}
	return Defaults[key]
}

// Parse turns ConfigMap data (or environment values) into a Config. Empty
// or absent keys take their documented defaults. It returns warnings (unknown
// keys, harmless oddities) even when the configuration is valid, and an
// *Error listing every problem when it is not.
func Parse(data map[string]string) (*Config, []Problem, error) {
	var errs, warns problems
	get := func(key string) string { return Value(data, key) }

	cfg := &Config{}
	cfg.Images, cfg.Skipped = parseImages(data[KeyImages], &errs, &warns)
	cfg.CachingIntervalHours = parseInterval(get(KeyCachingIntervalHours), &errs)
	cfg.MemoryRequest = parseQuantity(KeyMemoryRequest, get(KeyMemoryRequest), memory, &errs)
	cfg.MemoryLimit = parseQuantity(KeyMemoryLimit, get(KeyMemoryLimit), memory, &errs)
	cfg.CPURequest = parseQuantity(KeyCPURequest, get(KeyCPURequest), cpu, &errs)
	cfg.CPULimit = parseQuantity(KeyCPULimit, get(KeyCPULimit), cpu, &errs)
	checkRequestWithinLimit(KeyMemoryRequest, KeyMemoryLimit, cfg.MemoryRequest, cfg.MemoryLimit, &errs)
	checkRequestWithinLimit(KeyCPURequest, KeyCPULimit, cfg.CPURequest, cfg.CPULimit, &errs)

	cfg.DaemonSetName = get(KeyDaemonSetName)
	checkDaemonSetName(cfg.DaemonSetName, &errs)
	cfg.DeploymentName = get(KeyDeploymentName)
	for _, msg := range validation.IsDNS1123Subdomain(cfg.DeploymentName) {
		errs.add(KeyDeploymentName, cfg.DeploymentName, "a Deployment name (DNS-1123 subdomain): %s", msg)
	}
	cfg.Namespace = get(KeyNamespace)
	for _, msg := range validation.IsDNS1123Label(cfg.Namespace) {
		errs.add(KeyNamespace, cfg.Namespace, "a namespace name (DNS-1123 label): %s", msg)
	}

	cfg.NodeSelector = parseLabels(KeyNodeSelector, get(KeyNodeSelector), &errs)
	cfg.DaemonSetAnnotations = parseAnnotations(get(KeyDaemonSetAnnotations), &errs)
	cfg.ImagePullSecrets = parsePullSecrets(get(KeyImagePullSecrets), &errs)
	cfg.Affinity = parseAffinity(get(KeyAffinity), &errs)
	cfg.Tolerations = parseTolerations(get(KeyTolerations), &errs)

	if v := strings.TrimSpace(data[KeyKIPImage]); v != "" {
		if _, err := parseReference(v); err != nil {
			errs.add(KeyKIPImage, v, "an image reference such as registry.example.com/kip:v1: %v", err)
		}
		cfg.KIPImage = v
	}

	cfg.CachingMode = parseMode(get(KeyCachingMode), &errs)
	if cfg.CachingMode == ModeAgent && cfg.KIPImage != "" {
		warns.add(KeyKIPImage, cfg.KIPImage, "not used in agent mode: the agents run the controller's own image, by digest, which no configuration key chooses")
	}
	if cfg.CachingMode == ModeAgent && len(cfg.DaemonSetName) <= validation.LabelValueMaxLength {
		if n := ActiveDaemonSetName(cfg.DaemonSetName, ModeAgent); len(n) > validation.LabelValueMaxLength {
			errs.add(KeyDaemonSetName, cfg.DaemonSetName, "in agent mode, at most %d characters: the agents' DaemonSet is called %s", validation.LabelValueMaxLength-len(AgentSuffix), n)
		}
	}
	cfg.PullParallelism = parseWholeNumber(KeyPullParallelism, get(KeyPullParallelism), 1, MaxPullParallelism, &errs)
	cfg.HealInterval = parseHealInterval(get(KeyHealInterval), &errs)
	cfg.CRISocket = parseSocket(get(KeyCRISocket), &errs)
	cfg.MaxNodesPulling = parseWholeNumber(KeyMaxNodesPulling, get(KeyMaxNodesPulling), 0, MaxNodesPulling, &errs)
	cfg.NodeCondition = parseBool(KeyNodeCondition, get(KeyNodeCondition), &errs)
	cfg.WarmNodeTaint = parseTaintKey(get(KeyWarmNodeTaint), cfg.NodeCondition, &errs)
	cfg.WarmNodeTimeout = parseWarmNodeTimeout(get(KeyWarmNodeTimeout), &errs)
	cfg.PinBudget = parseDiskShare(KeyPinBudget, get(KeyPinBudget), 1, &errs)
	cfg.ImageFsFreeFloor = parseDiskShare(KeyImageFsFreeFloor, get(KeyImageFsFreeFloor), 0, &errs)

	warnUnknownKeys(data, &warns)
	if len(errs) > 0 {
		return nil, warns, &Error{Problems: append(cfg.Skipped, errs...)}
	}
	return cfg, warns, nil
}

// ParseImages parses an IMAGES value on its own, strictly: an invalid
// entry is an error here. See Parse.
func ParseImages(value string) ([]Image, error) {
	var errs, warns problems
	images, skipped := parseImages(value, &errs, &warns)
	errs = append(errs, skipped...)
	if len(errs) > 0 {
		return nil, &Error{Problems: errs}
	}
	return images, nil
}

// parseImages returns the valid entries of IMAGES, and a problem for each
// entry it leaves out. An invalid entry does not keep the others from being
// cached, as with the existing puller (which skips it with a log line); it
// is reported instead. What makes the DaemonSet impossible to build is an
// error of the whole configuration: no valid entry at all, and names that
// collide (two containers of one name, or the init container's name).
func parseImages(value string, errs, warns *problems) ([]Image, []Problem) {
	const format = "entries name=image separated by ';', for example java=quay.io/example/java:17;node=node:22"
	if strings.TrimSpace(value) == "" {
		errs.add(KeyImages, value, "at least one image: %s", format)
		return nil, nil
	}
	var skipped problems
	entries := strings.Split(value, ";")
	if strings.TrimSpace(entries[len(entries)-1]) == "" {
		entries = entries[:len(entries)-1] // one trailing ';' is allowed
	}
	var images []Image
	names := map[string]int{}
	refs := map[string]string{}
	for i, raw := range entries {
		entry := strings.TrimSpace(raw)
		pos := i + 1
		if entry == "" {
			skipped.add(KeyImages, value, "entry %d is empty: %s", pos, format)
			continue
		}
		n, ref, ok := strings.Cut(entry, "=")
		n, ref = strings.TrimSpace(n), strings.TrimSpace(ref)
		switch {
		case !ok:
			skipped.add(KeyImages, entry, "entry %d has no '=': %s", pos, format)
			continue
		case n == "":
			skipped.add(KeyImages, entry, "entry %d has no name before '=': %s", pos, format)
			continue
		case ref == "":
			skipped.add(KeyImages, entry, "entry %d has no image after '=': %s", pos, format)
			continue
		}
		bad := false
		for _, msg := range validation.IsDNS1123Label(n) {
			skipped.add(KeyImages, entry, "entry %d: name %q becomes a container name and must be a DNS-1123 label: %s", pos, n, msg)
			bad = true
		}
		parsed, err := parseReference(ref)
		if err != nil {
			skipped.add(KeyImages, entry, "entry %d: %q is not an image reference: %v", pos, ref, err)
			bad = true
		}
		if bad {
			continue
		}
		if n == ReservedContainerName {
			errs.add(KeyImages, entry, "entry %d: name %q is reserved for the puller's init container; choose another", pos, n)
			continue
		}
		if first, dup := names[n]; dup {
			errs.add(KeyImages, entry, "entry %d: name %q is already used by entry %d; names must be unique", pos, n, first)
			continue
		}
		names[n] = pos
		if other, dup := refs[ref]; dup {
			warns.add(KeyImages, entry, "entry %d caches the same image as %q; one entry is enough", pos, other)
		}
		refs[ref] = n
		_, digest := parsed.(name.Digest)
		images = append(images, Image{Name: n, Ref: ref, Digest: digest})
	}
	if len(images) > MaxImages {
		errs.add(KeyImages, fmt.Sprintf("%d entries", len(images)), "at most %d images: cache fewer, or split them over several pullers", MaxImages)
	}
	if len(images) == 0 && len(names) == 0 {
		// Nothing valid to cache: the whole configuration is refused, with
		// the reason of every entry.
		errs.add(KeyImages, value, "at least one valid entry: %s", format)
		*errs = append(*errs, skipped...)
		return nil, nil
	}
	return images, skipped
}

// parseReference checks ref by the grammar the container runtimes use
// (distribution/reference: containerd and CRI-O resolve images with it),
// then parses it with go-containerregistry, which the refresh uses.
func parseReference(ref string) (name.Reference, error) {
	if _, err := reference.ParseNormalizedNamed(ref); err != nil {
		return nil, err
	}
	return name.ParseReference(ref)
}

func parseMode(value string, errs *problems) string {
	if value != ModeDaemonSet && value != ModeAgent {
		errs.add(KeyCachingMode, value, "%q (a sleeping container per image, the default) or %q (one agent per node pulling through the runtime's CRI socket; needs a privileged namespace)", ModeDaemonSet, ModeAgent)
	}
	return value
}

func parseWholeNumber(key, value string, lo, hi int, errs *problems) int {
	n, err := strconv.Atoi(value)
	if err != nil || n < lo || n > hi {
		errs.add(key, value, "a whole number from %d to %d", lo, hi)
		return 0
	}
	return n
}

func parseHealInterval(value string, errs *problems) time.Duration {
	d, err := time.ParseDuration(value)
	if err != nil || d < MinHealInterval || d > MaxHealInterval {
		errs.add(KeyHealInterval, value, "a duration from %s to %s, such as 5m", MinHealInterval, "24h")
		return 0
	}
	return d
}

func parseBool(key, value string, errs *problems) bool {
	b, err := strconv.ParseBool(value)
	if err != nil || (value != "true" && value != "false") {
		errs.add(key, value, "true or false")
		return false
	}
	return b
}

// parseTaintKey reads WARM_NODE_TAINT: a taint key, removed once the node's
// condition turns True, so it needs NODE_CONDITION=true.
func parseTaintKey(value string, condition bool, errs *problems) string {
	if value == "" {
		return ""
	}
	if msgs := validation.IsQualifiedName(value); len(msgs) > 0 {
		errs.add(KeyWarmNodeTaint, value, "a taint key, such as kip.dev/warming or startup-taint.cluster-autoscaler.kubernetes.io/kip: %s", strings.Join(msgs, "; "))
		return ""
	}
	if domain, ok := systemDomain(value); ok {
		errs.add(KeyWarmNodeTaint, value, "a taint key of your own, such as kip.dev/warming or startup-taint.cluster-autoscaler.kubernetes.io/kip: %s keys belong to Kubernetes and its distributions (control-plane, not-ready, uninitialized), which the puller must never remove", domain)
		return ""
	}
	if !condition {
		errs.add(KeyWarmNodeTaint, value, "set with %s=true: the taint goes once the node's condition says it is warm", KeyNodeCondition)
	}
	return value
}

// startupTaintDomains are the cluster autoscaler's domains for taints that
// its users add and remove themselves: the one exception under
// kubernetes.io.
var startupTaintDomains = []string{"startup-taint.cluster-autoscaler.kubernetes.io", "ignore-taint.cluster-autoscaler.kubernetes.io"}

// systemDomains own the well-known taints and labels of Kubernetes and
// OpenShift, with every subdomain.
var systemDomains = []string{"kubernetes.io", "k8s.io", "openshift.io"}

// systemDomain returns the system domain a taint key's prefix falls under,
// if it does.
func systemDomain(key string) (string, bool) {
	prefix, _, found := strings.Cut(key, "/")
	if !found || slices.Contains(startupTaintDomains, prefix) {
		return "", false
	}
	for _, d := range systemDomains {
		if prefix == d || strings.HasSuffix(prefix, "."+d) {
			return d, true
		}
	}
	return "", false
}

// ReservedAnnotationDomain is kip's own: the controller writes the DaemonSet
// annotations under it (the node settings, the digests, the agents' list),
// and a configured one would bypass their checks.
const ReservedAnnotationDomain = "kip.dev"

// MaxWarmNodeTimeout bounds WARM_NODE_TIMEOUT.
const MaxWarmNodeTimeout = 24 * time.Hour

func parseWarmNodeTimeout(value string, errs *problems) time.Duration {
	d, err := time.ParseDuration(value)
	if err != nil || d < 0 || d > MaxWarmNodeTimeout {
		errs.add(KeyWarmNodeTimeout, value, "a duration up to 24h, such as 30m, or 0 for no bound (the taint stays until the node is warm)")
		return 0
	}
	return d
}

func parseSocket(value string, errs *problems) string {
	if value == "" {
		return ""
	}
	if !ValidSocket(value) {
		errs.add(KeyCRISocket, value, "the absolute, clean path of the runtime's socket on the node, in a folder of its own, such as /run/containerd/containerd.sock, where one folder may be named $(NODE_NAME) (empty: the known socket of the nodes' runtime)")
	}
	return value
}

// ValidSocket tells whether socket is the absolute, clean path of a socket
// in a folder of its own, where one folder may be $(NODE_NAME).
func ValidSocket(socket string) bool {
	prefix, rest, named := SplitNodeSocket(socket)
	return path.IsAbs(socket) && path.Clean(socket) == socket && path.Dir(socket) != "/" &&
		strings.Count(socket, NodeNameVar) <= 1 && (!named || (prefix != "/" && rest != "")) &&
		(named || !strings.Contains(socket, NodeNameVar))
}

// NodeNameVar in CRI_SOCKET stands for the node's name, for runtimes whose
// socket path names the node.
const NodeNameVar = "$(NODE_NAME)"

// SplitNodeSocket splits a CRI_SOCKET with a $(NODE_NAME) folder into the
// folder above it and the path below it: /sockets/$(NODE_NAME)/c.sock gives
// "/sockets" and "c.sock" with named true.
func SplitNodeSocket(socket string) (prefix, rest string, named bool) {
	before, after, found := strings.Cut(socket, "/"+NodeNameVar+"/")
	if !found {
		return "", "", false
	}
	return orRoot(before), after, true
}

func orRoot(p string) string {
	if p == "" {
		return "/"
	}
	return p
}

func parseInterval(value string, errs *problems) int {
	hours, err := strconv.Atoi(value)
	if err != nil || hours < 1 || hours > MaxCachingIntervalHours {
		errs.add(KeyCachingIntervalHours, value, "a whole number of hours from 1 to %d", MaxCachingIntervalHours)
		return 0
	}
	return hours
}

// quantityKind is what a quantity measures, and so its smallest unit and
// the most one cached image may claim on one node. The sleeping container
// needs about 1Mi and no CPU to speak of: a claim above the maximum is a
// typo (20Gi for 20Mi, 200 for 200m), and one that would be rounded is
// something the API server would silently change.
type quantityKind struct {
	unit, max resource.Quantity
	unitName  string
}

var (
	memory = quantityKind{unit: resource.MustParse("1"), max: resource.MustParse("64Gi"), unitName: "whole bytes"}
	cpu    = quantityKind{unit: resource.MustParse("1m"), max: resource.MustParse("64"), unitName: "whole millicores"}
)

func parseQuantity(key, value string, kind quantityKind, errs *problems) resource.Quantity {
	q, err := resource.ParseQuantity(value)
	switch {
	case err != nil:
		errs.add(key, value, "a Kubernetes quantity such as 20Mi, 0.2 or 200m: %v", err)
	case q.Sign() <= 0:
		errs.add(key, value, "a quantity greater than zero")
	case q.Cmp(kind.max) > 0:
		errs.add(key, value, "at most %s per image per node", kind.max.String())
	case !wholeUnits(q, kind.unit):
		errs.add(key, value, "%s (at least %s)", kind.unitName, kind.unit.String())
	}
	return q
}

// wholeUnits tells whether q is a whole multiple of unit.
func wholeUnits(q, unit resource.Quantity) bool {
	ratio := new(inf.Dec).QuoRound(q.AsDec(), unit.AsDec(), 0, inf.RoundDown)
	return new(inf.Dec).Mul(ratio, unit.AsDec()).Cmp(q.AsDec()) == 0
}

// checkRequestWithinLimit adds a problem when the request exceeds a valid
// limit. An invalid limit (zero or less) is reported on its own key only.
func checkRequestWithinLimit(reqKey, limKey string, req, lim resource.Quantity, errs *problems) {
	if lim.Sign() > 0 && req.Cmp(lim) > 0 {
		errs.add(reqKey, req.String(), "at most %s (%s)", limKey, lim.String())
	}
}

func checkDaemonSetName(value string, errs *problems) {
	msgs := validation.IsDNS1123Subdomain(value)
	if len(value) > validation.LabelValueMaxLength {
		msgs = append(msgs, fmt.Sprintf("must be no more than %d characters, as it is also a label value", validation.LabelValueMaxLength))
	}
	for _, msg := range msgs {
		errs.add(KeyDaemonSetName, value, "a DaemonSet name (DNS-1123 subdomain): %s", msg)
	}
}

// decodeJSON decodes strictly, the way the API server does: case-sensitive
// field names, no unknown or duplicate fields.
func decodeJSON(key, value, expected string, into any, errs *problems) bool {
	strict, err := kjson.UnmarshalStrict([]byte(value), into)
	if err == nil && len(strict) > 0 {
		err = strict[0]
	}
	if err != nil {
		errs.add(key, value, "%s: %v", expected, err)
		return false
	}
	return true
}

func parseStringMap(key, value, expected string, errs *problems) map[string]string {
	var m map[string]string
	if !decodeJSON(key, value, expected, &m, errs) {
		return nil
	}
	return m
}

func parseLabels(key, value string, errs *problems) map[string]string {
	const expected = `a JSON object of label keys to string values, such as {"node-role.kubernetes.io/worker": ""}`
	m := parseStringMap(key, value, expected, errs)
	for _, k := range sortedKeys(m) {
		for _, msg := range validation.IsQualifiedName(k) {
			errs.add(key, value, "label key %q: %s", k, msg)
		}
		for _, msg := range validation.IsValidLabelValue(m[k]) {
			errs.add(key, value, "label value %q of %q: %s", m[k], k, msg)
		}
	}
	return m
}

func parseAnnotations(value string, errs *problems) map[string]string {
	const expected = `a JSON object of annotation keys to string values, such as {"example.com/team": "dev-tools"}`
	m := parseStringMap(KeyDaemonSetAnnotations, value, expected, errs)
	for _, k := range sortedKeys(m) {
		for _, msg := range validation.IsQualifiedName(strings.ToLower(k)) {
			errs.add(KeyDaemonSetAnnotations, value, "annotation key %q: %s", k, msg)
		}
		if prefix, _, found := strings.Cut(k, "/"); found && (prefix == ReservedAnnotationDomain || strings.HasSuffix(prefix, "."+ReservedAnnotationDomain)) {
			errs.add(KeyDaemonSetAnnotations, value, "annotation key %q: keys under %s/ are the puller's own (it writes them from NODE_CONDITION, WARM_NODE_TAINT, IMAGES and the refresh); use a domain of your own", k, ReservedAnnotationDomain)
		}
	}
	if err := apivalidation.ValidateAnnotationsSize(m); err != nil {
		errs.add(KeyDaemonSetAnnotations, fmt.Sprintf("%d bytes", len(value)), "annotations of at most %d bytes in all, as the API server allows: %v", apivalidation.TotalAnnotationSizeLimitB, err)
	}
	return m
}

func parsePullSecrets(value string, errs *problems) []string {
	var secrets []string
	seen := map[string]bool{}
	for _, s := range strings.Split(value, ";") {
		s = strings.TrimSpace(s)
		if s == "" {
			continue
		}
		for _, msg := range validation.IsDNS1123Subdomain(s) {
			errs.add(KeyImagePullSecrets, value, "Secret names separated by ';': %q: %s", s, msg)
		}
		if seen[s] {
			errs.add(KeyImagePullSecrets, value, "Secret names separated by ';': %q is listed twice", s)
			continue
		}
		seen[s] = true
		secrets = append(secrets, s)
	}
	return secrets
}

func parseAffinity(value string, errs *problems) *corev1.Affinity {
	var a corev1.Affinity
	if !decodeJSON(KeyAffinity, value, "a JSON core/v1 Affinity, such as {\"nodeAffinity\": {...}}", &a, errs) {
		return nil
	}
	if a.NodeAffinity == nil && a.PodAffinity == nil && a.PodAntiAffinity == nil {
		return nil
	}
	for _, p := range affinityProblems(&a) {
		errs.add(KeyAffinity, value, "an Affinity the API server accepts: %s", p)
	}
	return &a
}

var (
	tolerationOperators = map[corev1.TolerationOperator]bool{"": true, corev1.TolerationOpEqual: true, corev1.TolerationOpExists: true}
	taintEffects        = map[corev1.TaintEffect]bool{"": true, corev1.TaintEffectNoSchedule: true, corev1.TaintEffectPreferNoSchedule: true, corev1.TaintEffectNoExecute: true}
)

func parseTolerations(value string, errs *problems) []corev1.Toleration {
	var ts []corev1.Toleration
	if !decodeJSON(KeyTolerations, value, `a JSON array of core/v1 Tolerations, such as [{"key": "dedicated", "operator": "Exists"}]`, &ts, errs) {
		return nil
	}
	for i, t := range ts {
		bad := func(format string, args ...any) {
			errs.add(KeyTolerations, value, "toleration %d: "+format, append([]any{i + 1}, args...)...)
		}
		if !tolerationOperators[t.Operator] {
			bad("operator %q must be Equal or Exists", t.Operator)
		}
		if !taintEffects[t.Effect] {
			bad("effect %q must be NoSchedule, PreferNoSchedule or NoExecute", t.Effect)
		}
		if t.Operator == corev1.TolerationOpExists && t.Value != "" {
			bad("operator Exists takes no value, got %q", t.Value)
		}
		if t.Key == "" && t.Operator != corev1.TolerationOpExists {
			bad("an empty key needs operator Exists")
		}
		if t.Key != "" {
			for _, msg := range validation.IsQualifiedName(t.Key) {
				bad("key %q: %s", t.Key, msg)
			}
		}
		if t.Operator != corev1.TolerationOpExists {
			for _, msg := range validation.IsValidLabelValue(t.Value) {
				bad("value %q: %s", t.Value, msg)
			}
		}
		if t.TolerationSeconds != nil && t.Effect != corev1.TaintEffectNoExecute {
			bad("tolerationSeconds needs effect NoExecute")
		}
	}
	if len(ts) == 0 {
		return nil
	}
	return ts
}

func warnUnknownKeys(data map[string]string, warns *problems) {
	known := map[string]string{}
	for _, k := range Keys {
		known[normalizeKey(k)] = k
	}
	for _, k := range sortedKeys(data) {
		canon, ok := known[normalizeKey(k)]
		switch {
		case ok && canon == k:
		case ok:
			warns.add(k, data[k], "unknown key, ignored; did you mean %s?", canon)
		default:
			warns.add(k, data[k], "unknown key, ignored; known keys are %s", strings.Join(Keys, ", "))
		}
	}
}

func normalizeKey(k string) string {
	return strings.ReplaceAll(strings.ToUpper(strings.TrimSpace(k)), "-", "_")
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
