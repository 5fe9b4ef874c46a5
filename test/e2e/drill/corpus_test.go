package drill_test

import (
	"context"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/jackc/pgx/v5"
	snapshotv1 "github.com/kubernetes-csi/external-snapshotter/client/v8/apis/volumesnapshot/v1"
	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/meta"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/utils/ptr"
	"sigs.k8s.io/controller-runtime/pkg/client"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
	"github.com/drillerd/drillerd/internal/report"
	"github.com/drillerd/drillerd/internal/restore"
	"github.com/drillerd/drillerd/test/fixture"
	"github.com/drillerd/drillerd/test/nodeemu/pgproc"
)

// The broken-backup corpus: one production database, one VolumeSnapshot per
// kind of damage, each snapshot's physical copy damaged in the emulated CSI
// store (or the source changed right before the cut), and two drills of
// each: one with no checks at all (the built-ins TablesReadable and
// Amcheck), one with SQL checks plus both built-ins named explicitly.
// Neither may pass; each must say what is wrong in the words the README
// promises. The same two drills pass on the undamaged snapshot. It is this
// package's longest test: make test runs it alone on a local cluster of its
// own, beside the rest (test/suites.sh).

const (
	// corpusImage is the image every drill of the corpus runs: the major
	// version of the machine's PostgreSQL, which the production database
	// runs too.
	corpusImage = "postgres:15"
	// corpusParallelDrills is how many `drillerd run`s are under way at
	// once: drillerd serve's --max-concurrent-drills (4 in this package)
	// and two more waiting in Pending, so that a slot freed by a finished
	// run is taken while the test checks that run's sandbox and source.
	corpusParallelDrills = 6
	// corpusOrders is how many rows the orders table has at the cut.
	corpusOrders = 20000
	// corpusDocuments is how many rows of ~19 kB the TOAST-heavy table has.
	corpusDocuments = 200
	// corpusItems is how many rows the second database's table has.
	corpusItems = 5000
	// corpusScans is how many bytea values of 9,600 bytes the second
	// database holds in TOAST.
	corpusScans = 100
	// truncatedPages is what a truncated heap keeps.
	truncatedPages = 3
	// reinitClockSkew is freshness.clockSkew of the drills of the
	// re-initialised copy: the copy is initialised seconds after the cut,
	// and the cluster, the storage and drillerd share one clock here.
	reinitClockSkew = time.Second
	// futureRPOTarget is an RPO target a snapshot misses as soon as it is
	// this old.
	futureRPOTarget = time.Second
	// standbyDatabaseTimeout is timeouts.database of the drills of the
	// standby that never answers, and standbyKeepOnFailure how long their
	// sandboxes are kept.
	standbyDatabaseTimeout = 30 * time.Second
	standbyKeepOnFailure   = time.Minute
)

// Named timeouts of the corpus.
var (
	// corpusRunTimeout bounds one `drillerd run`.
	corpusRunTimeout = fixture.Scaled(5 * time.Minute)
)

// corpus is the production database the corpus damages backups of, and
// what its source said before the cuts.
type corpus struct {
	*production
	app       *pgx.Conn // the source's app database
	inventory *pgx.Conn // the source's second database

	sourceID      string // pg_control_system().system_identifier of the source
	orders        fixture.Relation
	ordersByTime  fixture.Relation // the btree index on orders.created_at
	documentsOut  fixture.Relation // the TOAST relation of documents
	inventoryDir  string           // base/<oid> of database inventory
	items         fixture.Relation // inventory's table, read as text
	scansOut      fixture.Relation // the TOAST relation of inventory's scans, bytea
	ordersTuples  int64            // pg_class.reltuples of orders at the cut
	ordersPages   int64            // pg_class.relpages of orders at the cut
	truncatedRows int64            // rows in orders' first truncatedPages pages
	shrunkRows    int64            // rows of orders in the "shrunk" snapshot

	snapshots map[string]*snapshotv1.VolumeSnapshot
}

// variant is one of the two drills every kind runs.
type variant string

const (
	// builtinsOnly has no checks: drillerd runs TablesReadable and Amcheck.
	builtinsOnly variant = "builtins"
	// withSQL has SQL checks on orders and documents, then TablesReadable
	// and Amcheck named explicitly.
	withSQL variant = "sql"
)

var variants = []variant{builtinsOnly, withSQL}

// checkWant is what a run's status.checks must hold for one check in one
// database.
type checkWant struct {
	name, database string
	passed         bool
	reason         string // the failed built-in's finding: DataMissing, DataDamaged
}

// verdictWant is what a drill of a kind must conclude.
type verdictWant struct {
	result drillsv1.RunResult
	reason string
	// names are what the message must contain (the relation, the
	// database, PostgreSQL's words); patterns are regular expressions it
	// must match (numbers as whole words).
	names    []string
	patterns []string
	// sqlNames are what the message of the withSQL drill must contain
	// besides.
	sqlNames []string
	checks   []checkWant
	// extra checks more of the run.
	extra func(t *testing.T, c *corpus, run *drillsv1.DrillRun)
}

// damageKind is a row of the corpus.
type damageKind struct {
	name     string // the subtest
	short    string // the drills' names start with it
	snapshot string // the VolumeSnapshot the drills restore
	// damage is done to the physical copy of the snapshot's PGDATA once it
	// is ready; nil when the damage was done to the source before the cut.
	damage func(t *testing.T, c *corpus, pgdata string)
	// spec adds to both drills (freshness, targets).
	spec func(*drill)
	// baseline, when set, is a snapshot each drill restores first and must
	// pass on, so that the drill's status.baseline holds what it read.
	baseline string
	want     verdictWant
}

// TestBrokenBackupCorpus proves drillerd never passes a broken backup: it
// runs two drills on each kind of damaged snapshot and asserts the verdict,
// its reason and what the message names; the same drills on the undamaged
// snapshot succeed. Every run leaves no sandbox and no changed source object.
func TestBrokenBackupCorpus(t *testing.T) {
	if testing.Short() {
		t.Skip("end-to-end test: needs the local cluster")
	}
	started := time.Now()
	env := fixture.New(t, cluster)
	c := setUpCorpus(t, env)
	kinds := c.kinds()
	c.cutAndDamage(t, kinds)
	t.Logf("corpus: production and %d snapshots ready, damaged in %s", len(c.snapshots), time.Since(started).Round(time.Second))

	t.Run("drills", func(t *testing.T) {
		q := newDrillQueue(kinds)
		var wg sync.WaitGroup
		for _, k := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				t.Run(k.name, func(t *testing.T) { c.drillKind(t, k, q) })
			}()
		}
		wg.Wait()
	})

	// The production database is as it was: the damage was to copies.
	if n := env.QueryInt(c.app, "SELECT count(*) FROM orders"); n != c.shrunkRows {
		t.Errorf("the source has %d orders, want %d", n, c.shrunkRows)
	}
	if n := env.QueryInt(c.inventory, "SELECT count(*) FROM items"); n != corpusItems {
		t.Errorf("the source's inventory has %d items, want %d", n, corpusItems)
	}
	t.Logf("corpus: %d kinds, %d drills in %s", len(kinds), 2*len(kinds), time.Since(started).Round(time.Second))
}

// setUpCorpus starts the production database with data checksums and
// fills it: orders (20000 rows, a primary key and an index on created_at),
// documents (values stored out of line in TOAST), and a second database
// with a table TablesReadable reads as text and a table of bytea values
// stored in TOAST.
func setUpCorpus(t *testing.T, env *fixture.Env) *corpus {
	cl := drillClient(t, env)
	ns := env.Namespace("corpus")
	pg := fixture.NewPostgres(ns, "shop").WithImage(corpusImage)
	sts := pg.Result()
	db := &sts.Spec.Template.Spec.Containers[0]
	db.Env = append(db.Env, corev1.EnvVar{Name: "POSTGRES_INITDB_ARGS", Value: "--data-checksums"})
	if _, err := env.Client.AppsV1().StatefulSets(ns).Create(env.Ctx, sts, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	pod := env.WaitPodReady(ns, pg.PodName())
	c := &corpus{production: &production{env: env, ns: ns, pg: pg, c: cl}, snapshots: map[string]*snapshotv1.VolumeSnapshot{}}
	c.app = env.Connect(pod)
	var checksums string
	if err := c.app.QueryRow(env.Ctx, "SELECT current_setting('data_checksums'), system_identifier::text FROM pg_control_system()").Scan(&checksums, &c.sourceID); err != nil || checksums != "on" {
		t.Fatalf("the production database has data_checksums %q (%v): want on", checksums, err)
	}
	for _, sql := range []string{
		`CREATE TABLE orders (id bigserial PRIMARY KEY, customer int NOT NULL, note text NOT NULL, created_at timestamptz NOT NULL)`,
		`CREATE INDEX orders_created_at ON orders (created_at)`,
		fmt.Sprintf(`INSERT INTO orders (customer, note, created_at)
		 SELECT g %% 500 + 1, 'order ' || g, now() - (%d - g) * interval '1 second' FROM generate_series(1, %d) g`, corpusOrders+1, corpusOrders),
		`CREATE TABLE documents (id serial PRIMARY KEY, title text NOT NULL, body text NOT NULL)`,
		// Stored out of line and uncompressed: 10 TOAST chunks a row.
		`ALTER TABLE documents ALTER body SET STORAGE EXTERNAL`,
		fmt.Sprintf(`INSERT INTO documents (title, body)
		 SELECT 'document ' || g, (SELECT string_agg(md5(g || ':' || h), '') FROM generate_series(1, 600) h) FROM generate_series(1, %d) g`, corpusDocuments),
		`CREATE DATABASE inventory`,
	} {
		env.Exec(c.app, sql)
	}
	c.inventory = connectTo(t, env, pod, "inventory")
	// aclitem has no binary form: TablesReadable reads items, with its
	// array of them, as text.
	env.Exec(c.inventory, `CREATE TABLE items (id serial PRIMARY KEY, name text NOT NULL, owners aclitem[] NOT NULL DEFAULT ARRAY[makeaclitem(10, 10, 'SELECT', false)])`)
	env.Exec(c.inventory, fmt.Sprintf(`INSERT INTO items (name) SELECT 'item ' || g FROM generate_series(1, %d) g`, corpusItems))
	// Stored out of line and uncompressed: 5 TOAST chunks a row.
	env.Exec(c.inventory, `CREATE TABLE scans (id serial PRIMARY KEY, image bytea NOT NULL)`)
	env.Exec(c.inventory, `ALTER TABLE scans ALTER image SET STORAGE EXTERNAL`)
	env.Exec(c.inventory, fmt.Sprintf(`INSERT INTO scans (image)
	 SELECT (SELECT decode(string_agg(md5(g || ':' || h), ''), 'hex') FROM generate_series(1, 600) h) FROM generate_series(1, %d) g`, corpusScans))
	// The catalog knows what each table holds (as autovacuum would soon
	// make it), and every hint bit is set, so that reading a table after
	// the checkpoint writes no WAL that would repair the damage on replay.
	env.Exec(c.app, "VACUUM ANALYZE")
	env.Exec(c.inventory, "VACUUM ANALYZE")

	c.orders = env.LookUpRelation(c.app, "public.orders")
	c.ordersByTime = env.LookUpRelation(c.app, "public.orders_created_at")
	c.documentsOut = env.LookUpToast(c.app, "public.documents")
	c.inventoryDir = env.LookUpDatabaseDir(c.app, "inventory")
	c.items = env.LookUpRelation(c.inventory, "public.items")
	c.scansOut = env.LookUpToast(c.inventory, "public.scans")
	c.ordersTuples = env.QueryInt(c.app, "SELECT reltuples::int8 FROM pg_class WHERE oid = 'public.orders'::regclass")
	c.ordersPages = env.QueryInt(c.app, "SELECT relpages::int8 FROM pg_class WHERE oid = 'public.orders'::regclass")
	c.truncatedRows = env.QueryInt(c.app, fmt.Sprintf("SELECT count(*) FROM orders WHERE (ctid::text::point)[0] < %d", truncatedPages))
	if c.ordersTuples != corpusOrders || c.ordersPages != c.orders.Pages || c.ordersPages < 8*truncatedPages {
		t.Fatalf("orders: reltuples %d, relpages %d, %d pages on disk: the catalog does not describe the table", c.ordersTuples, c.ordersPages, c.orders.Pages)
	}
	t.Logf("source %s: orders %s (%d pages), its index %s, documents' TOAST %s (%d pages), inventory %s",
		c.sourceID, c.orders.File, c.orders.Pages, c.ordersByTime.File, c.documentsOut.File, c.documentsOut.Pages, c.inventoryDir)
	return c
}

// connectTo opens a connection to database name of the fixture pod.
func connectTo(t *testing.T, env *fixture.Env, pod *corev1.Pod, name string) *pgx.Conn {
	t.Helper()
	dsn := fmt.Sprintf("postgres://%s:%s@%s/%s?sslmode=disable&connect_timeout=10",
		fixture.DBUser, fixture.DBPassword, net.JoinHostPort(pod.Status.PodIP, "5432"), name)
	conn, err := pgx.Connect(env.Ctx, dsn)
	if err != nil {
		t.Fatalf("connecting to database %s: %v", name, err)
	}
	t.Cleanup(func() { conn.Close(context.Background()) })
	return conn
}

// cutAndDamage cuts the snapshots of every kind, damages their physical
// copies, and changes the source between the cuts where a kind needs it.
func (c *corpus) cutAndDamage(t *testing.T, kinds []damageKind) {
	env := c.env
	// Everything written so far is in the relation files: WAL replay on a
	// copy has nothing to repair the damage with.
	env.Exec(c.app, "CHECKPOINT")
	var names []string
	seen := map[string]bool{"future-row": true, "shrunk": true}
	for _, k := range kinds {
		for _, s := range []string{k.baseline, k.snapshot} {
			if s != "" && !seen[s] {
				seen[s] = true
				names = append(names, s)
			}
		}
	}
	c.cut(t, names...)

	// A row dated tomorrow, as a writer whose clock is ahead writes it.
	env.Exec(c.app, `INSERT INTO orders (customer, note, created_at) VALUES (1, 'dated tomorrow', now() + interval '1 day')`)
	env.Exec(c.app, "CHECKPOINT")
	c.cut(t, "future-row")

	// Three orders in five deleted, and the catalog told so: only the
	// drill's own history can say that the copy lost them.
	env.Exec(c.app, "DELETE FROM orders WHERE id % 5 < 3")
	env.Exec(c.app, "VACUUM ANALYZE orders")
	env.Exec(c.app, "CHECKPOINT")
	c.shrunkRows = env.QueryInt(c.app, "SELECT count(*) FROM orders")
	c.cut(t, "shrunk")

	damaged := map[string]bool{}
	for _, k := range kinds {
		if k.damage == nil || damaged[k.snapshot] {
			continue
		}
		damaged[k.snapshot] = true
		pgdata := filepath.Join(env.PhysicalSnapshot(c.snapshots[k.snapshot]), "pgdata")
		k.damage(t, c, pgdata)
	}
}

// cut creates VolumeSnapshots of the production claim and waits until all
// are ready.
func (c *corpus) cut(t *testing.T, names ...string) {
	t.Helper()
	env := c.env
	for _, name := range names {
		snap := &snapshotv1.VolumeSnapshot{
			ObjectMeta: metav1.ObjectMeta{Namespace: c.ns, Name: name},
			Spec:       snapshotv1.VolumeSnapshotSpec{Source: snapshotv1.VolumeSnapshotSource{PersistentVolumeClaimName: ptr.To(c.pg.ClaimName())}},
		}
		if _, err := env.Snapshots.SnapshotV1().VolumeSnapshots(c.ns).Create(env.Ctx, snap, metav1.CreateOptions{}); err != nil {
			t.Fatalf("creating VolumeSnapshot %s: %v", name, err)
		}
	}
	for _, name := range names {
		c.snapshots[name] = env.WaitSnapshotReady(c.ns, name)
	}
}

// cutTime is when a snapshot was cut, as its status says.
func (c *corpus) cutTime(name string) time.Time {
	s := c.snapshots[name]
	if s == nil || s.Status == nil || s.Status.CreationTime == nil {
		return time.Time{}
	}
	return s.Status.CreationTime.Time
}

// must fails the test when a damage function fails.
func must(t *testing.T, what string, err error) {
	t.Helper()
	if err != nil {
		t.Fatalf("%s: %v", what, err)
	}
}

// kinds is the corpus.
func (c *corpus) kinds() []damageKind {
	invalidPage := func(rel fixture.Relation, block int64) string {
		return fmt.Sprintf("invalid page in block %d of relation %s", block, rel.File)
	}
	heapBlock := c.orders.Pages / 2
	indexBlock := c.ordersByTime.Pages / 2
	toastBlock := c.documentsOut.Pages / 2
	itemsBlock := c.items.Pages / 2
	scansBlock := c.scansOut.Pages / 2
	return []damageKind{{
		name:     "undamaged",
		short:    "intact",
		snapshot: "intact",
		want: verdictWant{
			result: drillsv1.ResultSucceeded,
			checks: []checkWant{
				{name: "TablesReadable", database: "app", passed: true}, {name: "TablesReadable", database: "inventory", passed: true},
				{name: "Amcheck", database: "app", passed: true}, {name: "Amcheck", database: "inventory", passed: true},
			},
			extra: func(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
				d := run.Status.Database
				if d == nil || d.SystemIdentifier != c.sourceID || !d.DataChecksums || d.WriteAcceptedTime == nil {
					t.Errorf("status.database %+v: want the source's system identifier %s, data checksums, a write accepted", d, c.sourceID)
				}
				read := map[string]int64{}
				for _, tr := range run.Status.Tables {
					read[tr.Database+"/"+tr.Table] = tr.Rows
				}
				if read["app/public.orders"] != corpusOrders || read["app/public.documents"] != corpusDocuments || read["inventory/public.items"] != corpusItems ||
					read["inventory/public.scans"] != corpusScans {
					t.Errorf("status.tables %+v: want every row of orders, documents, items and scans read", run.Status.Tables)
				}
			},
		},
	}, {
		name:     "heap truncated to a few pages",
		short:    "heap-truncated",
		snapshot: "heap-truncated",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "truncating orders", fixture.TruncateRelation(pgdata, c.orders, truncatedPages))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataMissing",
			names: []string{"public.orders", "database app", "pg_class.reltuples", "pg_class.relpages"},
			patterns: []string{
				fmt.Sprintf(`\b%d rows read\b`, c.truncatedRows), fmt.Sprintf(`\b%d\b`, c.ordersTuples),
				fmt.Sprintf(`\b%d pages\b`, truncatedPages), fmt.Sprintf(`\b%d\b`, c.ordersPages),
			},
			sqlNames: []string{"orders-present"},
			checks:   []checkWant{{name: "TablesReadable", database: "app", reason: "DataMissing"}},
		},
	}, {
		// PostgreSQL does not read a missing file as empty: every read
		// of the table fails with "could not open file" (SQLSTATE 58P01).
		name:     "heap file deleted",
		short:    "heap-deleted",
		snapshot: "heap-deleted",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "removing orders' file", fixture.RemovePath(pgdata, c.orders.File))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names:    []string{"public.orders", "database app", fmt.Sprintf("could not open file %q", c.orders.File)},
			sqlNames: []string{"orders-present"},
			checks:   []checkWant{{name: "TablesReadable", database: "app", reason: "DataDamaged"}, {name: "Amcheck", database: "app", reason: "DataDamaged"}},
		},
	}, {
		name:     "heap page overwritten mid-page",
		short:    "heap-page",
		snapshot: "heap-page",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "damaging a page of orders", fixture.DamagePage(pgdata, c.orders, heapBlock))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names:  []string{"public.orders", "database app", invalidPage(c.orders, heapBlock)},
			checks: []checkWant{{name: "TablesReadable", database: "app", reason: "DataDamaged"}, {name: "Amcheck", database: "app", reason: "DataDamaged"}},
		},
	}, {
		// A sequential scan never reads the index: only Amcheck sees it.
		name:     "btree index page corrupted",
		short:    "index-page",
		snapshot: "index-page",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "damaging a page of orders_created_at", fixture.DamagePage(pgdata, c.ordersByTime, indexBlock))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names:  []string{"index public.orders_created_at", "database app", invalidPage(c.ordersByTime, indexBlock)},
			checks: []checkWant{{name: "TablesReadable", database: "app", passed: true}, {name: "Amcheck", database: "app", reason: "DataDamaged"}},
		},
	}, {
		name:     "TOAST relation damaged",
		short:    "toast-page",
		snapshot: "toast-page",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "damaging a page of documents' TOAST", fixture.DamagePage(pgdata, c.documentsOut, toastBlock))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names:    []string{"public.documents", "database app", invalidPage(c.documentsOut, toastBlock)},
			sqlNames: []string{"documents-readable"},
			checks:   []checkWant{{name: "TablesReadable", database: "app", reason: "DataDamaged"}, {name: "Amcheck", database: "app", reason: "DataDamaged"}},
		},
	}, {
		name:     "TOAST relation of bytea values damaged",
		short:    "bytea-toast-page",
		snapshot: "bytea-toast-page",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "damaging a page of scans' TOAST", fixture.DamagePage(pgdata, c.scansOut, scansBlock))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names: []string{"public.scans", "database inventory", invalidPage(c.scansOut, scansBlock)},
			checks: []checkWant{
				{name: "TablesReadable", database: "app", passed: true}, {name: "TablesReadable", database: "inventory", reason: "DataDamaged"},
				{name: "Amcheck", database: "inventory", reason: "DataDamaged"},
			},
		},
	}, {
		// items has an aclitem[] column, which has no binary form:
		// TablesReadable reads its rows as text, and so reaches the page.
		name:     "page of a table read as text overwritten",
		short:    "text-page",
		snapshot: "text-page",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "damaging a page of items", fixture.DamagePage(pgdata, c.items, itemsBlock))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataDamaged",
			names: []string{"public.items", "database inventory", invalidPage(c.items, itemsBlock)},
			checks: []checkWant{
				{name: "TablesReadable", database: "app", passed: true}, {name: "TablesReadable", database: "inventory", reason: "DataDamaged"},
				{name: "Amcheck", database: "inventory", reason: "DataDamaged"},
			},
		},
	}, {
		name:     "WAL segments removed",
		short:    "wal-removed",
		snapshot: "wal-removed",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			removed, err := fixture.RemoveWALSegments(pgdata)
			must(t, "removing WAL segments", err)
			t.Logf("wal-removed: removed %v", removed)
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DatabaseFailed",
			names: []string{"PANIC", "could not locate a valid checkpoint record"},
		},
	}, {
		name:     "commit log removed",
		short:    "xact-removed",
		snapshot: "xact-removed",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "emptying pg_xact", fixture.EmptyDirectory(pgdata, "pg_xact"))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DatabaseFailed",
			// The startup process's end of recovery reads the newest
			// commit log page.
			names: []string{"FATAL", "could not access status of transaction"},
		},
	}, {
		name:     "control file garbled",
		short:    "control-garbled",
		snapshot: "control-garbled",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "garbling pg_control", fixture.GarbleControlFile(pgdata))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DatabaseFailed",
			names: []string{"FATAL", "incorrect checksum in control file"},
		},
	}, {
		// The image's entrypoint would initialise an empty PGDATA, but the
		// sandbox gives it no password: it refuses, in its own words.
		name:     "empty data directory",
		short:    "empty-pgdata",
		snapshot: "empty-pgdata",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "emptying PGDATA", fixture.EmptyDirectory(pgdata, "."))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DatabaseFailed",
			names: []string{"Database is uninitialized and superuser password is not specified"},
		},
	}, {
		// A fresh cluster with production's superuser and database, as an
		// entrypoint initialising an empty directory makes it.
		name:     "re-initialised data directory",
		short:    "reinit",
		snapshot: "reinitialised",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			cut := c.cutTime("reinitialised")
			c.env.WaitFor(fixture.ShortTimeout, "the reinitialised snapshot to be older than the drills' clockSkew", func(context.Context) (bool, error) {
				return time.Since(cut) > 2*reinitClockSkew, nil
			})
			bin, err := pgproc.BinDir()
			must(t, "finding initdb", err)
			must(t, "re-initialising PGDATA", fixture.Reinitialise(pgdata, filepath.Join(bin, "initdb"), fixture.DBUser, []string{fixture.DBName}, "--data-checksums"))
		},
		spec: func(b *drill) {
			b.d.Spec.Freshness = &drillsv1.FreshnessSpec{SQL: "SELECT max(created_at) FROM orders", ClockSkew: &metav1.Duration{Duration: reinitClockSkew}}
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "NotTheBackup",
			extra: func(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
				assertNewCluster(t, c, run)
				// The message names when the copy was initialised and when
				// the snapshot was cut.
				d := run.Status.Database
				for _, when := range []string{c.cutTime("reinitialised").UTC().Format(time.RFC3339), d.InitTime.UTC().Format(time.RFC3339)} {
					if !strings.Contains(run.Status.Message, when) {
						t.Errorf("the message does not name %s: %s", when, run.Status.Message)
					}
				}
			},
		},
	}, {
		// The same copy, drills with the default clockSkew (5m): the
		// cluster was initialised seconds after the cut, which drillerd
		// cannot tell from clocks that disagree; the copy is empty.
		name:     "re-initialised data directory, default clockSkew",
		short:    "reinit-default-skew",
		snapshot: "reinitialised",
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "EmptyDatabase",
			names: []string{"no user table"},
			extra: assertNewCluster,
		},
	}, {
		name:     "future-dated row in the source before the cut",
		short:    "future-row",
		snapshot: "future-row",
		spec: func(b *drill) {
			b.freshness("SELECT max(created_at) FROM orders").targets(15*time.Minute, futureRPOTarget)
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "RPOTargetMissed",
			names: []string{"basis Snapshot", "exceeds the target"},
			extra: func(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
				trusted := meta.FindStatusCondition(run.Status.Conditions, "RPODataTrusted")
				if trusted == nil || trusted.Status != metav1.ConditionFalse {
					t.Errorf("condition RPODataTrusted %+v, want False", trusted)
				}
				rpo := run.Status.RPO
				if rpo == nil || rpo.Basis != drillsv1.RPOBasisSnapshot || rpo.Met || rpo.SnapshotSeconds == nil || rpo.Seconds != *rpo.SnapshotSeconds {
					t.Errorf("RPO %+v: want the snapshot's age, not met", rpo)
				}
			},
		},
	}, {
		name:     "standby.signal added",
		short:    "standby",
		snapshot: "standby",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "adding standby.signal", fixture.AddStandbySignal(pgdata))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "NotWritable",
			names:  []string{"does not accept writes", "read-only transaction", "25006"},
			checks: []checkWant{{name: "TablesReadable", database: "app", passed: true}, {name: "TablesReadable", database: "inventory", passed: true}},
		},
	}, {
		// A snapshot of a replica that serves no reads (hot_standby off,
		// by ALTER SYSTEM): the copy starts as a standby, waits for WAL
		// that never comes and refuses every connection. It never exits,
		// so no termination message says why; its log does, to every
		// connection. The sandbox is kept, so its log can be read with
		// kubectl too.
		name:     "standby that serves no reads",
		short:    "standby-no-reads",
		snapshot: "standby-no-reads",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "adding standby.signal", fixture.AddStandbySignal(pgdata))
			must(t, "turning hot_standby off", fixture.SetAutoConf(pgdata, "hot_standby", "off"))
		},
		spec: func(b *drill) {
			b.databaseTimeout(standbyDatabaseTimeout).keepOnFailure(standbyKeepOnFailure)
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DatabaseFailed",
			names: []string{"not ready after " + standbyDatabaseTimeout.String(),
				"FATAL:  the database system is not accepting connections", "DETAIL:  Hot standby mode is disabled."},
			extra: func(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
				var text strings.Builder
				report.Text(&text, nil, run)
				if want := "Verdict   Failed (DatabaseFailed): database pod " + run.Status.SandboxNamespace + "/db not ready after"; !strings.Contains(text.String(), want) ||
					!strings.Contains(text.String(), "DETAIL:  Hot standby mode is disabled.") {
					t.Errorf("the report does not give PostgreSQL's words as the verdict:\n%s", text.String())
				}
				if run.Status.SandboxExpiry == nil || run.Status.SandboxRemoved {
					t.Fatalf("sandbox %s is not kept: %+v", run.Status.SandboxNamespace, run.Status)
				}
				log := kubectl(t, "logs", "-n", run.Status.SandboxNamespace, restore.DatabasePodName, "-c", restore.DatabaseContainerName)
				if !strings.Contains(log, "LOG:  entering standby mode") || !strings.Contains(log, "DETAIL:  Hot standby mode is disabled.") {
					t.Errorf("kubectl logs of the kept sandbox's database:\n%.3000s\nwant the standby refusing connections", log)
				}
				current := &drillsv1.DrillRun{}
				c.env.WaitFor(fixture.Scaled(standbyKeepOnFailure+time.Minute), "the kept sandbox to be removed", func(ctx context.Context) (bool, error) {
					err := c.c.Get(ctx, client.ObjectKeyFromObject(run), current)
					return err == nil && current.Status.SandboxRemoved, err
				})
				c.assertNoSandboxLeft(t, current)
			},
		},
	}, {
		// Database inventory is in pg_database, its directory is gone.
		name:     "second database's directory removed",
		short:    "db-dir-removed",
		snapshot: "db-dir-removed",
		damage: func(t *testing.T, c *corpus, pgdata string) {
			must(t, "removing inventory's directory", fixture.RemovePath(pgdata, c.inventoryDir))
		},
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataMissing",
			names: []string{"inventory"},
			checks: []checkWant{
				{name: "TablesReadable", database: "app", passed: true},
				{name: "TablesReadable", database: "inventory", reason: "DataMissing"},
			},
		},
	}, {
		// The drill passes on the intact snapshot, then restores one cut
		// after 60% of orders were deleted (and the catalog updated).
		name:     "60% of orders deleted since the drill's last success",
		short:    "shrunk",
		snapshot: "shrunk",
		baseline: "intact",
		want: verdictWant{
			result: drillsv1.ResultFailed, reason: "DataMissing",
			names:    []string{"public.orders", "database app", "maxTableShrinkPercent"},
			patterns: []string{fmt.Sprintf(`\b%d\b`, corpusOrders)},
			sqlNames: []string{"orders-present"},
			extra: func(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
				if !regexp.MustCompile(fmt.Sprintf(`\b%d rows\b`, c.shrunkRows)).MatchString(run.Status.Message) {
					t.Errorf("the message does not say the copy has %d rows of orders: %s", c.shrunkRows, run.Status.Message)
				}
			},
		},
	}}
}

// assertNewCluster checks that the copy the run started is a new cluster:
// another system identifier, initialised after the snapshot was cut.
func assertNewCluster(t *testing.T, c *corpus, run *drillsv1.DrillRun) {
	t.Helper()
	d := run.Status.Database
	cut := c.cutTime("reinitialised")
	if d == nil || d.SystemIdentifier == "" || d.SystemIdentifier == c.sourceID || d.InitTime == nil || !d.InitTime.After(cut) {
		t.Fatalf("status.database %+v: want a new system identifier (the source's is %s), initialised after the cut %s", d, c.sourceID, cut)
	}
}

// drillQueue lets the drills start at most corpusParallelDrills at once,
// in the corpus's order among those waiting: the kinds that run two drills
// one after the other first, so that they do not end the suite alone.
type drillQueue struct {
	rank map[string]int // drill name → its place in the order

	mu      sync.Mutex
	cond    *sync.Cond
	waiting map[string]bool
	running int
}

func newDrillQueue(kinds []damageKind) *drillQueue {
	q := &drillQueue{rank: map[string]int{}, waiting: map[string]bool{}}
	q.cond = sync.NewCond(&q.mu)
	for _, sequential := range []bool{true, false} {
		for _, k := range kinds {
			if (k.baseline != "") != sequential {
				continue
			}
			for _, v := range variants {
				q.rank[k.short+"-"+string(v)] = len(q.rank)
			}
		}
	}
	return q
}

// next is the waiting drill that starts next.
func (q *drillQueue) next() string {
	first := ""
	for name := range q.waiting {
		if first == "" || q.rank[name] < q.rank[first] {
			first = name
		}
	}
	return first
}

// wait blocks until the drill may start and returns the release of its
// slot.
func (q *drillQueue) wait(ctx context.Context, name string) (release func(), err error) {
	stop := context.AfterFunc(ctx, func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.cond.Broadcast()
	})
	defer stop()
	q.mu.Lock()
	defer q.mu.Unlock()
	q.waiting[name] = true
	defer delete(q.waiting, name)
	for q.running >= corpusParallelDrills || q.next() != name {
		if err := ctx.Err(); err != nil {
			q.cond.Broadcast() // the next in line may go instead
			return nil, err
		}
		q.cond.Wait()
	}
	q.running++
	q.cond.Broadcast() // the next in line may go too, once this one left the line
	return func() {
		q.mu.Lock()
		defer q.mu.Unlock()
		q.running--
		q.cond.Broadcast()
	}, nil
}

// drillKind runs the two drills of a kind, at once when the queue lets.
func (c *corpus) drillKind(t *testing.T, k damageKind, q *drillQueue) {
	var wg sync.WaitGroup
	for _, v := range variants {
		wg.Add(1)
		go func() {
			defer wg.Done()
			t.Run(string(v), func(t *testing.T) {
				release, err := q.wait(t.Context(), k.short+"-"+string(v))
				if err != nil {
					t.Fatalf("waiting for a drill slot: %v", err)
				}
				defer release()
				c.drillVariant(t, k, v)
			})
		}()
	}
	wg.Wait()
}

func (c *corpus) drillVariant(t *testing.T, k damageKind, v variant) {
	b := c.newDrill(k.short + "-" + string(v)).image(corpusImage)
	// The copies run like production: small buffers, no fsync.
	b.d.Spec.Database.Args = []string{"-c", "shared_buffers=16MB", "-c", "fsync=off"}
	if v == withSQL {
		b.check("orders-present", "SELECT count(*) FROM orders", drillsv1.Expectation{Min: ptr.To(strconv.Itoa(corpusOrders))}).
			check("documents-readable", "SELECT count(*) FROM documents WHERE length(body) > 0", drillsv1.Expectation{Min: ptr.To(strconv.Itoa(corpusDocuments))}).
			builtin(drillsv1.BuiltinTablesReadable).
			builtin(drillsv1.BuiltinAmcheck)
	}
	if k.spec != nil {
		k.spec(b)
	}
	if err := c.c.Create(c.env.Ctx, b.d); err != nil {
		t.Fatalf("creating RestoreDrill: %v", err)
	}
	t.Cleanup(func() { _ = c.c.Delete(context.Background(), b.d) })
	if k.baseline != "" {
		first := c.runPinned(t, b, k.baseline)
		if first.Status.Result != drillsv1.ResultSucceeded {
			t.Fatalf("the drill does not pass on %s, so it has no baseline: %s/%s: %s\n%s",
				k.baseline, first.Status.Result, first.Status.Reason, first.Status.Message, describeChecks(first))
		}
	}
	run := c.runPinned(t, b, k.snapshot)
	c.assertVerdict(t, k, v, run)
}

// runPinned runs the drill on a snapshot with `drillerd run --snapshot`
// and returns the finished run. Afterwards it checks that no sandbox is
// left and that no source object changed.
func (c *corpus) runPinned(t *testing.T, b *drill, snapshot string) *drillsv1.DrillRun {
	t.Helper()
	sources := c.env.Sources(c.ns, []string{c.pg.ClaimName()})
	run, code := drillerdRun(t, cluster.Kubeconfig, c.ns, b.d, "--snapshot", snapshot, "--timeout", corpusRunTimeout.String())
	if want := map[drillsv1.RunResult]int{drillsv1.ResultSucceeded: 0, drillsv1.ResultFailed: 1, drillsv1.ResultError: 2}[run.Status.Result]; code != want {
		t.Errorf("drillerd run exited %d for a %s run, want %d", code, run.Status.Result, want)
	}
	if run.Status.Snapshot == nil || run.Status.Snapshot.Name != snapshot {
		t.Errorf("the run restored %+v, want the pinned %s", run.Status.Snapshot, snapshot)
	}
	if run.Status.SandboxExpiry == nil {
		c.assertNoSandboxLeft(t, run)
	}
	sources.AssertUntouched(drillerdUsers...)
	return run
}

// assertVerdict compares a run with what the kind wants of it.
func (c *corpus) assertVerdict(t *testing.T, k damageKind, v variant, run *drillsv1.DrillRun) {
	t.Helper()
	w := k.want
	st := run.Status
	got := fmt.Sprintf("%s/%s: %s\nchecks:\n%s", st.Result, st.Reason, st.Message, describeChecks(run))
	switch {
	case w.result != drillsv1.ResultSucceeded && st.Result == drillsv1.ResultSucceeded:
		t.Errorf("FALSE PASS: the drill passed a backup with damage %q; want %s/%s\ngot %s", k.name, w.result, w.reason, got)
	case w.result == drillsv1.ResultFailed && st.Result == drillsv1.ResultError:
		t.Errorf("WRONG VERDICT: Error (could not judge) where the backup is at fault (%q); want %s/%s\ngot %s", k.name, w.result, w.reason, got)
	case st.Result != w.result || st.Reason != w.reason:
		t.Errorf("WRONG REASON for %q: want %s/%s\ngot %s", k.name, w.result, w.reason, got)
	}
	names := w.names
	if v == withSQL {
		names = append(append([]string(nil), names...), w.sqlNames...)
	}
	for _, name := range names {
		if !strings.Contains(st.Message, name) {
			t.Errorf("the message does not name %q: %s", name, st.Message)
		}
	}
	for _, p := range w.patterns {
		if !regexp.MustCompile(p).MatchString(st.Message) {
			t.Errorf("the message does not match %s: %s", p, st.Message)
		}
	}
	for _, cw := range w.checks {
		found := false
		for _, cr := range st.Checks {
			if cr.Name != cw.name || cr.Database != cw.database {
				continue
			}
			found = true
			if cr.Passed != cw.passed || cr.Reason != cw.reason {
				t.Errorf("check %s in database %s: passed %v, reason %q (%s); want passed %v, reason %q",
					cr.Name, cr.Database, cr.Passed, cr.Reason, cr.Message, cw.passed, cw.reason)
			}
		}
		if !found {
			t.Errorf("no result of check %s in database %s; checks:\n%s", cw.name, cw.database, describeChecks(run))
		}
	}
	if w.extra != nil {
		w.extra(t, c, run)
	}
}

// describeChecks lists a run's check results, one a line.
func describeChecks(run *drillsv1.DrillRun) string {
	var b strings.Builder
	for _, cr := range run.Status.Checks {
		fmt.Fprintf(&b, "  %s@%s passed=%v reason=%q value=%q message=%q\n", cr.Name, cr.Database, cr.Passed, cr.Reason, cr.Value, cr.Message)
	}
	if b.Len() == 0 {
		return "  (none)\n"
	}
	return b.String()
}
