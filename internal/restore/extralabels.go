package restore

import (
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/apimachinery/pkg/util/validation"
)

// reservedLabelPrefixes are the label keys a cluster's own labels may not
// use on sandbox objects: drillerd's ownership labels decide what it may
// delete, and a Pod Security label would change what the sandbox's pod
// may do (the admission policy refuses any but enforce=baseline or
// restricted).
var reservedLabelPrefixes = []string{"drills.drillerd.dev/", "pod-security.kubernetes.io/"}

// reservedLabels are reserved keys outside those prefixes.
var reservedLabels = []string{LabelManagedBy, "kubernetes.io/metadata.name"}

// CheckExtraLabels refuses labels that cannot be added to every sandbox
// object (Sandbox.ExtraLabels): a key or value Kubernetes would refuse, or
// a key drillerd or Pod Security owns. The error names the first bad label
// and why.
func CheckExtraLabels(labels map[string]string) error {
	for _, k := range slices.Sorted(maps.Keys(labels)) {
		if errs := validation.IsQualifiedName(k); len(errs) > 0 {
			return fmt.Errorf("label key %q: %s", k, strings.Join(errs, "; "))
		}
		if errs := validation.IsValidLabelValue(labels[k]); len(errs) > 0 {
			return fmt.Errorf("label %s=%q: %s", k, labels[k], strings.Join(errs, "; "))
		}
		if slices.Contains(reservedLabels, k) || slices.ContainsFunc(reservedLabelPrefixes, func(p string) bool { return strings.HasPrefix(k, p) }) {
			return errors.New("label key " + k + " is drillerd's or Pod Security's own on sandbox objects; choose another key")
		}
	}
	return nil
}
