package drill_test

import (
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	storagev1 "k8s.io/api/storage/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu"
	"github.com/drillerd/drillerd/test/nodeemu/csistore"
	"github.com/drillerd/drillerd/test/nodeemu/lazyfs"
)

// Restores onto storage that hydrates lazily, as a cloud disk restored
// from a snapshot does: the claim binds at once, and each block is fetched
// from the snapshot the first time it is read, slowly. The RTO drillerd
// reports must include that: its checks read every page of the copy's
// tables and indexes, so the database has really served its data before
// the clock stops, not merely bound its volume.

const (
	// lazyClass restores volumes lazily at lazyBytesPerSecond.
	lazyClass = "hostpath-lazy"
	// lazyBytesPerSecond is slow enough that fetching what the checks
	// read takes seconds: most of the RTO.
	lazyBytesPerSecond = 4 << 20
	// lazyOrders is how many rows of ~100 bytes the orders table has
	// (about 20 MB with its two indexes).
	lazyOrders = 150000
	// lazyDocuments is how many rows of ~19 kB the TOAST-heavy table has.
	lazyDocuments = 100
)

// lazyRelation is a relation of the source's app database, as the source
// said before the cut.
type lazyRelation struct {
	name  string
	file  string // relative to PGDATA
	bytes int64
}

func TestLazilyHydratedRestore(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	if err := lazyfs.Available(); err != nil {
		t.Fatalf("the node emulator mounts lazily hydrated volumes with FUSE on this machine: %v", err)
	}
	env := fixture.New(t, cluster)
	ensureLazyClass(t, env)

	cl := drillClient(t, env)
	ns := env.Namespace("lazy")
	pg := fixture.NewPostgres(ns, "shop").WithImage(corpusImage)
	sts := pg.Result()
	db := &sts.Spec.Template.Spec.Containers[0]
	db.Env = append(db.Env, corev1.EnvVar{Name: "POSTGRES_INITDB_ARGS", Value: "--data-checksums"})
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(env.Ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	p := &production{env: env, ns: ns, pg: pg, c: cl}
	conn := env.Connect(env.WaitPodReady(ns, pg.PodName()))
	for _, sql := range []string{
		`CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, note text NOT NULL, created_at timestamptz NOT NULL)`,
		fmt.Sprintf(`INSERT INTO orders (customer, note, created_at)
		 SELECT g %% 500 + 1, 'order ' || g || ' ' || repeat('x', 40), now() - (%d - g) * interval '1 second' FROM generate_series(1, %d) g`, lazyOrders+1, lazyOrders),
		`CREATE INDEX orders_created_at ON orders (created_at)`,
		`CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text NOT NULL)`,
		`ALTER TABLE documents ALTER body SET STORAGE EXTERNAL`,
		fmt.Sprintf(`INSERT INTO documents (title, body)
		 SELECT 'document ' || g, (SELECT string_agg(md5(g || ':' || h), '') FROM generate_series(1, 600) h) FROM generate_series(1, %d) g`, lazyDocuments),
		// Hint bits set and everything in the relation files: the copy
		// reads what the source wrote, and a damaged page stays damaged.
		`VACUUM ANALYZE`,
		`CHECKPOINT`,
	} {
		env.Exec(conn, sql)
	}
	relations := lookUpUserRelations(t, env, conn)
	orders := env.LookUpRelation(conn, "public.orders")
	good := env.CreateSnapshot(ns, "good", pg.ClaimName(), nil)
	damaged := env.CreateSnapshot(ns, "damaged", pg.ClaimName(), nil)
	damagedBlock := orders.Pages / 2
	if err := fixture.DamagePage(filepath.Join(env.PhysicalSnapshot(damaged), "pgdata"), orders, damagedBlock); err != nil {
		t.Fatal(err)
	}

	newDrill := func(name string) *drill {
		return p.newDrill(name).image(corpusImage).
			check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Equals: ptr.To(strconv.Itoa(lazyOrders))}).
			builtin(drillsv1.BuiltinTablesReadable).
			builtin(drillsv1.BuiltinAmcheck).
			freshness("SELECT max(created_at) FROM orders").
			targets(15*time.Minute, 26*time.Hour).
			storageClass(lazyClass)
	}

	t.Run("a good copy passes, and the RTO covers fetching its data", func(t *testing.T) {
		run, code := p.run(t, newDrill("lazy-good"), "--snapshot", "good")
		if code != 0 || run.Status.Result != drillsv1.ResultSucceeded {
			t.Fatalf("exit %d, %s/%s: %s; want Succeeded", code, run.Status.Result, run.Status.Reason, run.Status.Message)
		}
		if run.Status.Database == nil || run.Status.Database.WriteAcceptedTime == nil {
			t.Fatalf("status.database %+v does not say when the write was accepted", run.Status.Database)
		}
		accepted := run.Status.Database.WriteAcceptedTime.Time
		volume := lazyVolumeTruth(t, env, run, good)
		h := volume.Hydration
		bound, ok := phaseEnd(run, drillsv1.PhaseRestoringVolume)
		if !ok {
			t.Fatalf("no RestoringVolume phase in %+v", run.Status.Phases)
		}

		// The checks read every page of the copy's tables and indexes
		// before the RTO ended: each relation file was fetched whole
		// from the snapshot before the write was accepted.
		files := map[string]lazyfs.FileStats{}
		for _, f := range h.Files {
			files[f.Path] = f
		}
		var relationBytes int64
		var hydrated time.Time
		for _, rel := range relations {
			f, ok := files[filepath.Join("pgdata", rel.file)]
			if !ok {
				t.Errorf("%s (%s, %d bytes) was not restored lazily", rel.name, rel.file, rel.bytes)
				continue
			}
			relationBytes += f.Size
			if f.FetchedBytes != f.Size || f.Hydrated.IsZero() {
				t.Errorf("%s (%s): %d of %d bytes fetched from the snapshot, %d pending: the checks did not read all of it", rel.name, f.Path, f.FetchedBytes, f.Size, f.PendingBytes)
				continue
			}
			if f.Hydrated.Truncate(time.Microsecond).After(accepted) {
				t.Errorf("%s was fetched in full at %s, after the write was accepted at %s: the RTO ended before the data was read", rel.name, f.Hydrated.Format(time.StampMicro), accepted.Format(time.StampMicro))
			}
			if f.Hydrated.After(hydrated) {
				hydrated = f.Hydrated
			}
		}
		if h.FetchedBytes < relationBytes {
			t.Errorf("%d bytes fetched from the snapshot, fewer than the %d bytes of the copy's tables and indexes", h.FetchedBytes, relationBytes)
		}
		// The claim bound before its data was there: the volume phase
		// did not wait for a copy.
		if !bound.Before(hydrated) {
			t.Errorf("the volume phase ended at %s, after the tables were fetched (%s): the volume was not restored lazily", bound.Format(time.StampMicro), hydrated.Format(time.StampMicro))
		}
		// And so the RTO is at least the time from the restore's start to
		// the data being there.
		span := hydrated.Sub(volume.ProvisionStarted)
		if run.Status.RTO == nil || run.Status.RTO.Seconds < float64(span.Milliseconds())/1000 {
			t.Errorf("RTO %+v is shorter than the %.3fs from the start of the restore to the tables fetched", run.Status.RTO, span.Seconds())
		}

		provisioning, _ := phaseStart(run, drillsv1.PhaseProvisioning)
		t.Logf("lazily hydrated restore at %d MiB/s in blocks of %d KiB: RTO %.2fs; volume bound %.2fs after provisioning began; "+
			"tables and indexes (%.1f MiB) fetched by %.2fs; %.1f of %.1f MiB fetched in all (first at %.2fs, last at %.2fs), %.1f MiB read",
			h.BytesPerSecond>>20, h.BlockSize>>10, run.Status.RTO.Seconds, bound.Sub(provisioning).Seconds(),
			mib(relationBytes), hydrated.Sub(provisioning).Seconds(), mib(h.FetchedBytes), mib(h.LazyBytes),
			h.FirstFetch.Sub(provisioning).Seconds(), h.LastFetch.Sub(provisioning).Seconds(), mib(h.ReadBytes))
	})

	t.Run("a damaged copy is caught", func(t *testing.T) {
		run, code := p.run(t, newDrill("lazy-damaged"), "--snapshot", "damaged")
		if code != 1 || run.Status.Result != drillsv1.ResultFailed || run.Status.Reason != "DataDamaged" {
			t.Fatalf("exit %d, %s/%s: %s; want Failed/DataDamaged", code, run.Status.Result, run.Status.Reason, run.Status.Message)
		}
		invalid := fmt.Sprintf("invalid page in block %d of relation %s", damagedBlock, orders.File)
		for _, want := range []string{"public.orders", "database app", invalid} {
			if !strings.Contains(run.Status.Message, want) {
				t.Errorf("the message does not name %q: %s", want, run.Status.Message)
			}
		}
		h := lazyVolumeTruth(t, env, run, damaged).Hydration
		for _, f := range h.Files {
			if f.Path == filepath.Join("pgdata", orders.File) && f.FetchedBytes <= damagedBlock*orders.BlockSize {
				t.Errorf("only %d bytes of orders were fetched: the damaged block %d was never read", f.FetchedBytes, damagedBlock)
			}
		}
	})
}

// ensureLazyClass creates the StorageClass whose volumes restore lazily.
func ensureLazyClass(t *testing.T, env *fixture.Env) {
	binding := storagev1.VolumeBindingWaitForFirstConsumer
	sc := &storagev1.StorageClass{
		ObjectMeta:        metav1.ObjectMeta{Name: lazyClass},
		Provisioner:       nodeemu.DriverName,
		ReclaimPolicy:     ptr.To(corev1.PersistentVolumeReclaimDelete),
		VolumeBindingMode: &binding,
		Parameters:        map[string]string{nodeemu.ParameterHydrateBytesPerSecond: strconv.Itoa(lazyBytesPerSecond)},
	}
	if _, err := env.Client.StorageV1().StorageClasses().Create(env.Ctx, sc, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatal(err)
	}
}

// lookUpUserRelations lists the tables and indexes of schema public in
// the database of conn, and their TOAST tables: the main fork's file and
// size of each that has data. These are what the built-in checks read
// page by page (TablesReadable and verify_heapam every table and its
// TOAST, bt_index_check every index). A TOAST table's own index is only
// looked up, where values are, and is left out.
func lookUpUserRelations(t *testing.T, env *fixture.Env, conn *pgx.Conn) []lazyRelation {
	t.Helper()
	rows, err := conn.Query(env.Ctx, `
WITH relations AS (
  SELECT c.oid, c.reltoastrelid FROM pg_catalog.pg_class c JOIN pg_catalog.pg_namespace n ON n.oid = c.relnamespace
  WHERE n.nspname = 'public' AND c.relkind IN ('r', 'i'))
SELECT oid::regclass::text, pg_catalog.pg_relation_filepath(oid), pg_catalog.pg_relation_size(oid)
FROM (SELECT oid FROM relations UNION ALL SELECT reltoastrelid FROM relations WHERE reltoastrelid <> 0) r
WHERE pg_catalog.pg_relation_size(oid) > 0
ORDER BY 1`)
	if err != nil {
		t.Fatalf("listing the source's relations: %v", err)
	}
	var out []lazyRelation
	for rows.Next() {
		var r lazyRelation
		if err := rows.Scan(&r.name, &r.file, &r.bytes); err != nil {
			t.Fatal(err)
		}
		out = append(out, r)
	}
	if err := rows.Err(); err != nil {
		t.Fatal(err)
	}
	if len(out) == 0 {
		t.Fatal("the source's app database has no relations with data")
	}
	return out
}

// lazyVolumeTruth reads the ground truth of the volume a run restored from
// snap, and checks that it was restored lazily, copying nothing, and is
// unmounted now that it is deleted.
func lazyVolumeTruth(t *testing.T, env *fixture.Env, run *drillsv1.DrillRun, snap *snapshotv1.VolumeSnapshot) nodeemu.VolumeTruth {
	t.Helper()
	pv := restoredPV(t, env, run)
	v, err := nodeemu.ReadVolumeTruth(cluster.GroundTruth, pv)
	if err != nil {
		t.Fatal(err)
	}
	h := v.Hydration
	if h == nil {
		t.Fatalf("volume %s was copied in full, not restored lazily (StorageClass %s)", pv, lazyClass)
	}
	store, err := csistore.Open(cluster.CSIStore)
	if err != nil {
		t.Fatal(err)
	}
	handle := ptr.Deref(env.Content(snap).Status.SnapshotHandle, "")
	physical, ok, err := store.GetSnapshot(handle)
	if err != nil || !ok {
		t.Fatalf("physical snapshot %s of %s: %v %v", handle, snap.Name, ok, err)
	}
	if h.LazyBytes != physical.SizeBytes {
		t.Errorf("the volume started with %d bytes to fetch, the snapshot holds %d: the restore copied data", h.LazyBytes, physical.SizeBytes)
	}
	if h.Unmounted.IsZero() {
		t.Errorf("volume %s is deleted, its ground truth does not say it was unmounted", pv)
	}
	if left, err := lazyfs.MountsBelow(filepath.Join(cluster.CSIStore, "volumes", pv)); err != nil || len(left) > 0 {
		t.Errorf("volume %s is deleted and still mounted: %v %v", pv, left, err)
	}
	return v
}

// phaseEnd is when a run's phase ended.
func phaseEnd(run *drillsv1.DrillRun, name drillsv1.Phase) (time.Time, bool) {
	for _, p := range run.Status.Phases {
		if p.Name == name && p.EndTime != nil {
			return p.EndTime.Time, true
		}
	}
	return time.Time{}, false
}

func mib(n int64) float64 { return float64(n) / (1 << 20) }
