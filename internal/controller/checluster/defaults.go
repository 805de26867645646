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
	// The dashboard's editors and samples, as current che-operator reads
	// them, and the registries' lists where the status names registries on
	// the dashboard's origin; or the lists the operator's admin named.
	urls := r.opts.DefaultImageLists
	var offOrigin []string
	if len(urls) == 0 {
		dashboard := operator.DashboardAPI(cc)
		if r.opts.DashboardURL != "" {
			dashboard = r.opts.DashboardURL
		}
		urls = []string{dashboard}
		for _, u := range operator.DefaultImageLists(cc) {
			if images.SameOrigin(dashboard, u) {
				urls = append(urls, u)
			} else {
				offOrigin = append(offOrigin, u)
			}
		}
	}
	// One deadline for every read: a slow server cannot hold the switch
	// for a timeout per URL.
	ctx, cancel := context.WithTimeout(ctx, r.opts.FetchTimeout)
	defer cancel()
	var lists [][]string
	var problems []string
	for _, u := range urls {
		refs, bad, err := images.Load(ctx, u, r.opts.FetchTimeout, r.lists.Fetch)
		if err != nil {
			r.log.Info("reading default images failed", "url", u, "error", err.Error())
			problems = append(problems, images.Public(err))
			continue
		}
		for _, p := range bad {
			problems = append(problems, p.Public())
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
	if len(offOrigin) > 0 {
		cond.Message += fmt.Sprintf("; not read, as they are not on the dashboard's origin: %s (the operator's --default-images-from or --dashboard-url may name them)", strings.Join(offOrigin, ", "))
	}
	return cond
}
