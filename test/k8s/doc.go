// Package k8s holds Bulwark's end-to-end tests on a real single-node
// Kubernetes (test/k8s/up.sh: etcd, kube-apiserver, controller-manager,
// scheduler and a kubelet on the e2e containerd). Bulwark runs as the
// DaemonSet of install/kubernetes; the tests drive the cluster with the
// built kubectl. Without a cluster (BULWARK_KUBECONFIG unset) they skip.
// test/k8s/run.sh (make k8s-e2e) brings the cluster up, runs them and
// tears it down.
package k8s
