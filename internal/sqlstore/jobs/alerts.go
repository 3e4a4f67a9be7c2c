package jobs

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"unicode"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// checkAlert refuses a kind that is not one of kluis.AlertKinds and a
// subject that is empty, long or holds control characters.
func checkAlert(kind, subject string) error {
	if !kluis.ValidAlertKind(kind) {
		return fmt.Errorf("jobs: %q is not a kind of alert", kind)
	}
	if subject == "" || len(subject) > 200 || strings.IndexFunc(subject, unicode.IsControl) >= 0 {
		return errors.New("jobs: an alert's subject is 1 to 200 bytes without control characters")
	}
	return nil
}

// RaiseAlert opens an alert of kind about subject (a job's name, a chain's
// id, a backup target's name: never personal data) with detail, or, when
// one of that kind and subject is open, moves its time and detail and
// counts the raise. An alert that opens is recorded as alert.raised in the
// platform chain and mailed to the operator's security address, if set:
// the mail names the kind and where to look, nothing else. It reports the
// alert and whether it opened now.
func (s *Service) RaiseAlert(ctx context.Context, kind, subject, detail string) (kluis.Alert, bool, error) {
	if err := checkAlert(kind, subject); err != nil {
		return kluis.Alert{}, false, err
	}
	var a kluis.Alert
	var opened bool
	err := s.core.Write(ctx, platformChain, func(t *sqlstore.Tx) error {
		var err error
		a, opened, err = s.raise(ctx, t, kind, subject, clean(detail))
		return err
	})
	return a, opened, err
}

const alertColumns = `id, kind, subject, opened_at, at, raised, detail, resolved_at`

func scanAlert(scan func(...any) error) (kluis.Alert, error) {
	var a kluis.Alert
	var opened, at int64
	var resolved sql.NullInt64
	err := scan(&a.ID, &a.Kind, &a.Subject, &opened, &at, &a.Raised, &a.Detail, &resolved)
	a.OpenedAt, a.At, a.ResolvedAt = sqlstore.FromMicros(opened), sqlstore.FromMicros(at), sqlstore.NullMicros(resolved)
	return a, err
}

// raise is RaiseAlert in t, which holds the platform chain's head: raises
// of one alert from several nodes take turns.
func (s *Service) raise(ctx context.Context, t *sqlstore.Tx, kind, subject, detail string) (kluis.Alert, bool, error) {
	now := sqlstore.Micros(t.Now())
	a, err := scanAlert(t.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE kind = ? AND subject = ? AND resolved_at IS NULL`+t.ForUpdate(), kind, subject).Scan)
	if err == nil {
		if _, err := t.Exec(ctx, `UPDATE alerts SET at = ?, detail = ?, raised = raised + 1 WHERE id = ?`, now, detail, a.ID); err != nil {
			return a, false, err
		}
		a.At, a.Detail, a.Raised = t.Now(), detail, a.Raised+1
		return a, false, nil
	}
	if !errors.Is(err, sql.ErrNoRows) {
		return a, false, err
	}
	a = kluis.Alert{ID: kluis.NewID(t.Now()), Kind: kind, Subject: subject, OpenedAt: t.Now(), At: t.Now(), Raised: 1, Detail: detail}
	if _, err := t.Exec(ctx, `INSERT INTO alerts (`+alertColumns+`) VALUES (?, ?, ?, ?, ?, 1, ?, NULL)`, a.ID, kind, subject, now, now, detail); err != nil {
		return a, false, err
	}
	if err := t.Append(ctx, platformChain, kluis.SystemActor, "alert.raised", "alert:"+a.ID, "success", map[string]any{
		"kind": kind, "subject": subject, "detail": detail,
	}); err != nil {
		return a, false, err
	}
	if s.securityEmail != "" {
		if err := t.QueueMail(ctx, "", "", "en", s.securityEmail, mail.OperatorAlert, mail.Data{OrgName: s.instance(), Alert: kind}); err != nil {
			return a, false, err
		}
	}
	return a, true, nil
}

// instance names this kluis in mail: the host of its public URL.
func (s *Service) instance() string {
	if u, err := url.Parse(s.core.PublicURL()); err == nil && u.Host != "" {
		return u.Host
	}
	return "kluis"
}

// ResolveAlert marks an open alert resolved, recorded as alert.resolved in
// the platform chain by actor. Operator admins and security staff, and the
// command line. Errors: forbidden, not_found (no such open alert).
func (s *Service) ResolveAlert(ctx context.Context, actor kluis.Actor, id string) error {
	if !kluis.CanResolveAlerts(actor) {
		return s.core.Refuse(ctx, platformChain, actor, "alert.resolve", "")
	}
	if !kluis.ValidID(id) {
		return kluis.ErrNotFound
	}
	return s.core.Write(ctx, platformChain, func(t *sqlstore.Tx) error {
		a, err := scanAlert(t.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE id = ? AND resolved_at IS NULL`+t.ForUpdate(), id).Scan)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrNotFound
		}
		if err != nil {
			return err
		}
		return resolve(ctx, t, actor, a)
	})
}

func resolve(ctx context.Context, t *sqlstore.Tx, actor kluis.Actor, a kluis.Alert) error {
	if _, err := t.Exec(ctx, `UPDATE alerts SET resolved_at = ? WHERE id = ?`, sqlstore.Micros(t.Now()), a.ID); err != nil {
		return err
	}
	return t.Append(ctx, platformChain, actor, "alert.resolved", "alert:"+a.ID, "success", map[string]any{
		"kind": a.Kind, "subject": a.Subject,
	})
}

// SettleAlert resolves the open alert of kind about subject, if any, as
// kluis itself (alert.resolved by system): for what mends by itself, such
// as a backup that succeeds after one failed. It reports whether one was
// open.
func (s *Service) SettleAlert(ctx context.Context, kind, subject string) (bool, error) {
	if err := checkAlert(kind, subject); err != nil {
		return false, err
	}
	var settled bool
	err := s.core.Write(ctx, platformChain, func(t *sqlstore.Tx) error {
		var err error
		settled, err = s.settle(ctx, t, kind, subject)
		return err
	})
	return settled, err
}

func (s *Service) settle(ctx context.Context, t *sqlstore.Tx, kind, subject string) (bool, error) {
	a, err := scanAlert(t.QueryRow(ctx, `SELECT `+alertColumns+` FROM alerts WHERE kind = ? AND subject = ? AND resolved_at IS NULL`+t.ForUpdate(), kind, subject).Scan)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	return true, resolve(ctx, t, kluis.SystemActor, a)
}

// OpenAlerts lists the alerts not resolved, the most recently raised
// first. Every operator role and the command line. Errors: forbidden.
func (s *Service) OpenAlerts(ctx context.Context, actor kluis.Actor) ([]kluis.Alert, error) {
	if !kluis.CanSeeJobs(actor) {
		return nil, s.core.Refuse(ctx, platformChain, actor, "alerts.list", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT `+alertColumns+` FROM alerts WHERE resolved_at IS NULL ORDER BY at DESC, id DESC`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.Alert
	for rows.Next() {
		a, err := scanAlert(rows.Scan)
		if err != nil {
			return nil, err
		}
		out = append(out, a)
	}
	return out, rows.Err()
}

// OpenAlertCounts counts the open alerts by kind, every kind present (zero
// for none): the metrics' kluis_alerts_open, the same on every node.
func (s *Service) OpenAlertCounts(ctx context.Context) (map[string]int, error) {
	out := map[string]int{}
	for _, k := range kluis.AlertKinds {
		out[k] = 0
	}
	rows, err := s.core.DB().Query(ctx, `SELECT kind, COUNT(*) FROM alerts WHERE resolved_at IS NULL GROUP BY kind`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	for rows.Next() {
		var kind string
		var n int
		if err := rows.Scan(&kind, &n); err != nil {
			return nil, err
		}
		out[kind] = n
	}
	return out, rows.Err()
}
