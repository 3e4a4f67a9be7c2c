package privacy

import (
	"context"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
)

// Reminded counts what one run of the reminders did.
type Reminded struct {
	Requests int // requests whose reminder went out
	Notices  int // notices posted (one per active manager)
}

// RemindPrivacyRequests is the scheduled job privacy_reminders: for every
// request still open or in progress whose next reminder is due
// (kluis.ReminderDue: a week before the due date, a day before, once
// overdue), it posts a notice to the organisation's active managers, with
// the mail that one waits (R45), and marks the request reminded, recorded
// as dsr.remind by system in the organisation's chain — all in one
// transaction. The mark is taken with a conditional update, so a request
// is reminded of each stage at most once, however often and on however
// many nodes the job runs; a request first seen late gets only the latest
// stage. Kluis's own work: no actor calls it.
func (s *Service) RemindPrivacyRequests(ctx context.Context) (Reminded, error) {
	var done Reminded
	now := s.core.Now()
	type due struct {
		org      kluis.OrgID
		id       kluis.PrivacyRequestID
		typ      kluis.PrivacyRequestType
		received time.Time
		due      time.Time
		stage    int
	}
	var list []due
	rows, err := s.core.DB().Query(ctx, `SELECT org_id, id, type, received_at, due_at, reminder FROM privacy_requests
		WHERE status IN (?, ?) AND reminder < ? AND due_at <= ? ORDER BY due_at, id`,
		kluis.RequestOpen, kluis.RequestInProgress, kluis.ReminderOverdue, sqlstore.Micros(now.Add(7*24*time.Hour)))
	if err != nil {
		return done, err
	}
	for rows.Next() {
		var d due
		var received, dueAt int64
		var sent int
		if err := rows.Scan(&d.org, &d.id, &d.typ, &received, &dueAt, &sent); err != nil {
			rows.Close()
			return done, err
		}
		d.received, d.due = sqlstore.FromMicros(received), sqlstore.FromMicros(dueAt)
		if d.stage = kluis.ReminderDue(d.due, now); d.stage > sent {
			list = append(list, d)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return done, err
	}
	for _, d := range list {
		if ctx.Err() != nil {
			return done, ctx.Err()
		}
		err := s.core.Write(ctx, sqlstore.OrgChain(d.org), func(t *sqlstore.Tx) error {
			res, err := t.Exec(ctx, `UPDATE privacy_requests SET reminder = ? WHERE org_id = ? AND id = ? AND reminder < ? AND status IN (?, ?)`,
				d.stage, d.org, d.id, d.stage, kluis.RequestOpen, kluis.RequestInProgress)
			if err != nil {
				return err
			}
			if n, _ := res.RowsAffected(); n == 0 {
				return nil // handled meanwhile, or reminded by another node
			}
			n, err := inbox.PostToManagers(ctx, t, s.core, d.org, nil, kluis.NoticePrivacyRequestDue, func(l i18n.Lang) (string, string) {
				typ := l.T("dsr.type." + string(d.typ))
				return l.T("inbox.dsr.title." + stageName(d.stage)), l.T("inbox.dsr.body", typ, l.Date(d.received, time.UTC), l.DateTime(d.due, time.UTC))
			})
			if err != nil {
				return err
			}
			done.Requests++
			done.Notices += n
			return t.Append(ctx, sqlstore.OrgChain(d.org), kluis.SystemActor, "dsr.remind", requestTarget(d.id), "success",
				map[string]any{"reminder": stageName(d.stage), "managers": n})
		})
		if err != nil {
			return done, err
		}
	}
	return done, nil
}

func stageName(stage int) string {
	switch stage {
	case kluis.ReminderWeek:
		return "week"
	case kluis.ReminderDay:
		return "day"
	}
	return "overdue"
}
