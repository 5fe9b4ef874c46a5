package validate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
)

// bytesRead is what the cluster's backends have read into shared buffers
// (from the volume, or the operating system's page cache), summed over
// every database and the shared catalogs.
const bytesRead = `
SELECT coalesce(sum(blks_read), 0)::bigint * current_setting('block_size')::bigint
FROM pg_catalog.pg_stat_database`

// databaseBytes is the size on disk of the databases the session may
// connect to (pg_database_size refuses the others).
const databaseBytes = `
SELECT coalesce(sum(CASE WHEN has_database_privilege(oid, 'CONNECT') THEN pg_catalog.pg_database_size(oid) END), 0)::bigint
FROM pg_catalog.pg_database`

// BytesRead is how many bytes the cluster's backends have read into shared
// buffers so far (pg_stat_database.blks_read × block_size, over every
// database): the difference of two readings is what was read between them.
//
// Backends publish their counts at most once a second. From PostgreSQL 15
// on, this session and the restricted reader of the user's SQL first ask
// theirs to be published (pg_stat_force_next_flush, before each answers);
// the built-ins' other connections publish when they close. So a reading
// misses at most the last second of other backends' reads, and earlier
// versions' statistics collector may lag as much.
func (s *Session) BytesRead(ctx context.Context) (int64, error) {
	for _, sess := range []*Session{s.reader, s} {
		if sess == nil {
			continue
		}
		// Before PostgreSQL 15 the function does not exist; the counts are
		// then as fresh as the collector has them.
		_ = sess.inTx(ctx, pgx.ReadOnly, DefaultCheckTimeout, func(tx pgx.Tx) error {
			_, err := tx.Exec(ctx, `SELECT pg_catalog.pg_stat_force_next_flush()`)
			return err
		})
	}
	var n int64
	err := s.inTx(ctx, pgx.ReadOnly, DefaultCheckTimeout, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, bytesRead).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("reading pg_stat_database: %s", describeError(err))
	}
	return n, nil
}

// DatabaseBytes is the size of the cluster's databases as PostgreSQL
// counts it: the sum of pg_database_size() over those the session may
// connect to. WAL and the cluster-wide catalogs are not in it.
func (s *Session) DatabaseBytes(ctx context.Context) (int64, error) {
	var n int64
	err := s.inTx(ctx, pgx.ReadOnly, DefaultCheckTimeout, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, databaseBytes).Scan(&n)
	})
	if err != nil {
		return 0, fmt.Errorf("reading the databases' sizes: %s", describeError(err))
	}
	return n, nil
}
