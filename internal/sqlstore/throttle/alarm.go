package throttle

import (
	"context"
	"database/sql"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// orgSignIns counts a sign-in of the organisation, failed or not, in its
// failure-rate window, and raises the organisation-wide alarm when many
// identifiers fail and few sign-ins succeed: recorded in the organisation's
// chain and mailed to its managers and to the operator's security address
// (at most once per AlarmEvery). It never locks the organisation.
func (s *Service) orgSignIns(ctx context.Context, t *sqlstore.Tx, from kluis.Origin, org kluis.OrgID, success bool) error {
	c := s.c
	if _, err := t.Exec(ctx, `INSERT INTO org_failure_rates (org_id, window_start, failures, successes) VALUES (?, ?, 0, 0)
		ON CONFLICT (org_id) DO NOTHING`, org, sqlstore.Micros(t.Now())); err != nil {
		return err
	}
	var start int64
	var failures, successes int
	var alarm sql.NullInt64
	if err := t.QueryRow(ctx, `SELECT window_start, failures, successes, alarm_at FROM org_failure_rates WHERE org_id = ?`+t.ForUpdate(), org).
		Scan(&start, &failures, &successes, &alarm); err != nil {
		return err
	}
	if t.Now().Sub(sqlstore.FromMicros(start)) >= c.AlarmWindow {
		start, failures, successes = sqlstore.Micros(t.Now()), 0, 0
	}
	if success {
		successes++
	} else {
		failures++
	}
	if !success && failures >= c.AlarmFailures && successes*10 < failures && (!alarm.Valid || t.Now().Sub(sqlstore.FromMicros(alarm.Int64)) >= c.AlarmEvery) {
		var idents int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM login_failures WHERE scope = ? AND updated_at >= ?`, org, start).Scan(&idents); err != nil {
			return err
		}
		if idents >= c.AlarmIdentifiers {
			alarm = sql.NullInt64{Int64: sqlstore.Micros(t.Now()), Valid: true}
			if err := s.raiseAlarm(ctx, t, from, org, failures, successes, idents); err != nil {
				return err
			}
		}
	}
	_, err := t.Exec(ctx, `UPDATE org_failure_rates SET window_start = ?, failures = ?, successes = ?, alarm_at = ? WHERE org_id = ?`,
		start, failures, successes, alarm, org)
	return err
}

func (s *Service) raiseAlarm(ctx context.Context, t *sqlstore.Tx, from kluis.Origin, org kluis.OrgID, failures, successes, idents int) error {
	t.Count("alarm")
	if err := t.Append(ctx, sqlstore.OrgChain(org), kluis.Actor{From: from}, "security.alarm", "org:"+string(org), "success", map[string]any{
		"failures": failures, "successes": successes, "identifiers": idents, "minutes": int(s.c.AlarmWindow / time.Minute),
	}); err != nil {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? AND role = ? AND status = ?`, org, kluis.RoleManager, kluis.StatusActive)
	if err != nil {
		return err
	}
	var managers []kluis.User
	for rows.Next() {
		u, err := s.core.ScanUser(ctx, rows)
		if err != nil {
			rows.Close()
			return err
		}
		managers = append(managers, u)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	link := s.core.PublicURL() + "/o/" + o.Slug + "/audit"
	for _, m := range managers {
		if err := t.QueueMail(ctx, org, m.ID, o.Language, m.Email, mail.SecurityAlarm, mail.Data{OrgName: o.Name, Link: link}); err != nil {
			return err
		}
	}
	if s.securityEmail != "" {
		return t.QueueMail(ctx, "", "", "en", s.securityEmail, mail.SecurityAlarm, mail.Data{OrgName: o.Name})
	}
	return nil
}
