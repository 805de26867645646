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

// CheClusterCRD is the real CheCluster CRD the ecosystem publishes, read (not
// copied into the repository) from $KIP_CHECLUSTER_CRD, or else from
// shared/testdata beside the repository or beside one of its parent folders.
func CheClusterCRD() (string, error) {
	if path := os.Getenv("KIP_CHECLUSTER_CRD"); path != "" {
		if _, err := os.Stat(path); err != nil {
			return "", fmt.Errorf("KIP_CHECLUSTER_CRD: %w", err)
		}
		return path, nil
	}
	const rel = "shared/testdata/org.eclipse.che_checlusters.yaml"
	root := filepath.Clean(RepoFile("."))
	for dir := filepath.Dir(root); ; dir = filepath.Dir(dir) {
		path := filepath.Join(dir, rel)
		if _, err := os.Stat(path); err == nil {
			return path, nil
		}
		if dir == filepath.Dir(dir) {
			return "", fmt.Errorf("the real CheCluster CRD is not in %s beside %s or any parent folder; set KIP_CHECLUSTER_CRD to its path", rel, root)
		}
	}
}
