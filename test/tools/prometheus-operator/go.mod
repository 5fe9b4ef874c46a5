// Pins the Prometheus Operator whose CRDs (example/prometheus-operator-crd)
// the end-to-end tests install to check deploy/monitoring against a real API
// server. Nothing here is built.
module github.com/drillerd/drillerd/test/tools/prometheus-operator

go 1.26.0

require github.com/prometheus-operator/prometheus-operator v0.85.0
