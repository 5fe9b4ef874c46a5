package validate

import (
	"context"
	"fmt"
	"strconv"
	"time"

	"github.com/jackc/pgx/v5"
)

// Identity is who the restored cluster is.
type Identity struct {
	// SystemIdentifier is pg_control_system().system_identifier, as text:
	// it is made once by initdb and kept by every copy of the cluster
	// (physical backups, snapshots, streaming replicas).
	SystemIdentifier string
	// InitTime is when initdb made the cluster, read from the system
	// identifier (see initTimeOf); zero when the identifier was not made
	// that way.
	InitTime      time.Time
	ServerVersion string // server_version, e.g. "15.4 (Debian 15.4-1.pgdg120+1)"
	DataChecksums bool   // SHOW data_checksums
}

// Identity reads the cluster's identity in a read-only transaction with
// DefaultCheckTimeout.
func (s *Session) Identity(ctx context.Context) (Identity, error) {
	var id Identity
	var checksums string
	err := s.inTx(ctx, pgx.ReadOnly, DefaultCheckTimeout, func(tx pgx.Tx) error {
		return tx.QueryRow(ctx, `SELECT system_identifier::text, current_setting('server_version'), current_setting('data_checksums')
FROM pg_catalog.pg_control_system()`).Scan(&id.SystemIdentifier, &id.ServerVersion, &checksums)
	})
	if err != nil {
		return Identity{}, fmt.Errorf("reading the cluster's identity: %s", describeError(err))
	}
	id.DataChecksums = checksums == "on"
	if sysid, err := strconv.ParseUint(id.SystemIdentifier, 10, 64); err == nil {
		id.InitTime = initTimeOf(sysid)
	}
	return id, nil
}

// initTimeOf is the moment a system identifier was made. initdb's bootstrap
// (BootStrapXLOG in src/backend/access/transam/xlog.c) builds it from
// gettimeofday() and the process ID:
//
//	sysidentifier = ((uint64) tv.tv_sec) << 32;
//	sysidentifier |= ((uint64) tv.tv_usec) << 12;
//	sysidentifier |= getpid() & 0xFFF;
//
// so the top 32 bits are the Unix time in seconds and the next 20 the
// microseconds. (pg_resetwal makes a new one the same way when it cannot
// read pg_control.) An identifier whose microseconds field is out of range
// was not made so, and has no time: the zero Time.
func initTimeOf(sysid uint64) time.Time {
	sec, usec := int64(sysid>>32), int64(sysid>>12&0xFFFFF)
	if sec == 0 || usec >= 1_000_000 {
		return time.Time{}
	}
	return time.Unix(sec, usec*1000).UTC()
}
