package config

import (
	"fmt"
	"strconv"

	corev1 "k8s.io/api/core/v1"
	metav1validation "k8s.io/apimachinery/pkg/apis/meta/v1/validation"
	"k8s.io/apimachinery/pkg/util/validation"
	"k8s.io/apimachinery/pkg/util/validation/field"
)

// affinityProblems checks an Affinity the way the API server validates a
// pod's: node selector terms and their operators and values, weights, and
// pod (anti-)affinity terms with a topology key and a valid label selector.
// Each problem is a path into the value and what is wrong there.
func affinityProblems(a *corev1.Affinity) []string {
	var out []string
	add := func(path *field.Path, format string, args ...any) {
		out = append(out, path.String()+": "+fmt.Sprintf(format, args...))
	}
	if na := a.NodeAffinity; na != nil {
		p := field.NewPath("nodeAffinity")
		if req := na.RequiredDuringSchedulingIgnoredDuringExecution; req != nil {
			rp := p.Child("requiredDuringSchedulingIgnoredDuringExecution", "nodeSelectorTerms")
			if len(req.NodeSelectorTerms) == 0 {
				add(rp, "must have at least one term")
			}
			for i, term := range req.NodeSelectorTerms {
				nodeSelectorTerm(term, rp.Index(i), add)
			}
		}
		for i, pref := range na.PreferredDuringSchedulingIgnoredDuringExecution {
			pp := p.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
			weight(pref.Weight, pp.Child("weight"), add)
			nodeSelectorTerm(pref.Preference, pp.Child("preference"), add)
		}
	}
	if pa := a.PodAffinity; pa != nil {
		podAffinityTerms(field.NewPath("podAffinity"), pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, add)
	}
	if pa := a.PodAntiAffinity; pa != nil {
		podAffinityTerms(field.NewPath("podAntiAffinity"), pa.RequiredDuringSchedulingIgnoredDuringExecution, pa.PreferredDuringSchedulingIgnoredDuringExecution, add)
	}
	return out
}

type addFunc func(path *field.Path, format string, args ...any)

func weight(w int32, p *field.Path, add addFunc) {
	if w < 1 || w > 100 {
		add(p, "%d must be from 1 to 100", w)
	}
}

func nodeSelectorTerm(term corev1.NodeSelectorTerm, p *field.Path, add addFunc) {
	for i, req := range term.MatchExpressions {
		rp := p.Child("matchExpressions").Index(i)
		for _, msg := range validation.IsQualifiedName(req.Key) {
			add(rp.Child("key"), "%q: %s", req.Key, msg)
		}
		nodeSelectorRequirement(req, rp, true, add)
	}
	for i, req := range term.MatchFields {
		rp := p.Child("matchFields").Index(i)
		if req.Key != "metadata.name" {
			add(rp.Child("key"), "%q: the only field is metadata.name", req.Key)
		}
		if (req.Operator != corev1.NodeSelectorOpIn && req.Operator != corev1.NodeSelectorOpNotIn) || len(req.Values) != 1 {
			add(rp, "operator In or NotIn with exactly one value")
		}
	}
}

func nodeSelectorRequirement(req corev1.NodeSelectorRequirement, p *field.Path, labelValues bool, add addFunc) {
	switch req.Operator {
	case corev1.NodeSelectorOpIn, corev1.NodeSelectorOpNotIn:
		if len(req.Values) == 0 {
			add(p.Child("values"), "operator %s needs at least one value", req.Operator)
		}
	case corev1.NodeSelectorOpExists, corev1.NodeSelectorOpDoesNotExist:
		if len(req.Values) > 0 {
			add(p.Child("values"), "operator %s takes no values", req.Operator)
		}
	case corev1.NodeSelectorOpGt, corev1.NodeSelectorOpLt:
		if len(req.Values) != 1 {
			add(p.Child("values"), "operator %s takes exactly one value", req.Operator)
		} else if _, err := strconv.ParseInt(req.Values[0], 10, 64); err != nil {
			add(p.Child("values").Index(0), "%q: operator %s compares whole numbers", req.Values[0], req.Operator)
		}
		return
	default:
		add(p.Child("operator"), "%q must be In, NotIn, Exists, DoesNotExist, Gt or Lt", req.Operator)
	}
	if labelValues {
		for i, v := range req.Values {
			for _, msg := range validation.IsValidLabelValue(v) {
				add(p.Child("values").Index(i), "%q: %s", v, msg)
			}
		}
	}
}

func podAffinityTerms(p *field.Path, required []corev1.PodAffinityTerm, preferred []corev1.WeightedPodAffinityTerm, add addFunc) {
	for i, term := range required {
		podAffinityTerm(term, p.Child("requiredDuringSchedulingIgnoredDuringExecution").Index(i), add)
	}
	for i, w := range preferred {
		wp := p.Child("preferredDuringSchedulingIgnoredDuringExecution").Index(i)
		weight(w.Weight, wp.Child("weight"), add)
		podAffinityTerm(w.PodAffinityTerm, wp.Child("podAffinityTerm"), add)
	}
}

func podAffinityTerm(term corev1.PodAffinityTerm, p *field.Path, add addFunc) {
	if term.TopologyKey == "" {
		add(p.Child("topologyKey"), "required, for example kubernetes.io/hostname")
	} else {
		for _, msg := range validation.IsQualifiedName(term.TopologyKey) {
			add(p.Child("topologyKey"), "%q: %s", term.TopologyKey, msg)
		}
	}
	opts := metav1validation.LabelSelectorValidationOptions{}
	for _, err := range metav1validation.ValidateLabelSelector(term.LabelSelector, opts, p.Child("labelSelector")) {
		add(field.NewPath(err.Field), "%s", err.ErrorBody())
	}
	for _, err := range metav1validation.ValidateLabelSelector(term.NamespaceSelector, opts, p.Child("namespaceSelector")) {
		add(field.NewPath(err.Field), "%s", err.ErrorBody())
	}
	for i, ns := range term.Namespaces {
		for _, msg := range validation.IsDNS1123Label(ns) {
			add(p.Child("namespaces").Index(i), "%q: %s", ns, msg)
		}
	}
}
