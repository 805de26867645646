package config

import (
	"gopkg.in/inf.v0"
	"k8s.io/apimachinery/pkg/api/resource"
)

// Cost is what the cache claims, by the documented rule: every cached image
// gets the CACHING_* requests and limits on every node.
type Cost struct {
	Images, Nodes              int
	MemoryRequest, MemoryLimit resource.Quantity
	CPURequest, CPULimit       resource.Quantity
}

// PerNode returns the cost of all images on one node.
func (c *Config) PerNode() Cost { return c.Cost(1) }

// Cost returns the cluster-wide cost on nodes nodes: (per-image amount) x
// (number of images) x (number of nodes).
func (c *Config) Cost(nodes int) Cost {
	n := int64(len(c.Images)) * int64(nodes)
	return Cost{
		Images:        len(c.Images),
		Nodes:         nodes,
		MemoryRequest: times(c.MemoryRequest, n),
		MemoryLimit:   times(c.MemoryLimit, n),
		CPURequest:    times(c.CPURequest, n),
		CPULimit:      times(c.CPULimit, n),
	}
}

// times multiplies exactly, in decimal: int64 milli-units overflow at 500
// images x 1,000 nodes x 20Gi.
func times(q resource.Quantity, n int64) resource.Quantity {
	return *resource.NewDecimalQuantity(*new(inf.Dec).Mul(q.AsDec(), inf.NewDec(n, 0)), q.Format)
}
