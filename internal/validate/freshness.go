package validate

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// Freshness runs the freshness query in a read-only transaction with the
// given statement timeout (0 means DefaultCheckTimeout) and returns the
// newest write it reports: the first column of the first row, which must be a
// timestamptz, a timestamp or a date. A timestamp (without time zone) is a
// wall-clock time in loc; without loc it is refused, since it names no
// instant. A date is its midnight in loc, or in UTC without one.
func (s *Session) Freshness(ctx context.Context, sql string, loc *time.Location, timeout time.Duration) (time.Time, error) {
	if timeout <= 0 {
		timeout = DefaultCheckTimeout
	}
	if s.userSQLRefused != "" {
		return time.Time{}, freshnessError(s.userSQLRefused)
	}
	var newest time.Time
	err := s.forChecks().inTx(ctx, pgx.ReadOnly, timeout, func(tx pgx.Tx) error {
		rows, err := tx.Query(ctx, sql, pgx.QueryExecModeExec)
		if err != nil {
			return err
		}
		defer rows.Close()
		if !rows.Next() {
			if err := rows.Err(); err != nil {
				return err
			}
			return freshnessError("the freshness query returned no rows")
		}
		fields := rows.FieldDescriptions()
		if len(fields) == 0 {
			return freshnessError("the freshness query returned no columns")
		}
		oid := fields[0].DataTypeOID
		switch oid {
		case pgtype.TimestamptzOID, pgtype.DateOID:
		case pgtype.TimestampOID:
			if loc == nil {
				return freshnessError("the freshness query returned a timestamp without time zone, which names no instant: " +
					"set spec.freshness.timeZone to the zone its values were written in (e.g. UTC), or return a timestamptz")
			}
		default:
			return freshnessError(fmt.Sprintf("the freshness query returned a %s, want a timestamptz, timestamp or date", s.typeName(oid)))
		}
		values, err := rows.Values()
		if err != nil {
			return err
		}
		switch v := values[0].(type) {
		case nil:
			return freshnessError("the freshness query returned NULL (is the table empty?)")
		case time.Time:
			newest = v
			if oid != pgtype.TimestamptzOID && loc != nil {
				newest = time.Date(v.Year(), v.Month(), v.Day(), v.Hour(), v.Minute(), v.Second(), v.Nanosecond(), loc)
			}
		default:
			return freshnessError(fmt.Sprintf("the freshness query returned %v, not a point in time", v))
		}
		return nil
	})
	var problem freshnessError
	switch {
	case errors.As(err, &problem):
		return time.Time{}, problem
	case err != nil:
		return time.Time{}, fmt.Errorf("freshness query: %s", describeError(err))
	}
	return newest, nil
}

// freshnessError is what is wrong with the freshness query's answer.
type freshnessError string

func (e freshnessError) Error() string { return string(e) }
