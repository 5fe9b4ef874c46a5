package verdict

import (
	"fmt"
	"sort"
	"time"

	drillsv1 "github.com/drillerd/drillerd/api/v1alpha1"
)

// minShrinkRows is how many rows a table must have lost before a shrink
// since the baseline is a finding: a table of a few rows that loses them
// (a lookup table rebuilt) says nothing about the backup.
const minShrinkRows = 100

// ShrunkTables compares the rows read per table with the last Succeeded
// run's (the baseline). A table that lost more than maxShrinkPercent of its
// rows (and at least minShrinkRows), or is missing altogether, is listed,
// unless it is volatile ("schema.table"). A baseline of another claim says
// nothing about this copy.
func ShrunkTables(now []drillsv1.TableRows, base *drillsv1.Baseline, claim string, maxShrinkPercent int32, volatile []string) []string {
	if base == nil || base.ClaimName != claim || maxShrinkPercent >= 100 {
		return nil
	}
	skip := map[string]bool{}
	for _, v := range volatile {
		skip[v] = true
	}
	read := map[[2]string]int64{}
	for _, t := range now {
		read[[2]string{t.Database, t.Table}] = t.Rows
	}
	var out []string
	for _, b := range base.Tables {
		if skip[b.Table] {
			continue
		}
		rows, ok := read[[2]string{b.Database, b.Table}]
		lost := b.Rows - rows
		switch {
		case !ok && b.Rows >= minShrinkRows:
			out = append(out, fmt.Sprintf("table %s in database %s is missing; run %s read %d rows of it", b.Table, b.Database, base.RunName, b.Rows))
		case ok && lost >= minShrinkRows && float64(lost) > float64(b.Rows)*float64(maxShrinkPercent)/100:
			out = append(out, fmt.Sprintf("table %s in database %s has %d rows, %d%% fewer than the %d run %s read (dataLoss.maxTableShrinkPercent %d)",
				b.Table, b.Database, rows, lost*100/b.Rows, b.Rows, base.RunName, maxShrinkPercent))
		}
	}
	return out
}

// NotTheBackup says why a copy cannot be the snapshot's data: its cluster
// was initialised after the snapshot was cut (plus skew), so what started
// is a fresh, empty cluster made from an empty or wrong data directory.
func NotTheBackup(initTime, snapshotCut time.Time, skew time.Duration) string {
	if initTime.IsZero() || snapshotCut.IsZero() || !initTime.After(snapshotCut.Add(skew)) {
		return ""
	}
	return fmt.Sprintf("the restored cluster was initialised (initdb) at %s, after the snapshot was cut at %s: it is not the backup but a new cluster",
		initTime.UTC().Format(time.RFC3339), snapshotCut.UTC().Format(time.RFC3339))
}

// IdentityChanged says how a copy's system identifier differs from the
// baseline's, for the same source claim.
func IdentityChanged(systemIdentifier string, base *drillsv1.Baseline, claim string) string {
	if base == nil || base.ClaimName != claim || base.SystemIdentifier == "" || systemIdentifier == "" || base.SystemIdentifier == systemIdentifier {
		return ""
	}
	return fmt.Sprintf("the restored cluster's system identifier is %s, but run %s restored %s from the same claim: the snapshot holds a different database",
		systemIdentifier, base.RunName, base.SystemIdentifier)
}

// maxBaselineTables bounds the tables a run and its drill keep.
const maxBaselineTables = 200

// LargestTables keeps the maxBaselineTables tables with the most rows, in
// database and table order, for status.
func LargestTables(tables []drillsv1.TableRows) []drillsv1.TableRows {
	out := append([]drillsv1.TableRows(nil), tables...)
	if len(out) > maxBaselineTables {
		sort.SliceStable(out, func(i, j int) bool { return out[i].Rows > out[j].Rows })
		out = out[:maxBaselineTables]
	}
	sort.SliceStable(out, func(i, j int) bool {
		if out[i].Database != out[j].Database {
			return out[i].Database < out[j].Database
		}
		return out[i].Table < out[j].Table
	})
	return out
}
