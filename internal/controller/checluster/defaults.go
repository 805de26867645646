package checluster

import (
	"context"
	"fmt"
	"strings"

	"github.com/kip-image-puller/kip/api/v1alpha1"
	"github.com/kip-image-puller/kip/internal/images"
	"github.com/kip-image-puller/kip/internal/operator"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
)

// defaultImages fills spec.Images with the platform's default images and
// returns the condition saying how that went.
func (r *reconciler) defaultImages(ctx context.Context, cc *unstructured.Unstructured, spec *v1alpha1.KubernetesImagePullerSpec) *metav1.Condition {
	cond := &metav1.Condition{Type: operator.TypeDefaultImages, ObservedGeneration: cc.GetGeneration()}
	urls := r.opts.DefaultImageLists
	if len(urls) == 0 {
		urls = operator.DefaultImageLists(cc)
	}
	if len(urls) == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonNoRegistry
		cond.Message = "spec.images is empty and the CheCluster's status names no plugin or devfile registry URL yet; waiting for it"
		return cond
	}
	var lists [][]string
	var problems []string
	for _, u := range urls {
		text, err := images.Fetch(ctx, u, r.opts.FetchTimeout)
		if err != nil {
			problems = append(problems, fmt.Sprintf("GET %s: %v", u, err))
			continue
		}
		refs, bad := images.Parse(u, text)
		for _, p := range bad {
			problems = append(problems, p.String())
		}
		lists = append(lists, refs)
	}
	if len(problems) > 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonRegistryUnreachable
		cond.Message = fmt.Sprintf("reading the default images failed, retrying in %v: %s", r.opts.RetryAfter, strings.Join(problems, "; "))
		return cond
	}
	merged := images.Merge(lists...)
	if len(merged) == 0 {
		cond.Status, cond.Reason = metav1.ConditionFalse, operator.ReasonRegistryUnreachable
		cond.Message = "the registries list no image: " + strings.Join(urls, ", ")
		return cond
	}
	spec.Images = images.Value(merged)
	cond.Status, cond.Reason = metav1.ConditionTrue, operator.ReasonDefaultImagesRead
	cond.Message = fmt.Sprintf("%d default images from %s", len(merged), strings.Join(urls, ", "))
	return cond
}
