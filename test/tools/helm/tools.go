//go:build tools

// Package tools pins Helm, built to lint, render and check charts/drillerd.
package tools

import _ "helm.sh/helm/v3/cmd/helm"
