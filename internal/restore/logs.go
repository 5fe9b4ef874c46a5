package restore

import (
	"context"
	"fmt"
	"io"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/ptr"
)

// What drillerd reads of a database's log when it does not start: its last
// DatabaseLogLines lines, at most DatabaseLogBytes of them. PostgreSQL says
// why it stops in its last lines; a server that never answers repeats why
// to each connection.
const (
	DatabaseLogLines = 50
	DatabaseLogBytes = 16 * 1024
)

// LogReader reads the end of the database container's log.
type LogReader interface {
	// DatabaseLog returns the last lines of the database container's log
	// in the sandbox namespace, of its previous run with previous.
	DatabaseLog(ctx context.Context, namespace string, previous bool) (string, error)
}

// PodLogs reads container logs through the API server's pods/log
// subresource (RBAC: get pods/log), which asks the node's kubelet.
type PodLogs struct {
	Client kubernetes.Interface
}

// DatabaseLog reads the last DatabaseLogLines lines of the database
// container's log, at most DatabaseLogBytes.
func (l PodLogs) DatabaseLog(ctx context.Context, namespace string, previous bool) (string, error) {
	req := l.Client.CoreV1().Pods(namespace).GetLogs(DatabasePodName, &corev1.PodLogOptions{
		Container:  DatabaseContainerName,
		TailLines:  ptr.To(int64(DatabaseLogLines)),
		LimitBytes: ptr.To(int64(DatabaseLogBytes)),
		Previous:   previous,
	})
	stream, err := req.Stream(ctx)
	if err != nil {
		return "", fmt.Errorf("while reading the log of pod %s/%s: %w", namespace, DatabasePodName, err)
	}
	defer stream.Close()
	// limitBytes is the kubelet's to keep; drillerd keeps it too.
	data, err := io.ReadAll(io.LimitReader(stream, DatabaseLogBytes))
	if err != nil {
		return "", fmt.Errorf("while reading the log of pod %s/%s: %w", namespace, DatabasePodName, err)
	}
	return string(data), nil
}
