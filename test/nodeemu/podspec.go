package nodeemu

import (
	"context"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// mount maps a path inside a container to a directory on this machine.
type mount struct {
	containerPath string
	hostPath      string
}

// mountTable translates container paths the way the container's mount
// namespace would: the longest mount path that contains the path wins; any
// other path lands in the container's own writable root.
type mountTable struct {
	mounts []mount // longest containerPath first
	rootfs string
}

func newMountTable(rootfs string, mounts []mount) mountTable {
	sort.Slice(mounts, func(i, j int) bool { return len(mounts[i].containerPath) > len(mounts[j].containerPath) })
	return mountTable{mounts: mounts, rootfs: rootfs}
}

func (t mountTable) hostPath(containerPath string) string {
	if p, ok := t.mountedPath(containerPath); ok {
		return p
	}
	return filepath.Join(t.rootfs, path.Clean("/"+containerPath))
}

// mountedPath translates a container path that lies on a mount.
func (t mountTable) mountedPath(containerPath string) (string, bool) {
	clean := path.Clean("/" + containerPath)
	for _, m := range t.mounts {
		if clean == m.containerPath {
			return m.hostPath, true
		}
		if strings.HasPrefix(clean, strings.TrimSuffix(m.containerPath, "/")+"/") {
			return filepath.Join(m.hostPath, strings.TrimPrefix(clean, m.containerPath)), true
		}
	}
	return "", false
}

// with returns a table with one more mount.
func (t mountTable) with(containerPath, hostPath string) mountTable {
	mounts := append(append([]mount(nil), t.mounts...), mount{containerPath: path.Clean(containerPath), hostPath: hostPath})
	return newMountTable(t.rootfs, mounts)
}

// translateArg rewrites absolute container paths in a server argument:
// "/etc/x.conf" and "key=/etc/x.conf" forms.
func (t mountTable) translateArg(arg string) string {
	if strings.HasPrefix(arg, "/") {
		return t.hostPath(arg)
	}
	if k, v, ok := strings.Cut(arg, "="); ok && strings.HasPrefix(v, "/") {
		return k + "=" + t.hostPath(v)
	}
	return arg
}

// resolveEnv computes a container's environment the way the kubelet does:
// envFrom first, then env in order, with $(VAR) references expanded.
func (e *Emulator) resolveEnv(ctx context.Context, pod *corev1.Pod, c *corev1.Container, podIP string) (map[string]string, error) {
	env := map[string]string{}
	for _, from := range c.EnvFrom {
		switch {
		case from.ConfigMapRef != nil:
			cm, err := e.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, from.ConfigMapRef.Name, metav1.GetOptions{})
			if err != nil {
				if ptrValue(from.ConfigMapRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("configmap %q not found", from.ConfigMapRef.Name)
			}
			for k, v := range cm.Data {
				env[from.Prefix+k] = v
			}
		case from.SecretRef != nil:
			s, err := e.client.CoreV1().Secrets(pod.Namespace).Get(ctx, from.SecretRef.Name, metav1.GetOptions{})
			if err != nil {
				if ptrValue(from.SecretRef.Optional) {
					continue
				}
				return nil, fmt.Errorf("secret %q not found", from.SecretRef.Name)
			}
			for k, v := range s.Data {
				env[from.Prefix+k] = string(v)
			}
		}
	}
	for _, v := range c.Env {
		if v.ValueFrom == nil {
			env[v.Name] = expand(v.Value, env)
			continue
		}
		value, ok, err := e.envValueFrom(ctx, pod, v.ValueFrom, podIP)
		if err != nil {
			return nil, err
		}
		if ok {
			env[v.Name] = value
		}
	}
	return env, nil
}

func (e *Emulator) envValueFrom(ctx context.Context, pod *corev1.Pod, from *corev1.EnvVarSource, podIP string) (string, bool, error) {
	switch {
	case from.SecretKeyRef != nil:
		ref := from.SecretKeyRef
		s, err := e.client.CoreV1().Secrets(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if ptrValue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("secret %q not found", ref.Name)
		}
		v, ok := s.Data[ref.Key]
		if !ok && !ptrValue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in Secret %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return string(v), ok, nil
	case from.ConfigMapKeyRef != nil:
		ref := from.ConfigMapKeyRef
		cm, err := e.client.CoreV1().ConfigMaps(pod.Namespace).Get(ctx, ref.Name, metav1.GetOptions{})
		if err != nil {
			if ptrValue(ref.Optional) {
				return "", false, nil
			}
			return "", false, fmt.Errorf("configmap %q not found", ref.Name)
		}
		v, ok := cm.Data[ref.Key]
		if !ok && !ptrValue(ref.Optional) {
			return "", false, fmt.Errorf("couldn't find key %s in ConfigMap %s/%s", ref.Key, pod.Namespace, ref.Name)
		}
		return v, ok, nil
	case from.FieldRef != nil:
		switch from.FieldRef.FieldPath {
		case "metadata.name":
			return pod.Name, true, nil
		case "metadata.namespace":
			return pod.Namespace, true, nil
		case "metadata.uid":
			return string(pod.UID), true, nil
		case "spec.nodeName":
			return pod.Spec.NodeName, true, nil
		case "spec.serviceAccountName":
			return pod.Spec.ServiceAccountName, true, nil
		case "status.podIP", "status.podIPs":
			return podIP, true, nil
		case "status.hostIP", "status.hostIPs":
			return hostIP, true, nil
		}
		return "", false, nil
	}
	return "", false, nil
}

// expand replaces $(VAR) with values from env; $$(VAR) escapes.
func expand(s string, env map[string]string) string {
	if !strings.Contains(s, "$(") {
		return s
	}
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '$' {
			b.WriteByte('$')
			i++
			continue
		}
		if s[i] == '$' && i+1 < len(s) && s[i+1] == '(' {
			if end := strings.IndexByte(s[i:], ')'); end > 0 {
				name := s[i+2 : i+end]
				if v, ok := env[name]; ok {
					b.WriteString(v)
					i += end
					continue
				}
			}
		}
		b.WriteByte(s[i])
	}
	return b.String()
}

// serverArgs returns the postgres server arguments of a container, or an
// error when its command is not the postgres image's entrypoint.
func serverArgs(c *corev1.Container, env map[string]string) ([]string, error) {
	argv := append(append([]string{}, c.Command...), c.Args...)
	for i := range argv {
		argv[i] = expand(argv[i], env)
	}
	if len(c.Command) > 0 {
		switch path.Base(c.Command[0]) {
		case "docker-entrypoint.sh", "postgres":
		default:
			return nil, fmt.Errorf("exec: %q: the node emulator runs only the postgres server (docker-entrypoint.sh or postgres)", c.Command[0])
		}
	}
	if len(argv) > 0 && path.Base(argv[0]) == "docker-entrypoint.sh" {
		argv = argv[1:]
	}
	if len(argv) > 0 && path.Base(argv[0]) == "postgres" {
		argv = argv[1:]
	}
	return argv, nil
}

// serverPort finds the port postgres will listen on: -p, -c port=, --port=,
// PGPORT, else 5432.
func serverPort(args []string, env map[string]string) int {
	port := 5432
	if v, err := strconv.Atoi(env["PGPORT"]); err == nil {
		port = v
	}
	for i, a := range args {
		var v string
		switch {
		case a == "-p" && i+1 < len(args):
			v = args[i+1]
		case strings.HasPrefix(a, "--port="):
			v = strings.TrimPrefix(a, "--port=")
		case strings.HasPrefix(a, "port="):
			v = strings.TrimPrefix(a, "port=")
		}
		if n, err := strconv.Atoi(v); err == nil {
			port = n
		}
	}
	return port
}

// Modes and owners of the files of ConfigMap, Secret and projected
// volumes, as the kubelet's volume plugins and its ownership change
// (pkg/volume/volume_linux.go) leave them.
const (
	// defaultFileMode is every such volume's defaultMode when unset.
	defaultFileMode = 0o644
	// readOnlyGroupMask is what an fsGroup adds to the mode of a file of
	// a read-only volume (the kubelet's roMask); directories also get
	// execute for the group and setgid.
	readOnlyGroupMask = 0o440
)

// fileVolume says how the kubelet writes a ConfigMap, Secret or projected
// volume: each file's mode is its item's mode, else the volume's
// defaultMode; the kubelet, running as root, owns every file and
// directory, and with an fsGroup gives them that group and group read
// (directories also group execute and setgid).
type fileVolume struct {
	defaultMode *int32
	fsGroup     *int64
}

// writeFiles materialises key→content as files in dir, honouring items
// (a key an item names that data lacks is skipped).
func (v fileVolume) writeFiles(dir string, data map[string][]byte, items []corev1.KeyToPath) error {
	if err := v.ensureDir(dir); err != nil {
		return err
	}
	mode := int32(defaultFileMode)
	if v.defaultMode != nil {
		mode = *v.defaultMode
	}
	write := func(name string, content []byte, itemMode *int32) error {
		p := filepath.Join(dir, filepath.Clean("/"+name))
		for d := filepath.Dir(p); d != dir && strings.HasPrefix(d, dir); d = filepath.Dir(d) {
			if err := v.ensureDir(d); err != nil {
				return err
			}
		}
		m := mode
		if itemMode != nil {
			m = *itemMode
		}
		if err := os.WriteFile(p, content, 0o600); err != nil {
			return err
		}
		return v.own(p, os.FileMode(m)&os.ModePerm)
	}
	if len(items) == 0 {
		for k, content := range data {
			if err := write(k, content, nil); err != nil {
				return err
			}
		}
		return nil
	}
	for _, item := range items {
		if content, ok := data[item.Key]; ok {
			if err := write(item.Path, content, item.Mode); err != nil {
				return err
			}
		}
	}
	return nil
}

// ensureDir makes a directory of the volume, mode 0755 and the kubelet's.
func (v fileVolume) ensureDir(dir string) error {
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return err
	}
	return v.own(dir, os.ModeDir|0o755)
}

// own gives a file or directory of the volume the kubelet's owner (root),
// its fsGroup if any, and mode with what the fsGroup adds.
func (v fileVolume) own(p string, mode os.FileMode) error {
	gid := 0
	if v.fsGroup != nil {
		gid = int(*v.fsGroup)
		mode |= readOnlyGroupMask
		if mode.IsDir() {
			mode |= os.ModeSetgid | 0o110
		}
	}
	if err := os.Lchown(p, 0, gid); err != nil {
		return err
	}
	return os.Chmod(p, mode&(os.ModePerm|os.ModeSetgid))
}

func stringMapBytes(m map[string]string) map[string][]byte {
	out := make(map[string][]byte, len(m))
	for k, v := range m {
		out[k] = []byte(v)
	}
	return out
}
