// Package v1alpha1 is the drills.drillerd.dev/v1alpha1 API: RestoreDrill,
// the plan for proving that a database can be restored from its latest
// VolumeSnapshot, and DrillRun, one execution of that plan.
//
// +kubebuilder:object:generate=true
// +groupName=drills.drillerd.dev
package v1alpha1

import (
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/controller-runtime/pkg/scheme"
)

var (
	// GroupVersion is the API group and version of drillerd's resources.
	GroupVersion = schema.GroupVersion{Group: "drills.drillerd.dev", Version: "v1alpha1"}

	// SchemeBuilder registers the types with a runtime.Scheme.
	SchemeBuilder = &scheme.Builder{GroupVersion: GroupVersion}

	// AddToScheme adds the types of this group-version to a scheme.
	AddToScheme = SchemeBuilder.AddToScheme
)
