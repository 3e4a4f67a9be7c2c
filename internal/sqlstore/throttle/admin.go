package throttle

import (
	"context"
	"database/sql"
	"errors"
	"slices"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// AddressBlocks lists the addresses blocked now or permanently (the
// operator's security staff and admins, the command line: R46).
func (s *Service) AddressBlocks(ctx context.Context, actor kluis.Actor) ([]kluis.AddressBlock, error) {
	if !kluis.CanKeepSecurity(actor) {
		return nil, s.core.Refuse(ctx, audit.PlatformChain, actor, "throttle.list", "")
	}
	rows, err := s.core.DB().Query(ctx, `SELECT ref, blocks, blocked_until, permanent, updated_at FROM address_failures
		WHERE permanent OR blocked_until > ? ORDER BY updated_at DESC`, sqlstore.Micros(s.core.Now()))
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []kluis.AddressBlock
	for rows.Next() {
		var b kluis.AddressBlock
		var until sql.NullInt64
		var updated int64
		if err := rows.Scan(&b.Ref, &b.Blocks, &until, &b.Permanent, &updated); err != nil {
			return nil, err
		}
		b.Until, b.UpdatedAt = sqlstore.NullMicros(until), sqlstore.FromMicros(updated)
		out = append(out, b)
	}
	return out, rows.Err()
}

// LiftAddressBlock ends the block of an address (by its reference) and
// forgets its failures; KeepAddressBlock makes it permanent. Both are the
// operator's, recorded in the platform chain. Errors: forbidden, not_found.
func (s *Service) LiftAddressBlock(ctx context.Context, actor kluis.Actor, ref string) error {
	return s.setAddressBlock(ctx, actor, ref, false)
}

// KeepAddressBlock makes the block of an address permanent: it holds for
// trusted browsers too, until the operator lifts it.
func (s *Service) KeepAddressBlock(ctx context.Context, actor kluis.Actor, ref string) error {
	return s.setAddressBlock(ctx, actor, ref, true)
}

func (s *Service) setAddressBlock(ctx context.Context, actor kluis.Actor, ref string, permanent bool) error {
	action := "throttle.lift"
	if permanent {
		action = "throttle.permanent"
	}
	if !kluis.CanKeepSecurity(actor) {
		return s.core.Refuse(ctx, audit.PlatformChain, actor, action, "")
	}
	return s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		var q string
		if permanent {
			q = `UPDATE address_failures SET permanent = TRUE, updated_at = ? WHERE ref = ?`
		} else {
			q = `UPDATE address_failures SET permanent = FALSE, blocked_until = NULL, window_count = 0, prev_count = 0, blocks = 0, updated_at = ? WHERE ref = ?`
		}
		res, err := t.Exec(ctx, q, sqlstore.Micros(t.Now()), ref)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			return kluis.ErrNotFound
		}
		return t.Append(ctx, audit.PlatformChain, actor, action, "address:"+ref, "success", nil)
	})
}

// SweepThrottle forgets counters untouched for Throttle.Forget whose locks
// and blocks have ended, and expired unlock links: nothing is kept longer
// than it protects (R40).
func (s *Service) SweepThrottle(ctx context.Context) error {
	now := s.core.Now()
	old := sqlstore.Micros(now.Add(-s.c.Forget))
	for _, q := range []string{
		`DELETE FROM login_failures WHERE updated_at < ? AND (locked_until IS NULL OR locked_until < ?)`,
		`DELETE FROM address_failures WHERE updated_at < ? AND NOT permanent AND (blocked_until IS NULL OR blocked_until < ?)`,
	} {
		if _, err := s.core.DB().WriteExec(ctx, q, old, sqlstore.Micros(now)); err != nil {
			return err
		}
	}
	_, err := s.core.DB().WriteExec(ctx, `DELETE FROM unlock_links WHERE expires_at < ?`, sqlstore.Micros(now))
	return err
}

// SecurityDigest mails the operator's security address a summary of the
// brute-force protection since the last digest — counts of locks, blocks and
// alarms and the slugs of the organisations that raised an alarm, no
// personal data (R26) — and records it in the platform chain. It runs as
// the scheduled job security_digest (every `every`, once across all nodes,
// under the job's lease: package jobs), whose last success starts the
// period; the first digest covers `every`. It reports whether a digest was
// made: none without a security address.
func (s *Service) SecurityDigest(ctx context.Context, every time.Duration) (bool, error) {
	if s.securityEmail == "" {
		return false, nil
	}
	return true, s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		var last sql.NullInt64
		err := t.QueryRow(ctx, `SELECT last_run_at FROM job_leases WHERE name = 'security_digest'`).Scan(&last)
		if err != nil && !errors.Is(err, sql.ErrNoRows) {
			return err
		}
		since := t.Now().Add(-every)
		if last.Valid {
			since = sqlstore.FromMicros(last.Int64)
		}
		d := mail.Digest{Hours: max(1, int(t.Now().Sub(since).Round(time.Hour)/time.Hour))}
		rows, err := t.Query(ctx, `SELECT action, chain, COUNT(*) FROM audit_events
			WHERE action IN ('auth.locked', 'operator.locked', 'auth.address_blocked', 'security.alarm') AND at >= ? AND at <= ?
			GROUP BY action, chain`, sqlstore.Micros(since), sqlstore.Micros(t.Now()))
		if err != nil {
			return err
		}
		var alarmed []kluis.OrgID
		for rows.Next() {
			var action, chain string
			var n int
			if err := rows.Scan(&action, &chain, &n); err != nil {
				rows.Close()
				return err
			}
			switch action {
			case "auth.locked", "operator.locked":
				d.Locks += n
			case "auth.address_blocked":
				d.Blocks += n
			case "security.alarm":
				d.Alarms += n
				alarmed = append(alarmed, kluis.OrgID(strings.TrimPrefix(chain, "org:")))
			}
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		for _, org := range alarmed {
			o, err := t.FindOrg(ctx, org)
			if errors.Is(err, kluis.ErrNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			d.AlarmOrgs = append(d.AlarmOrgs, o.Slug)
		}
		slices.Sort(d.AlarmOrgs)
		host := s.core.PublicURL()
		if err := t.QueueMail(ctx, "", "", "en", s.securityEmail, mail.SecurityDigest, mail.Data{OrgName: host, Digest: &d}); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "security.digest", "", "success", map[string]any{
			"locks": d.Locks, "blocks": d.Blocks, "alarms": d.Alarms,
		})
	})
}
