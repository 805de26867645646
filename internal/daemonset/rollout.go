package daemonset

import appsv1 "k8s.io/api/apps/v1"

// RolledOut tells whether every node the DaemonSet selects runs its current
// pod template with every container ready: each sleeping container runs
// only once its image is on the node, so the DaemonSet then holds every
// image on every node it selects.
func RolledOut(ds *appsv1.DaemonSet) bool {
	st := ds.Status
	return st.ObservedGeneration >= ds.Generation &&
		st.UpdatedNumberScheduled == st.DesiredNumberScheduled &&
		st.NumberReady == st.DesiredNumberScheduled &&
		st.NumberUnavailable == 0
}
