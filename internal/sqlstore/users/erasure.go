package users

import (
	"context"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
)

// remove deletes user u of org in the transaction and schedules the
// destruction of their key: what a manager's delete and the operator's
// erasure on request share (R5). The last active manager is refused.
func (s *Service) remove(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, u kluis.User) (shred string, err error) {
	if u.Role == kluis.RoleManager && u.Status == kluis.StatusActive {
		n, err := s.countActiveManagers(ctx, t, org, u.ID)
		if err != nil {
			return "", err
		}
		if n == 0 {
			return "", kluis.ErrLastManager
		}
	}
	if _, err := t.Exec(ctx, `DELETE FROM users WHERE org_id = ? AND id = ?`, org, u.ID); err != nil {
		return "", err
	}
	return t.ScheduleShred(ctx, org, u.ID)
}

// normalizeReason trims an erasure's reason and checks it: required, at
// most kluis.MaxReasonLength characters, no control characters but line
// breaks and tabs.
func normalizeReason(reason string) (string, error) {
	reason = strings.TrimSpace(reason)
	switch {
	case reason == "":
		return "", kluis.Invalid(map[string]string{"reason": "is required"})
	case !utf8.ValidString(reason) || utf8.RuneCountInString(reason) > kluis.MaxReasonLength:
		return "", kluis.Invalid(map[string]string{"reason": "must be at most 1000 characters"})
	case strings.ContainsFunc(reason, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' }):
		return "", kluis.Invalid(map[string]string{"reason": "must not contain control characters"})
	}
	return reason, nil
}

// EraseOnRequest erases one person of the organisation when it asks the
// operator to (R5): the same deletion as DeleteUser (sessions, tokens,
// factors and personal data go with the row, the key is destroyed), found
// by the e-mail address's blind index, recorded in the organisation's chain
// as user.delete by the operator (or cli) with the reason sealed under the
// organisation key, so its managers read it and nothing of the person is
// kept in clear. The organisation's active managers get a notice in their
// inbox and a mail that one waits. The address is never logged, recorded or
// echoed. Operator admins and the command line. Errors: forbidden,
// invalid_input (the reason), not_found, conflict (the last manager).
func (s *Service) EraseOnRequest(ctx context.Context, actor kluis.Actor, org kluis.OrgID, email, reason string) error {
	if !kluis.CanEraseOnRequest(actor) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.delete", "")
	}
	reason, err := normalizeReason(reason)
	if err != nil {
		return err
	}
	lookup := kluis.NormalizeEmail(email)
	if kluis.ValidateEmail(lookup) != nil {
		return kluis.ErrNotFound
	}
	idx, err := s.core.EmailIndex(ctx, org, lookup)
	if err != nil {
		return err
	}
	var shred string
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if !kluis.CanEraseOnRequest(actor) {
			return sqlstore.Deny(sqlstore.OrgChain(org), actor, "user.delete", "", kluis.ErrForbidden)
		}
		var id kluis.UserID
		if err := t.QueryRow(ctx, `SELECT id FROM users WHERE org_id = ? AND email_index = ?`, org, idx).Scan(&id); err != nil {
			return kluis.ErrNotFound
		}
		u, err := t.FindUser(ctx, org, id)
		if err != nil {
			return err
		}
		if u.Restricted() { // R34: kept as it is; only the person erases themselves
			return kluis.ErrProcessingRestricted
		}
		if shred, err = s.remove(ctx, t, org, u); err != nil {
			return err
		}
		if err := t.Append(ctx, sqlstore.OrgChain(org), actor, "user.delete", "user:"+string(u.ID), "success", map[string]any{
			"on_request": true,
			"reason":     sqlstore.SealedDetail{Key: keys.OrgKey(string(org)), Value: reason},
		}); err != nil {
			return err
		}
		at := t.Now()
		_, err = inbox.PostToManagers(ctx, t, s.core, org, nil, kluis.NoticeErasedOnRequest, func(l i18n.Lang) (string, string) {
			return l.T("inbox.erased.title"), l.T("inbox.erased.body", l.Date(at, time.UTC))
		})
		return err
	})
	if err == nil {
		s.core.ShredNow(ctx, actor, shred)
	}
	return err
}

// managerCount counts the organisation's managers who hold or will hold
// the role's power: active and invited, not disabled; but except.
func managerCount(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, except kluis.UserID) (int, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND role = ? AND status <> ? AND id <> ?`,
		org, kluis.RoleManager, kluis.StatusDisabled, except).Scan(&n)
	return n, err
}

// checkManagerCap refuses one more manager (not counting except, who is
// becoming one) beyond the policy's max_managers (R8): conflict, with the
// field named.
func checkManagerCap(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, except kluis.UserID) error {
	p, err := t.Policy(ctx, org)
	if err != nil || p.MaxManagers == nil {
		return err
	}
	n, err := managerCount(ctx, t, org, except)
	if err != nil {
		return err
	}
	if n+1 > *p.MaxManagers {
		return &kluis.Error{Code: kluis.EConflict, Message: "the organisation's policy allows no more managers",
			Fields: map[string]string{"max_managers": "the policy allows at most " + strconv.Itoa(*p.MaxManagers) + " managers"}}
	}
	return nil
}

// notifyNewManager tells the organisation's other managers that u became
// a manager (R8), in their inbox and by a mail that a notice waits.
func notifyNewManager(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, org kluis.OrgID, u kluis.User, actor kluis.Actor) error {
	at := t.Now()
	except := []kluis.UserID{u.ID}
	if actor.IsOrgUser(org) {
		except = append(except, actor.UserID)
	}
	name := u.Name
	_, err := inbox.PostToManagers(ctx, t, core, org, except, kluis.NoticeManagerGranted, func(l i18n.Lang) (string, string) {
		return l.T("inbox.manager.title"), l.T("inbox.manager.body", name, l.Date(at, time.UTC))
	})
	return err
}

// CountAdministrators tells a manager how many managers the organisation
// has (active and invited), its policy's cap, and how many operators of
// the platform hold each role (R8). Counts only, never who; not recorded
// (no personal data). Errors: forbidden.
func (s *Service) CountAdministrators(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.Administrators, error) {
	a := kluis.Administrators{Operators: map[kluis.OperatorRole]int{}}
	if !kluis.CanReadUsers(actor, org) {
		return a, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "administrators.read", "")
	}
	for _, r := range kluis.OperatorRoles {
		a.Operators[r] = 0
	}
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if a.Managers, err = managerCount(ctx, t, org, ""); err != nil {
			return err
		}
		p, err := t.Policy(ctx, org)
		if err != nil {
			return err
		}
		a.MaxManagers = p.MaxManagers
		rows, err := t.Query(ctx, `SELECT role, COUNT(*) FROM operators WHERE NOT disabled GROUP BY role`)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var role kluis.OperatorRole
			var n int
			if err := rows.Scan(&role, &n); err != nil {
				return err
			}
			a.Operators[role] = n
		}
		return rows.Err()
	})
	return a, err
}
