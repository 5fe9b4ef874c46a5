// Package localcluster runs a small but real Kubernetes cluster on this
// machine for drillerd's end-to-end tests and demo.
//
// # Design
//
// Real where drillerd touches it: etcd, kube-apiserver, kube-controller-manager,
// kube-scheduler and the external-snapshotter snapshot-controller run as child
// processes built from their published Go modules (test/tools). Emulated only
// where nothing real can run without a container engine: the node emulator
// (package nodeemu) plays the kubelet of one Node and a hostpath CSI driver.
//
// Everything lives in one state directory:
//
//	kubeconfig        admin kubeconfig (client certificate, group system:masters)
//	cluster.json      ports, pid and paths of the running cluster; written when ready
//	control.sock      where StopComponent and StartComponent reach the process that runs it
//	pki/              CA, serving and client certificates, service-account key
//	etcd/             etcd data
//	logs/             one log per component, audit.log (JSON, level Metadata;
//	                  RequestResponse for the status writes of VolumeSnapshots)
//	node/             the node emulator's volumes, snapshots, pods and ground truth
//
// Start brings a fresh cluster up and returns when it can run pods; Stop
// stops every process it started. StopComponent and StartComponent stop a
// control-plane component and start it again with the same flags, ports
// and certificates, for outage tests (`localcluster stop-component`). Acquire gives a test binary a cluster:
// the running one a developer started with `make cluster-up`, or a private
// one it stops again at the end.
package localcluster
