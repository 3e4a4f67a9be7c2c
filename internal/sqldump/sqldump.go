// Package sqldump writes the rows of SQL tables as an engine-neutral stream
// and loads such a stream into another database, of the same engine or the
// other: a dump of PostgreSQL loads into SQLite and back. kluis's backups
// use it for the data database and for the key store.
//
// The stream is JSON lines. A table starts with a header line
//
//	{"table":"users","columns":["id","org_id",…]}
//
// followed by one JSON array per row, its values in the header's column
// order: null, a number (integers), a string, true/false, or {"b":"…"}
// for bytes (standard base64). Values are typed by what they are, not by
// the engine's column type, and converted on load to the target column's
// type (PostgreSQL's booleans and SQLite's 0/1, bytes and text).
//
// The package only moves rows: it never opens a sealed value, so a dump of
// kluis's data holds personal data exactly as sealed as the database does.
package sqldump

import (
	"bufio"
	"context"
	"database/sql"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strconv"
	"strings"
)

// Engine names, as kluis's storage uses them.
const (
	SQLite   = "sqlite"
	Postgres = "postgres"
)

// Querier runs queries: a *sql.DB, *sql.Tx or *sql.Conn.
type Querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
}

// Execer runs statements and queries: a *sql.Tx or *sql.Conn.
type Execer interface {
	Querier
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

// Tables returns the database's tables in an order in which every table
// comes after the tables its foreign keys reference, so loading in that
// order never breaks a foreign key. Names are sorted where the order is
// free, so the result is the same on both engines for the same schema.
func Tables(ctx context.Context, q Querier, engine string) ([]string, error) {
	var names []string
	var listQ string
	switch engine {
	case SQLite:
		listQ = `SELECT name FROM sqlite_master WHERE type = 'table' AND name NOT LIKE 'sqlite_%'`
	case Postgres:
		listQ = `SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema() AND table_type = 'BASE TABLE'`
	default:
		return nil, fmt.Errorf("sqldump: unknown engine %q", engine)
	}
	if err := scanStrings(ctx, q, &names, listQ); err != nil {
		return nil, err
	}
	sort.Strings(names)
	// PostgreSQL's foreign keys come from the catalogue in one query: the
	// information_schema views cost tens of milliseconds per table.
	var pgRefs map[string][]string
	if engine == Postgres {
		var err error
		if pgRefs, err = postgresForeignKeys(ctx, q); err != nil {
			return nil, fmt.Errorf("sqldump: foreign keys: %w", err)
		}
	}
	refs := map[string][]string{}
	for _, t := range names {
		if engine == Postgres {
			refs[t] = pgRefs[t]
			continue
		}
		var to []string
		if err := scanStrings(ctx, q, &to, `SELECT "table" FROM pragma_foreign_key_list(?)`, t); err != nil {
			return nil, fmt.Errorf("sqldump: foreign keys of %s: %w", t, err)
		}
		refs[t] = to
	}
	var out []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(t string) error
	visit = func(t string) error {
		switch state[t] {
		case 1:
			return fmt.Errorf("sqldump: the foreign keys of %s form a cycle", t)
		case 2:
			return nil
		}
		state[t] = 1
		deps := append([]string(nil), refs[t]...)
		sort.Strings(deps)
		for _, d := range deps {
			if d == t {
				continue // a table referencing itself: rows load in key order
			}
			if _, known := refs[d]; !known {
				continue
			}
			if err := visit(d); err != nil {
				return err
			}
		}
		state[t] = 2
		out = append(out, t)
		return nil
	}
	for _, t := range names {
		if err := visit(t); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// postgresForeignKeys returns, for each table of the current schema, the
// tables its foreign keys reference.
func postgresForeignKeys(ctx context.Context, q Querier) (map[string][]string, error) {
	rows, err := q.QueryContext(ctx, `SELECT DISTINCT src.relname, dst.relname FROM pg_constraint c
		JOIN pg_class src ON src.oid = c.conrelid
		JOIN pg_class dst ON dst.oid = c.confrelid
		JOIN pg_namespace n ON n.oid = src.relnamespace
		WHERE c.contype = 'f' AND n.nspname = current_schema() AND dst.relnamespace = src.relnamespace`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string][]string{}
	for rows.Next() {
		var from, to string
		if err := rows.Scan(&from, &to); err != nil {
			return nil, err
		}
		out[from] = append(out[from], to)
	}
	return out, rows.Err()
}

func scanStrings(ctx context.Context, q Querier, dst *[]string, query string, args ...any) error {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return err
	}
	defer rows.Close()
	for rows.Next() {
		var s string
		if err := rows.Scan(&s); err != nil {
			return err
		}
		*dst = append(*dst, s)
	}
	return rows.Err()
}

// Writer writes a dump.
type Writer struct {
	w *bufio.Writer
}

// NewWriter returns a Writer that writes to w. Call Flush at the end.
func NewWriter(w io.Writer) *Writer { return &Writer{w: bufio.NewWriterSize(w, 256<<10)} }

// Flush writes what is buffered.
func (w *Writer) Flush() error { return w.w.Flush() }

type header struct {
	Table   string   `json:"table"`
	Columns []string `json:"columns"`
}

// Table writes every row the query returns as the table name (the query's
// columns become the header's) and returns how many rows it wrote.
func (w *Writer) Table(ctx context.Context, q Querier, table, query string, args ...any) (int64, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return 0, fmt.Errorf("sqldump: reading %s: %w", table, err)
	}
	defer rows.Close()
	cols, err := rows.Columns()
	if err != nil {
		return 0, err
	}
	if err := w.header(table, cols); err != nil {
		return 0, err
	}
	vals := make([]any, len(cols))
	ptrs := make([]any, len(cols))
	for i := range vals {
		ptrs[i] = &vals[i]
	}
	var n int64
	for rows.Next() {
		if err := rows.Scan(ptrs...); err != nil {
			return n, err
		}
		if err := w.Row(vals); err != nil {
			return n, fmt.Errorf("sqldump: %s: %w", table, err)
		}
		n++
	}
	return n, rows.Err()
}

// Header starts a table whose rows the caller writes with Row.
func (w *Writer) header(table string, cols []string) error {
	b, err := json.Marshal(header{Table: table, Columns: cols})
	if err != nil {
		return err
	}
	w.w.Write(b)
	return w.w.WriteByte('\n')
}

// Start begins a table of the given columns; its rows follow with Row.
func (w *Writer) Start(table string, cols []string) error { return w.header(table, cols) }

// Row writes one row of the current table.
func (w *Writer) Row(vals []any) error {
	w.w.WriteByte('[')
	for i, v := range vals {
		if i > 0 {
			w.w.WriteByte(',')
		}
		if err := w.value(v); err != nil {
			return err
		}
	}
	w.w.WriteByte(']')
	return w.w.WriteByte('\n')
}

func (w *Writer) value(v any) error {
	switch v := v.(type) {
	case nil:
		w.w.WriteString("null")
	case int64:
		w.w.WriteString(strconv.FormatInt(v, 10))
	case int32:
		w.w.WriteString(strconv.FormatInt(int64(v), 10))
	case int:
		w.w.WriteString(strconv.Itoa(v))
	case bool:
		w.w.WriteString(strconv.FormatBool(v))
	case float64:
		if v != float64(int64(v)) {
			return errors.New("a fractional number (kluis stores none)")
		}
		w.w.WriteString(strconv.FormatInt(int64(v), 10))
	case string:
		b, err := json.Marshal(v)
		if err != nil {
			return err
		}
		w.w.Write(b)
	case []byte:
		w.w.WriteString(`{"b":"`)
		enc := base64.NewEncoder(base64.StdEncoding, w.w)
		enc.Write(v)
		enc.Close()
		w.w.WriteString(`"}`)
	default:
		return fmt.Errorf("a value of type %T", v)
	}
	return nil
}

// Reader reads a dump table by table.
type Reader struct {
	r    *bufio.Reader
	next *header // the header read ahead, if any
	line int
}

// NewReader returns a Reader of the dump r.
func NewReader(r io.Reader) *Reader { return &Reader{r: bufio.NewReaderSize(r, 256<<10)} }

// MaxLine bounds one line of a dump: a row of kluis holds at most a few
// sealed values of a few hundred kilobytes.
const MaxLine = 64 << 20

func (r *Reader) readLine() ([]byte, error) {
	var buf []byte
	for {
		part, isPrefix, err := r.r.ReadLine()
		if err != nil {
			if err == io.EOF && len(buf) > 0 {
				return nil, io.ErrUnexpectedEOF
			}
			return nil, err
		}
		buf = append(buf, part...)
		if len(buf) > MaxLine {
			return nil, fmt.Errorf("sqldump: line %d is longer than %d bytes", r.line+1, MaxLine)
		}
		if !isPrefix {
			r.line++
			return buf, nil
		}
	}
}

// Next moves to the next table and returns its name and columns; io.EOF
// after the last one. Rows of the previous table not read are skipped.
func (r *Reader) Next() (table string, cols []string, err error) {
	for r.next == nil {
		line, err := r.readLine()
		if err != nil {
			return "", nil, err
		}
		if len(line) > 0 && line[0] == '{' {
			var h header
			if err := json.Unmarshal(line, &h); err != nil || h.Table == "" || len(h.Columns) == 0 {
				return "", nil, fmt.Errorf("sqldump: line %d is not a table header", r.line)
			}
			r.next = &h
		} else if len(line) == 0 || line[0] != '[' {
			return "", nil, fmt.Errorf("sqldump: line %d is neither a header nor a row", r.line)
		}
	}
	h := r.next
	r.next = nil
	return h.Table, h.Columns, nil
}

// Row returns the next row of the current table, or nil at its end.
func (r *Reader) Row(ncols int) ([]any, error) {
	if r.next != nil {
		return nil, nil
	}
	line, err := r.readLine()
	if err == io.EOF {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	if len(line) > 0 && line[0] == '{' {
		var h header
		if err := json.Unmarshal(line, &h); err != nil || h.Table == "" || len(h.Columns) == 0 {
			return nil, fmt.Errorf("sqldump: line %d is not a table header", r.line)
		}
		r.next = &h
		return nil, nil
	}
	row, err := decodeRow(line)
	if err != nil {
		return nil, fmt.Errorf("sqldump: line %d: %w", r.line, err)
	}
	if len(row) != ncols {
		return nil, fmt.Errorf("sqldump: line %d has %d values for %d columns", r.line, len(row), ncols)
	}
	return row, nil
}

func decodeRow(line []byte) ([]any, error) {
	dec := json.NewDecoder(strings.NewReader(string(line)))
	dec.UseNumber()
	var raw []any
	if err := dec.Decode(&raw); err != nil {
		return nil, errors.New("not a JSON array")
	}
	for i, v := range raw {
		switch v := v.(type) {
		case nil, string, bool:
		case json.Number:
			n, err := strconv.ParseInt(string(v), 10, 64)
			if err != nil {
				return nil, errors.New("a number that is not a whole 64-bit number")
			}
			raw[i] = n
		case map[string]any:
			s, ok := v["b"].(string)
			if !ok || len(v) != 1 {
				return nil, errors.New("an object that is not bytes")
			}
			b, err := base64.StdEncoding.DecodeString(s)
			if err != nil {
				return nil, errors.New("bytes that are not base64")
			}
			raw[i] = b
		default:
			return nil, fmt.Errorf("a value of an unknown kind")
		}
	}
	return raw, nil
}
