package testenv

import (
	"fmt"
	"os"
	"path/filepath"
	"runtime"
)

// RepoFile is the path of a file of this repository, from its root.
func RepoFile(rel string) string {
	_, here, _, _ := runtime.Caller(0)
	return filepath.Join(filepath.Dir(here), "..", "..", rel)
}

// CheClusterCRD is the real CheCluster CRD the ecosystem publishes, read from
// ../shared/testdata next to the repository (not copied into it), or from
// $KIP_CHECLUSTER_CRD.
func CheClusterCRD() (string, error) {
	path := os.Getenv("KIP_CHECLUSTER_CRD")
	if path == "" {
		path = RepoFile("../shared/testdata/org.eclipse.che_checlusters.yaml")
	}
	if _, err := os.Stat(path); err != nil {
		return "", fmt.Errorf("the CheCluster CRD: %w (set KIP_CHECLUSTER_CRD to its path)", err)
	}
	return filepath.Clean(path), nil
}
