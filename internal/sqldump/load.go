package sqldump

import (
	"context"
	"database/sql"
	"fmt"
	"strings"
)

// Preparer is an Execer that prepares statements: a *sql.Tx or *sql.Conn.
type Preparer interface {
	Execer
	PrepareContext(ctx context.Context, query string) (*sql.Stmt, error)
}

// ColumnTypes returns the table's columns and their declared types, lower
// case ("bigint", "bytea", "boolean", "text" on PostgreSQL; as declared on
// SQLite). A missing table has no columns.
func ColumnTypes(ctx context.Context, q Querier, engine, table string) (map[string]string, error) {
	var query string
	if engine == SQLite {
		query = `SELECT name, type FROM pragma_table_info(?)`
	} else {
		query = `SELECT column_name, data_type FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`
	}
	rows, err := q.QueryContext(ctx, query, table)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]string{}
	for rows.Next() {
		var name, typ string
		if err := rows.Scan(&name, &typ); err != nil {
			return nil, err
		}
		out[name] = strings.ToLower(typ)
	}
	return out, rows.Err()
}

// LoadTable inserts the rows of the current table of r (as returned by
// r.Next) into the table of the same name, converting each value to its
// column's type; keep, when not nil, chooses the rows to insert. Every
// column of the dump must exist in the target: a dump is loaded into a
// database migrated to the dump's own schema version. It returns how many
// rows it inserted.
func LoadTable(ctx context.Context, x Preparer, engine string, r *Reader, table string, cols []string, keep func(row []any) bool) (int64, error) {
	types, err := ColumnTypes(ctx, x, engine, table)
	if err != nil {
		return 0, err
	}
	if len(types) == 0 {
		return 0, fmt.Errorf("sqldump: the target has no table %q", table)
	}
	var b strings.Builder
	b.WriteString("INSERT INTO " + quote(table) + " (")
	for i, c := range cols {
		if _, ok := types[c]; !ok {
			return 0, fmt.Errorf("sqldump: the target's table %s has no column %q", table, c)
		}
		if i > 0 {
			b.WriteString(", ")
		}
		b.WriteString(quote(c))
	}
	b.WriteString(") VALUES (")
	for i := range cols {
		if i > 0 {
			b.WriteString(", ")
		}
		if engine == Postgres {
			fmt.Fprintf(&b, "$%d", i+1)
		} else {
			b.WriteString("?")
		}
	}
	b.WriteString(")")
	stmt, err := x.PrepareContext(ctx, b.String())
	if err != nil {
		return 0, fmt.Errorf("sqldump: preparing %s: %w", table, err)
	}
	defer stmt.Close()
	var n int64
	for {
		row, err := r.Row(len(cols))
		if err != nil {
			return n, err
		}
		if row == nil {
			return n, nil
		}
		if keep != nil && !keep(row) {
			continue
		}
		for i, v := range row {
			row[i] = convert(v, types[cols[i]])
		}
		if _, err := stmt.ExecContext(ctx, row...); err != nil {
			return n, fmt.Errorf("sqldump: inserting into %s: %w", table, err)
		}
		n++
	}
}

// convert turns a dumped value into what the target column takes.
func convert(v any, typ string) any {
	switch {
	case strings.Contains(typ, "bool"):
		if n, ok := v.(int64); ok {
			return n != 0
		}
	case typ == "bytea" || strings.Contains(typ, "blob"):
		if s, ok := v.(string); ok {
			return []byte(s)
		}
	case strings.Contains(typ, "text") || strings.Contains(typ, "char"):
		if b, ok := v.([]byte); ok {
			return string(b)
		}
	case strings.Contains(typ, "int"):
		if b, ok := v.(bool); ok {
			if b {
				return int64(1)
			}
			return int64(0)
		}
	}
	return v
}

// quote quotes an identifier for both engines.
func quote(name string) string { return `"` + strings.ReplaceAll(name, `"`, `""`) + `"` }

// Quote quotes a table or column name for a query of either engine.
func Quote(name string) string { return quote(name) }
