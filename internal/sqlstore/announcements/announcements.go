// Package announcements is the operator's maintenance announcements (issue
// 15, R3, R40, R45): a notice in the inbox of every active person who opted
// in to maintenance mail and is not restricted (R34), with a mail that only
// says a notice waits. The opt-in is off by default for everyone invited
// since issue 15. It implements kluis.AnnouncementService over the shared
// core.
package announcements

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
)

// Service is the announcements area.
type Service struct {
	core *sqlstore.Core
}

// New returns the announcements area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.AnnouncementService = (*Service)(nil)

// SendAnnouncement posts a maintenance announcement to every person who
// wants maintenance mail: active, maintenance_emails set, processing not
// restricted. Everything commits in one transaction with its event,
// announcement.send in the platform chain, which counts the recipients and
// keeps the title and body sealed under the platform key. Operator admins
// and the command line. Errors: forbidden, invalid_input.
func (s *Service) SendAnnouncement(ctx context.Context, actor kluis.Actor, a kluis.Announcement) (int, error) {
	const action = "announcement.send"
	if !kluis.CanAnnounce(actor) {
		return 0, s.core.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	a = a.Normalize()
	if err := a.Validate(); err != nil {
		return 0, err
	}
	var reached int
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		reached = 0
		orgs, err := orgIDs(ctx, t)
		if err != nil {
			return err
		}
		for _, org := range orgs {
			n, err := s.post(ctx, t, org, a)
			if err != nil {
				return err
			}
			reached += n
		}
		return t.Append(ctx, audit.PlatformChain, actor, action, "", "success", map[string]any{
			"recipients":    reached,
			"organisations": len(orgs),
			"title":         sqlstore.SealedDetail{Key: keys.PlatformKey(), Value: a.Title},
			"body":          sqlstore.SealedDetail{Key: keys.PlatformKey(), Value: a.Body},
		})
	})
	if err != nil {
		return 0, err
	}
	return reached, nil
}

func orgIDs(ctx context.Context, t *sqlstore.Tx) ([]kluis.OrgID, error) {
	rows, err := t.Query(ctx, `SELECT id FROM orgs ORDER BY id`)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.OrgID
	for rows.Next() {
		var id kluis.OrgID
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// post gives the announcement to the organisation's people who want it.
func (s *Service) post(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, a kluis.Announcement) (int, error) {
	o, err := t.FindOrg(ctx, org)
	if err != nil {
		return 0, err
	}
	rows, err := t.Query(ctx, `SELECT `+sqlstore.UserColumns+` FROM users
		WHERE org_id = ? AND status = ? AND maintenance_emails = ? AND restricted_at IS NULL ORDER BY id`,
		org, kluis.StatusActive, true)
	if err != nil {
		return 0, err
	}
	var people []sqlstore.SealedUser
	for rows.Next() {
		su, err := sqlstore.ScanSealedUser(rows)
		if err != nil {
			rows.Close()
			return 0, err
		}
		people = append(people, su)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, err
	}
	for _, su := range people {
		u, err := s.core.OpenUser(ctx, su)
		if err != nil {
			return 0, err
		}
		if err := inbox.Post(ctx, t, s.core, o, u, kluis.NoticeMaintenance, func(i18n.Lang) (string, string) {
			return a.Title, a.Body
		}); err != nil {
			return 0, err
		}
	}
	return len(people), nil
}
