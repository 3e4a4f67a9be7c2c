package privacy

import (
	"context"
	"database/sql"
	"errors"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
)

// The table and column named in the outcome's associated data: part of the
// stored format.
const (
	table      = "privacy_requests"
	colOutcome = "outcome"
)

func outcomeField(org kluis.OrgID, id kluis.PrivacyRequestID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: table, Column: colOutcome, Row: string(id)}
}

// maxListed bounds one listing of the register.
const maxListed = 1000

const requestColumns = `id, type, subject_id, received_at, due_at, status, handler_id, outcome, updated_at, extended`

// sealedRequest is a row as stored: the outcome still sealed.
type sealedRequest struct {
	kluis.PrivacyRequest
	outcome []byte
}

func scanRequest(row interface{ Scan(...any) error }) (sealedRequest, error) {
	var r sealedRequest
	var received, due, updated int64
	var handler sql.NullString
	err := row.Scan(&r.ID, &r.Type, &r.Subject, &received, &due, &r.Status, &handler, &r.outcome, &updated, &r.ExtendedMonths)
	if errors.Is(err, sql.ErrNoRows) {
		return r, kluis.ErrNotFound
	}
	r.ReceivedAt, r.DueAt, r.UpdatedAt = sqlstore.FromMicros(received), sqlstore.FromMicros(due), sqlstore.FromMicros(updated)
	r.Handler = kluis.UserID(handler.String)
	return r, err
}

func requestTarget(id kluis.PrivacyRequestID) string { return "dsr:" + string(id) }

// FilePrivacyRequest records a data-subject request received now and due
// one month later (kluis.PrivacyRequestDue), status open, recorded as
// dsr.create with the type and the subject. A person files their own; a
// manager may file one for any active or invited person of the
// organisation who asked by other means. Errors: unauthenticated,
// forbidden (a person naming someone else), invalid_input (type, subject:
// no such person), conflict (MaxOpenRequestsPerPerson open already).
func (s *Service) FilePrivacyRequest(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.PrivacyRequestInput) (kluis.PrivacyRequest, error) {
	if !actor.IsOrgUser(org) {
		return kluis.PrivacyRequest{}, kluis.ErrUnauthenticated
	}
	if !kluis.CanFilePrivacyRequest(actor, org, in.Subject) {
		return kluis.PrivacyRequest{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "dsr.create", sqlstore.UserTarget(in.Subject))
	}
	if err := in.Validate(); err != nil {
		return kluis.PrivacyRequest{}, err
	}
	if in.Subject == "" {
		in.Subject = actor.UserID
	}
	var r kluis.PrivacyRequest
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		subject, err := findPerson(ctx, t, s.core, org, in.Subject)
		if errors.Is(err, kluis.ErrNotFound) {
			return kluis.Invalid(map[string]string{"subject": "is not a person of this organisation"})
		}
		if err != nil {
			return err
		}
		var open int
		if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM privacy_requests WHERE org_id = ? AND subject_id = ? AND status IN (?, ?)`,
			org, in.Subject, kluis.RequestOpen, kluis.RequestInProgress).Scan(&open); err != nil {
			return err
		}
		if open >= kluis.MaxOpenRequestsPerPerson {
			return kluis.Errorf(kluis.EConflict, "there are as many open requests for this person as allowed; wait until one is handled")
		}
		now := t.Now()
		r = kluis.PrivacyRequest{
			ID: kluis.PrivacyRequestID(kluis.NewID(now)), Type: in.Type, Subject: in.Subject, SubjectName: subject,
			ReceivedAt: now, DueAt: kluis.PrivacyRequestDue(now), Status: kluis.RequestOpen, UpdatedAt: now,
		}
		if _, err := t.Exec(ctx, `INSERT INTO privacy_requests (id, org_id, type, subject_id, received_at, due_at, status, handler_id, outcome, updated_at, reminder)
			VALUES (?, ?, ?, ?, ?, ?, ?, NULL, NULL, ?, 0)`,
			r.ID, org, string(r.Type), r.Subject, sqlstore.Micros(now), sqlstore.Micros(r.DueAt), string(r.Status), sqlstore.Micros(now)); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "dsr.create", requestTarget(r.ID), "success", map[string]any{
			"type": string(r.Type), "subject": "user:" + string(r.Subject), "due_at": r.DueAt.Format(time.RFC3339),
		})
	})
	if err != nil {
		return kluis.PrivacyRequest{}, err
	}
	return r, nil
}

// findPerson returns the name of a person of org, in the transaction.
// Errors: not_found (no such person, or another organisation's).
func findPerson(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, org kluis.OrgID, id kluis.UserID) (string, error) {
	if !kluis.ValidID(string(id)) {
		return "", kluis.ErrNotFound
	}
	su, err := sqlstore.ScanSealedUser(t.QueryRow(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? AND id = ?`, org, id))
	if err != nil {
		return "", err
	}
	return core.OpenName(ctx, su)
}

// names opens the names of people of org, by id; a person no longer there
// (erased) has none.
type names struct {
	core *sqlstore.Core
	org  kluis.OrgID
	seen map[kluis.UserID]string
}

func (n *names) of(ctx context.Context, t *sqlstore.Tx, id kluis.UserID) (string, error) {
	if id == "" {
		return "", nil
	}
	if name, ok := n.seen[id]; ok {
		return name, nil
	}
	name, err := findPerson(ctx, t, n.core, n.org, id)
	if errors.Is(err, kluis.ErrNotFound) {
		err = nil
	}
	if err != nil {
		return "", err
	}
	n.seen[id] = name
	return name, nil
}

// open completes rows as stored: the outcome opened, the names of subject
// and handler.
func (s *Service) open(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, rows []sealedRequest) ([]kluis.PrivacyRequest, error) {
	n := &names{core: s.core, org: org, seen: map[kluis.UserID]string{}}
	out := make([]kluis.PrivacyRequest, 0, len(rows))
	for _, r := range rows {
		if r.outcome != nil {
			p, err := s.core.Open(ctx, outcomeField(org, r.ID), r.outcome)
			if err != nil {
				return nil, err
			}
			r.Outcome = string(p)
		}
		var err error
		if r.SubjectName, err = n.of(ctx, t, r.Subject); err != nil {
			return nil, err
		}
		if r.HandlerName, err = n.of(ctx, t, r.Handler); err != nil {
			return nil, err
		}
		r.Overdue = !r.Status.Closed() && t.Now().After(r.DueAt)
		out = append(out, r.PrivacyRequest)
	}
	return out, nil
}

func queryRequests(ctx context.Context, t *sqlstore.Tx, query string, args ...any) ([]sealedRequest, error) {
	rows, err := t.Query(ctx, query, args...)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []sealedRequest
	for rows.Next() {
		r, err := scanRequest(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, r)
	}
	return out, rows.Err()
}

// FindPrivacyRequests lists requests, newest first (at most 1000). A
// manager gets every request of the organisation, recorded as dsr.list
// with the count (the register says who exercised which right); with mine,
// or for anyone else, the caller's own, not recorded (DESIGN §3). Errors:
// unauthenticated.
func (s *Service) FindPrivacyRequests(ctx context.Context, org kluis.OrgID, actor kluis.Actor, mine bool) ([]kluis.PrivacyRequest, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	var out []kluis.PrivacyRequest
	if mine || !kluis.CanHandlePrivacyRequests(actor, org) {
		err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
			rows, err := queryRequests(ctx, t, `SELECT `+requestColumns+` FROM privacy_requests WHERE org_id = ? AND subject_id = ?
				ORDER BY received_at DESC, id DESC LIMIT ?`, org, actor.UserID, maxListed)
			if err != nil {
				return err
			}
			out, err = s.open(ctx, t, org, rows)
			return err
		})
		return out, err
	}
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanHandlePrivacyRequests(actor, org) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "dsr.list", "", kluis.ErrForbidden)
		}
		rows, err := queryRequests(ctx, t, `SELECT `+requestColumns+` FROM privacy_requests WHERE org_id = ?
			ORDER BY received_at DESC, id DESC LIMIT ?`, org, maxListed)
		if err != nil {
			return err
		}
		if out, err = s.open(ctx, t, org, rows); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "dsr.list", "", "success", map[string]any{"count": len(out)})
	})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// RequestsAbout lists the requests about one person, newest first (at most
// 1000), their outcomes opened: for that person's own export of their data
// (R34 access and portability), which the caller records as user.export.
func (s *Service) RequestsAbout(ctx context.Context, org kluis.OrgID, subject kluis.UserID) ([]kluis.PrivacyRequest, error) {
	var out []kluis.PrivacyRequest
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := queryRequests(ctx, t, `SELECT `+requestColumns+` FROM privacy_requests WHERE org_id = ? AND subject_id = ?
			ORDER BY received_at DESC, id DESC LIMIT ?`, org, subject, maxListed)
		if err != nil {
			return err
		}
		out, err = s.open(ctx, t, org, rows)
		return err
	})
	return out, err
}

// UpdatePrivacyRequest sets a request's status, handler or outcome, or
// extends its due date by one or two further months (GDPR Art. 12(3): only
// while it is open, within its first month, with the reasons in the
// outcome; the reminders start over). The
// handler must be an active manager of the organisation; a request that
// has none gets the caller when they change it. Refusing needs an outcome
// that gives the reasons (GDPR Art. 12(4)). The outcome is sealed under the
// organisation key, and the change recorded as dsr.update with the new
// status and handler (the outcome itself stays out of the chain). A person
// who is not a manager gets not_found for someone else's request and
// forbidden for their own. Errors: unauthenticated, forbidden, not_found,
// invalid_input (status, handler, outcome).
func (s *Service) UpdatePrivacyRequest(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.PrivacyRequestID, u kluis.PrivacyRequestUpdate) (kluis.PrivacyRequest, error) {
	if !actor.IsOrgUser(org) {
		return kluis.PrivacyRequest{}, kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.PrivacyRequest{}, kluis.ErrNotFound
	}
	manager := kluis.CanHandlePrivacyRequests(actor, org)
	u = u.Normalize()
	var out kluis.PrivacyRequest
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		cur, err := scanRequest(t.QueryRow(ctx, `SELECT `+requestColumns+` FROM privacy_requests WHERE org_id = ? AND id = ?`+t.ForUpdate(), org, id))
		if err != nil {
			return err
		}
		if !manager {
			if cur.Subject != actor.UserID {
				return kluis.ErrNotFound // someone else's request does not exist for them
			}
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "dsr.update", requestTarget(id), kluis.ErrForbidden)
		}
		// Checked once the request is found: an id of another organisation
		// is not_found whatever the body says.
		if err := u.Validate(); err != nil {
			return err
		}
		next := cur
		if u.Status != nil {
			next.Status = *u.Status
		}
		if u.Handler != nil {
			next.Handler = *u.Handler
		} else if next.Handler == "" {
			next.Handler = actor.UserID
		}
		if next.Handler != "" && next.Handler != cur.Handler {
			var role kluis.Role
			var status kluis.UserStatus
			err := t.QueryRow(ctx, `SELECT role, status FROM users WHERE org_id = ? AND id = ?`, org, string(next.Handler)).Scan(&role, &status)
			if errors.Is(err, sql.ErrNoRows) || err == nil && (role != kluis.RoleManager || status != kluis.StatusActive) || !kluis.ValidID(string(next.Handler)) {
				return kluis.Invalid(map[string]string{"handler": "must be an active manager of this organisation"})
			}
			if err != nil {
				return err
			}
		}
		outcome := cur.outcome
		if u.Outcome != nil {
			next.Outcome = *u.Outcome
			outcome = nil
			if next.Outcome != "" {
				if outcome, err = s.core.Seal(ctx, keys.OrgKey(string(org)), outcomeField(org, id), []byte(next.Outcome)); err != nil {
					return err
				}
			}
		}
		if next.Status == kluis.RequestRefused && outcome == nil {
			return kluis.Invalid(map[string]string{"outcome": "give the reasons for refusing"})
		}
		extended := u.ExtendMonths != nil && *u.ExtendMonths != cur.ExtendedMonths
		if extended {
			switch {
			case *u.ExtendMonths < cur.ExtendedMonths:
				return kluis.Invalid(map[string]string{"extend_months": "an extension cannot be shortened"})
			case next.Status.Closed():
				return kluis.Invalid(map[string]string{"extend_months": "only an open request can be extended"})
			case t.Now().After(kluis.PrivacyRequestDue(cur.ReceivedAt)):
				return kluis.Invalid(map[string]string{"extend_months": "the first month has ended: an extension must be announced within it"})
			case outcome == nil:
				return kluis.Invalid(map[string]string{"outcome": "give the reasons for the extension"})
			}
			next.ExtendedMonths = *u.ExtendMonths
			next.DueAt = kluis.PrivacyRequestDueIn(cur.ReceivedAt, 1+next.ExtendedMonths)
			// The reminders start over before the new due date.
			if _, err := t.Exec(ctx, `UPDATE privacy_requests SET reminder = 0 WHERE org_id = ? AND id = ?`, org, id); err != nil {
				return err
			}
		}
		now := t.Now()
		if _, err := t.Exec(ctx, `UPDATE privacy_requests SET status = ?, handler_id = ?, outcome = ?, updated_at = ?, due_at = ?, extended = ? WHERE org_id = ? AND id = ?`,
			string(next.Status), nullable(next.Handler), outcome, sqlstore.Micros(now), sqlstore.Micros(next.DueAt), next.ExtendedMonths, org, id); err != nil {
			return err
		}
		details := map[string]any{"status": string(next.Status), "handler": ""}
		if next.Handler != "" {
			details["handler"] = "user:" + string(next.Handler)
		}
		if extended {
			details["extended_months"] = next.ExtendedMonths
			details["due_at"] = next.DueAt.Format(time.RFC3339)
		}
		if u.Outcome != nil {
			details["outcome_changed"] = true
		}
		if err := t.Append(ctx, sqlstore.OrgChain(org), actor, "dsr.update", requestTarget(id), "success", details); err != nil {
			return err
		}
		if (next.Status != cur.Status || extended) && cur.Subject != actor.UserID {
			if err := s.tellSubject(ctx, t, org, next.PrivacyRequest); err != nil {
				return err
			}
		}
		next.outcome = outcome
		opened, err := s.open(ctx, t, org, []sealedRequest{next})
		if err != nil {
			return err
		}
		out = opened[0]
		return nil
	})
	return out, err
}

func nullable(id kluis.UserID) any {
	if id == "" {
		return nil
	}
	return string(id)
}

// tellSubject puts a notice into the inbox of the person a request is
// about when its status changes, with the mail that one waits (R45): they
// follow their request inside kluis. A person no longer active (erased,
// disabled, not yet joined) gets none.
func (s *Service) tellSubject(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, r kluis.PrivacyRequest) error {
	u, err := t.FindUser(ctx, org, r.Subject)
	if errors.Is(err, kluis.ErrNotFound) || err == nil && u.Status != kluis.StatusActive {
		return nil
	}
	if err != nil {
		return err
	}
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return err
	}
	return inbox.Post(ctx, t, s.core, o, u, kluis.NoticePrivacyRequestUpdated, func(l i18n.Lang) (string, string) {
		return l.T("inbox.dsr_updated.title"), l.T("inbox.dsr_updated.body", l.T("dsr.type."+string(r.Type)), l.Date(r.ReceivedAt, time.UTC), l.T("dsr.status."+string(r.Status)), l.DateTime(r.DueAt, time.UTC))
	})
}
