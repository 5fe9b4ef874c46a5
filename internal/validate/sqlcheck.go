package validate

import (
	"context"
	"fmt"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgtype"
)

// sqlCheck runs the check's query and compares its first value; it returns
// the value shown, why the check failed, and FindingRefused when the copy
// refused the query a privilege.
func (s *Session) sqlCheck(ctx context.Context, c Check) (shown, failure, finding string) {
	var value *string
	found := false
	err := s.inTx(ctx, pgx.ReadOnly, timeoutOf(c), func(tx pgx.Tx) error {
		// The extended protocol refuses more than one statement, and text
		// results give the value exactly as PostgreSQL prints it.
		rr := tx.Conn().PgConn().ExecParams(ctx, c.SQL, nil, nil, nil, nil)
		if rr.NextRow() {
			found = true
			if vals := rr.Values(); len(vals) > 0 && vals[0] != nil {
				text := textValue(rr.FieldDescriptions()[0].DataTypeOID, vals[0])
				value = &text
			}
		}
		_, err := rr.Close()
		return err
	})
	if err != nil {
		msg := describeError(err)
		if isStatementTimeout(err) {
			msg += fmt.Sprintf("; the check's timeout is %s", timeoutOf(c))
		}
		if Refused(err) {
			return "", msg, FindingRefused
		}
		return "", msg, ""
	}
	switch {
	case value != nil:
		shown = shorten(*value)
	case found:
		shown = "NULL"
	}
	return shown, c.Expect.Evaluate(value, found), ""
}

// textValue is a value in PostgreSQL's text format; booleans read true and
// false rather than t and f.
func textValue(oid uint32, raw []byte) string {
	if oid == pgtype.BoolOID {
		switch string(raw) {
		case "t":
			return "true"
		case "f":
			return "false"
		}
	}
	return string(raw)
}
