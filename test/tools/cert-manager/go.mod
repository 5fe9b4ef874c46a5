// Pins cert-manager, whose Certificate CRD (deploy/crds) the chart's tests
// install to check charts/drillerd's Certificate against a real API server.
// Nothing here is built.
module github.com/drillerd/drillerd/test/tools/cert-manager

go 1.26.0

require github.com/cert-manager/cert-manager v1.21.2
