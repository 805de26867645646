package config

import (
	"fmt"
	"strconv"
	"strings"

	"k8s.io/apimachinery/pkg/api/resource"
)

// DiskShare is a part of a node's image filesystem: a percentage of its
// capacity, or a size. PIN_BUDGET and IMAGEFS_FREE_FLOOR are DiskShares.
type DiskShare struct {
	// Percent of the capacity, when Bytes is 0 and Percent is not.
	Percent int
	// Bytes, when set.
	Bytes int64
}

// Of is the share's bytes on a filesystem of capacity bytes; a percentage
// of an unknown (0) capacity is -1: it cannot be told.
func (s DiskShare) Of(capacity int64) int64 {
	if s.Percent == 0 {
		return s.Bytes
	}
	if capacity <= 0 {
		return -1
	}
	return capacity * int64(s.Percent) / 100
}

// String writes the share as it is configured: 60% or 20Gi.
func (s DiskShare) String() string {
	if s.Percent != 0 || s.Bytes == 0 {
		return strconv.Itoa(s.Percent) + "%"
	}
	return resource.NewQuantity(s.Bytes, resource.BinarySI).String()
}

// MaxDiskPercent bounds a percentage share: the whole filesystem is never
// kip's to fill.
const MaxDiskPercent = 95

// ParseDiskShare reads a DiskShare: a whole percentage N% (N from lo to
// MaxDiskPercent), or a size such as 20Gi (0 only when lo is 0).
func ParseDiskShare(value string, lo int) (DiskShare, error) {
	expected := fmt.Sprintf("a percentage of the node's image filesystem from %d%% to %d%%, such as 60%%, or a size such as 20Gi", lo, MaxDiskPercent)
	if pct, ok := strings.CutSuffix(value, "%"); ok {
		n, err := strconv.Atoi(pct)
		if err != nil || n < lo || n > MaxDiskPercent {
			return DiskShare{}, fmt.Errorf("%s", expected)
		}
		return DiskShare{Percent: n}, nil
	}
	q, err := resource.ParseQuantity(value)
	if err != nil || q.Sign() < 0 || (lo > 0 && q.Sign() == 0) || q.MilliValue()%1000 != 0 {
		return DiskShare{}, fmt.Errorf("%s", expected)
	}
	return DiskShare{Bytes: q.Value()}, nil
}

func parseDiskShare(key, value string, lo int, errs *problems) DiskShare {
	s, err := ParseDiskShare(value, lo)
	if err != nil {
		errs.add(key, value, "%v", err)
	}
	return s
}
