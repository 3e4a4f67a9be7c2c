// Package inbox is the in-app inbox (issue 13, R5, R8): notices for one
// person of an organisation, which other areas post inside their own
// transaction (Post, PostToManagers), with a mail that only says a notice
// waits (R45: no names, no addresses, no reasons in mail). A person lists
// their own notices and marks them read; nobody reads another's. It
// implements kluis.InboxService over the shared core.
//
// Title and body are sealed under the recipient's user key: a notice may
// name a colleague, and erasing the recipient takes the notice with them.
package inbox

import (
	"context"
	"database/sql"
	"errors"
	"slices"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the inbox area.
type Service struct {
	core *sqlstore.Core
}

// New returns the inbox area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.InboxService = (*Service)(nil)

// The table and columns named in the ciphertexts' associated data. They are
// part of the stored format.
const (
	table    = "notices"
	colTitle = "title"
	colBody  = "body"
)

func field(org kluis.OrgID, id, column string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: table, Column: column, Row: id}
}

// maxNotices bounds one listing.
const maxNotices = 200

// FindNotices lists the caller's notices, newest first (at most 200).
// Reading one's own inbox is not recorded (DESIGN §3). Errors:
// unauthenticated.
func (s *Service) FindNotices(ctx context.Context, org kluis.OrgID, actor kluis.Actor) ([]kluis.Notice, error) {
	if !actor.IsOrgUser(org) {
		return nil, kluis.ErrUnauthenticated
	}
	type sealed struct {
		n           kluis.Notice
		title, body []byte
	}
	var list []sealed
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT id, kind, created_at, read_at, title, body FROM notices
			WHERE org_id = ? AND user_id = ? ORDER BY created_at DESC, id DESC LIMIT ?`, org, actor.UserID, maxNotices)
		if err != nil {
			return err
		}
		defer rows.Close()
		for rows.Next() {
			var r sealed
			var at int64
			var read sql.NullInt64
			if err := rows.Scan(&r.n.ID, &r.n.Kind, &at, &read, &r.title, &r.body); err != nil {
				return err
			}
			r.n.At, r.n.Read = sqlstore.FromMicros(at), read.Valid
			list = append(list, r)
		}
		return rows.Err()
	})
	if err != nil {
		return nil, err
	}
	out := make([]kluis.Notice, 0, len(list))
	for _, r := range list {
		title, err := s.core.Open(ctx, field(org, string(r.n.ID), colTitle), r.title)
		if err != nil {
			return nil, err
		}
		body, err := s.core.Open(ctx, field(org, string(r.n.ID), colBody), r.body)
		if err != nil {
			return nil, err
		}
		r.n.Title, r.n.Body = string(title), string(body)
		out = append(out, r.n)
	}
	return out, nil
}

// CountUnread counts the caller's unread notices. Errors: unauthenticated.
func (s *Service) CountUnread(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (int, error) {
	if !actor.IsOrgUser(org) {
		return 0, kluis.ErrUnauthenticated
	}
	var n int
	err := s.core.DB().ReadRow(ctx, `SELECT COUNT(*) FROM notices WHERE org_id = ? AND user_id = ? AND read_at IS NULL`, org, actor.UserID).Scan(&n)
	return n, err
}

// MarkNoticeRead marks one of the caller's notices read; marking it again
// changes nothing. Another person's notice is not_found. Errors:
// unauthenticated, not_found.
func (s *Service) MarkNoticeRead(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.NoticeID) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	if !kluis.ValidID(string(id)) {
		return kluis.ErrNotFound
	}
	return s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		var read sql.NullInt64
		err := t.QueryRow(ctx, `SELECT read_at FROM notices WHERE org_id = ? AND user_id = ? AND id = ?`, org, actor.UserID, id).Scan(&read)
		if errors.Is(err, sql.ErrNoRows) {
			return kluis.ErrNotFound
		}
		if err != nil || read.Valid {
			return err
		}
		_, err = t.Exec(ctx, `UPDATE notices SET read_at = ? WHERE org_id = ? AND user_id = ? AND id = ?`, sqlstore.Micros(t.Now()), org, actor.UserID, id)
		return err
	})
}

// Text gives a notice's title and body in a language.
type Text func(l i18n.Lang) (title, body string)

// Post puts a notice into the inbox of user (whose opened row is u) in the
// transaction, in the organisation's language, and queues the mail that a
// notice waits, with a link to the inbox and nothing else.
func Post(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, o kluis.Org, u kluis.User, kind string, text Text) error {
	lang, ok := i18n.Parse(o.Language)
	if !ok {
		lang = i18n.Default
	}
	title, body := text(lang)
	id := kluis.NewID(t.Now())
	key := sqlstore.UserKey(o.ID, u.ID)
	st, err := core.Seal(ctx, key, field(o.ID, id, colTitle), []byte(title))
	if err != nil {
		return err
	}
	sb, err := core.Seal(ctx, key, field(o.ID, id, colBody), []byte(body))
	if err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `INSERT INTO notices (id, org_id, user_id, kind, created_at, read_at, title, body) VALUES (?, ?, ?, ?, ?, NULL, ?, ?)`,
		id, o.ID, u.ID, kind, sqlstore.Micros(t.Now()), st, sb); err != nil {
		return err
	}
	link := core.PublicURL() + "/o/" + o.Slug + "/inbox"
	return t.QueueMail(ctx, o.ID, u.ID, o.Language, u.Email, mail.NoticeWaiting, mail.Data{OrgName: o.Name, Link: link})
}

// PostToManagers posts the notice to every active manager of org but those
// in except, and returns how many got it.
func PostToManagers(ctx context.Context, t *sqlstore.Tx, core *sqlstore.Core, org kluis.OrgID, except []kluis.UserID, kind string, text Text) (int, error) {
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return 0, err
	}
	rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users WHERE org_id = ? AND role = ? AND status = ? ORDER BY id`,
		org, kluis.RoleManager, kluis.StatusActive)
	if err != nil {
		return 0, err
	}
	var managers []sqlstore.SealedUser
	for rows.Next() {
		su, err := sqlstore.ScanSealedUser(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		if !slices.Contains(except, su.ID) {
			managers = append(managers, su)
		}
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, su := range managers {
		u, err := core.OpenUser(ctx, su)
		if err != nil {
			return 0, err
		}
		if err := Post(ctx, t, core, o, u, kind, text); err != nil {
			return 0, err
		}
	}
	return len(managers), nil
}
