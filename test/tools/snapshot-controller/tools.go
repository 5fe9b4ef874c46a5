//go:build tools

// Package tools pins the snapshot-controller built for the local test cluster.
package tools

import _ "github.com/kubernetes-csi/external-snapshotter/v8/cmd/snapshot-controller"
