package lazyfs

import (
	"strings"
	"testing"
)

func TestLazyMountsBelow(t *testing.T) {
	mountinfo := strings.Join([]string{
		`22 1 254:0 / / rw,relatime shared:1 - ext4 /dev/vda rw`,
		`40 22 0:50 / /work/clusters/a/node/csi/volumes/pvc-1 rw,nosuid,nodev,relatime shared:20 - fuse.drillerd-lazy pvc-1 rw,user_id=0,group_id=0,default_permissions,allow_other`,
		`41 22 0:51 / /work/clusters/a/node/csi/volumes/pvc\0402 rw,nosuid,nodev,relatime - fuse.drillerd-lazy pvc-2 rw,user_id=0,group_id=0`,
		`42 22 0:52 / /work/clusters/a/node/csi/volumes/other rw,relatime - fuse.sshfs host: rw`,
		`43 22 0:53 / /work/clusters/ab/node/csi/volumes/pvc-3 rw,relatime - fuse.drillerd-lazy pvc-3 rw`,
		`44 40 0:54 / /work/clusters/a/node/csi/volumes/pvc-1/deeper rw,relatime - fuse.drillerd-lazy pvc-4 rw`,
		`45 22 0:55 / /work/clusters/a rw,relatime - fuse.drillerd-lazy pvc-5 rw`,
	}, "\n")
	got, err := lazyMountsBelow(strings.NewReader(mountinfo), "/work/clusters/a")
	if err != nil {
		t.Fatal(err)
	}
	want := []string{
		"/work/clusters/a/node/csi/volumes/pvc-1/deeper",
		"/work/clusters/a/node/csi/volumes/pvc-1",
		"/work/clusters/a/node/csi/volumes/pvc 2",
		"/work/clusters/a",
	}
	if strings.Join(got, "|") != strings.Join(want, "|") {
		t.Errorf("mounts below /work/clusters/a:\n got %q\nwant %q (lazy volumes only, not /work/clusters/ab, deepest first)", got, want)
	}
}

func TestUnescapeMountinfo(t *testing.T) {
	tests := map[string]string{
		`/plain`:            "/plain",
		`/a\040b`:           "/a b",
		`/tab\011and\012nl`: "/tab\tand\nnl",
		`/back\134slash`:    `/back\slash`,
		`/end\040`:          "/end ",
		`/short\04`:         `/short\04`,
		`/not\999octal`:     `/not\999octal`,
	}
	for in, want := range tests {
		if got := unescapeMountinfo(in); got != want {
			t.Errorf("unescapeMountinfo(%q) = %q, want %q", in, got, want)
		}
	}
}
