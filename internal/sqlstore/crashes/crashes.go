// Package crashes keeps crash reports (R38): panics that the server's
// panic recovery or the scheduler recovered, scrubbed of what looks like
// personal data (kluis.ScrubCrash), sealed under the platform key, readable
// by operator admins only and deleted kluis.CrashReportDays after the
// crash. It implements kluis.CrashService.
//
// Threat model: a panic's message may quote anything the code had at hand —
// an address, a name, a token. Scrubbing by pattern removes what it
// recognises; sealing covers what it does not, so a copy of the database
// (a dump, an old file) shows only the time, the route's pattern and the
// request id. Every reading is recorded in the platform chain (crash.read),
// and so are recording (crash.record) and expiry (crash.expire). Crash
// reports are not part of backups (internal/sqlstore/backups), which would
// keep them longer than 30 days.
package crashes

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"time"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the crash reports' area.
type Service struct {
	core *sqlstore.Core
}

// New returns the area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.CrashService = (*Service)(nil)

// The table and column named in the reports' associated data: part of the
// stored format.
const (
	table     = "crash_reports"
	colReport = "report"
)

func field(id string) keys.FieldRef {
	return keys.FieldRef{Table: table, Column: colReport, Row: id}
}

// Bounds of what one report keeps, in bytes.
const (
	maxMessage = 4 << 10
	maxStack   = 64 << 10
	maxRoute   = 200
	maxListed  = 500
)

// sealed is the sealed part of a report.
type sealed struct {
	Message string `json:"message"`
	Stack   string `json:"stack"`
}

var requestID = regexp.MustCompile(`^[0-9a-f]{1,64}$`)

// RecordCrash scrubs, seals and stores one recovered panic, recorded as
// crash.record in the platform chain.
func (s *Service) RecordCrash(ctx context.Context, c kluis.CrashInput) (string, error) {
	body := sealed{
		Message: bound(kluis.ScrubCrash(fmt.Sprint(c.Panic)), maxMessage),
		Stack:   bound(kluis.ScrubCrash(string(c.Stack)), maxStack),
	}
	route := bound(kluis.ScrubCrash(c.Route), maxRoute)
	rid := c.RequestID
	if !requestID.MatchString(rid) {
		rid = ""
	}
	plain, err := json.Marshal(body)
	if err != nil {
		return "", err
	}
	var id string
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		id = kluis.NewID(t.Now())
		report, err := s.core.Seal(ctx, keys.PlatformKey(), field(id), plain)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `INSERT INTO crash_reports (id, at, route, request_id, report) VALUES (?, ?, ?, ?, ?)`,
			id, sqlstore.Micros(t.Now()), route, rid, report); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "crash.record", "crash:"+id, "success", map[string]any{"route": route})
	})
	return id, err
}

// CrashReports lists the reports kept, newest first.
func (s *Service) CrashReports(ctx context.Context, actor kluis.Actor) ([]kluis.CrashReport, error) {
	if !kluis.CanReadCrashReports(actor) {
		return nil, s.core.Refuse(ctx, audit.PlatformChain, actor, "crash.list", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT id, at, route, request_id FROM crash_reports ORDER BY at DESC, id DESC LIMIT ?`, maxListed)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := []kluis.CrashReport{}
	for rows.Next() {
		var c kluis.CrashReport
		var at int64
		if err := rows.Scan(&c.ID, &at, &c.Route, &c.RequestID); err != nil {
			return nil, err
		}
		c.At = sqlstore.FromMicros(at)
		out = append(out, c)
	}
	return out, rows.Err()
}

// CrashReport opens one report, recorded as crash.read in the platform
// chain in the same transaction that reads it.
func (s *Service) CrashReport(ctx context.Context, actor kluis.Actor, id string) (kluis.CrashReport, error) {
	if !kluis.CanReadCrashReports(actor) {
		return kluis.CrashReport{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "crash.read", "crash:"+id)
	}
	if !kluis.ValidID(id) {
		return kluis.CrashReport{}, kluis.ErrNotFound
	}
	var c kluis.CrashReport
	var report []byte
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		var at int64
		err := t.QueryRow(ctx, `SELECT id, at, route, request_id, report FROM crash_reports WHERE id = ?`, id).Scan(&c.ID, &at, &c.Route, &c.RequestID, &report)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		c.At = sqlstore.FromMicros(at)
		return t.Append(ctx, audit.PlatformChain, actor, "crash.read", "crash:"+id, "success", nil)
	})
	if err != nil {
		return kluis.CrashReport{}, err
	}
	plain, err := s.core.Open(ctx, field(c.ID), report)
	if err != nil {
		return kluis.CrashReport{}, err
	}
	var body sealed
	if err := json.Unmarshal(plain, &body); err != nil {
		return kluis.CrashReport{}, fmt.Errorf("crash report %s: %w", c.ID, err)
	}
	c.Message, c.Stack = body.Message, body.Stack
	return c, nil
}

// ExpireCrashReports deletes the reports older than kluis.CrashReportDays
// by the store's clock, with one crash.expire event naming how many.
func (s *Service) ExpireCrashReports(ctx context.Context) (int, error) {
	var n int64
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		before := t.Now().Add(-kluis.CrashReportDays * 24 * time.Hour)
		res, err := t.Exec(ctx, `DELETE FROM crash_reports WHERE at < ?`, sqlstore.Micros(before))
		if err != nil {
			return err
		}
		if n, err = res.RowsAffected(); err != nil || n == 0 {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "crash.expire", "", "success", map[string]any{"deleted": n, "days": kluis.CrashReportDays})
	})
	return int(n), err
}

// bound cuts s to at most n bytes on a rune boundary.
func bound(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n] + "…"
}
