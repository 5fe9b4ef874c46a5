package rto

import (
	"time"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// metaTime keeps microsecond precision: phase timings feed the RTO.
func metaTime(t time.Time) metav1.MicroTime { return metav1.NewMicroTime(t) }
