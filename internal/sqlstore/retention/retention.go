// Package retention is the retention area (R25, R35, R36): the scheduled
// job "retention" erases people inactive beyond their organisation's
// period (after a notice), makes an organisation read-only when its licence
// ends and erases it after the grace period, prunes audit events beyond the
// organisation's audit retention behind a signed record, and removes
// expired sessions, invitations, tokens and challenges. It runs the real
// store code of each area: users' removal, the key destruction, the audit
// area's pruning. Every erasure and the run itself are recorded.
package retention

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/i18n"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
	"github.com/kluis/kluis/internal/sqlstore/licences"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/users"
)

// Options configures the retention area.
type Options struct {
	// Grace is how long an organisation stays read-only after its licence
	// ended before it is erased; 0: kluis.DefaultLicenceGrace.
	Grace time.Duration
}

// Service is the retention area.
type Service struct {
	core     *sqlstore.Core
	users    *users.Service
	projects *projects.Service
	audit    *auditlog.Service
	jobs     *jobs.Service
	grace    time.Duration
}

// New returns the retention area over the areas whose code it runs.
func New(core *sqlstore.Core, u *users.Service, p *projects.Service, a *auditlog.Service, j *jobs.Service, o Options) *Service {
	if o.Grace <= 0 {
		o.Grace = kluis.DefaultLicenceGrace
	}
	return &Service{core: core, users: u, projects: p, audit: a, jobs: j, grace: o.Grace}
}

var _ kluis.RetentionService = (*Service)(nil)

const day = 24 * time.Hour

// ReadOnly reports whether the organisation's licence has ended (R36).
func (s *Service) ReadOnly(ctx context.Context, org kluis.OrgID) (bool, error) {
	var ended bool
	err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		l, err := licences.Load(ctx, t, org)
		ended = l.Ended(t.Now())
		return err
	})
	return ended, err
}

// RunRetention applies every rule once and records retention.run, with the
// counts, in the platform chain. A rule that fails stops the run (the job
// is retried); what earlier rules did stays done and recorded.
func (s *Service) RunRetention(ctx context.Context) (kluis.RetentionReport, error) {
	var r kluis.RetentionReport
	orgs, err := s.orgIDs(ctx)
	if err != nil {
		return r, err
	}
	for _, org := range orgs {
		if err := s.licenceEnd(ctx, org, &r); err != nil {
			return r, fmt.Errorf("licence end: %w", err)
		}
	}
	if orgs, err = s.orgIDs(ctx); err != nil { // without the purged ones
		return r, err
	}
	for _, org := range orgs {
		if err := s.inactivePeople(ctx, org, &r); err != nil {
			return r, fmt.Errorf("inactive people: %w", err)
		}
		p, err := s.core.Policy(ctx, org)
		if err != nil {
			return r, err
		}
		// Clamped like the inactivity period: a retention of 0 written into
		// the database must not have the job sign away the whole chain.
		keep := clamp(p.AuditRetentionDays, kluis.MinAuditRetentionDays, kluis.MaxAuditRetentionDays)
		n, err := s.audit.PruneOrgChain(ctx, org, s.core.Now().Add(-time.Duration(keep)*day))
		r.AuditPruned += n
		if err != nil {
			return r, fmt.Errorf("audit pruning: %w", err)
		}
	}
	// The chains of organisations that are gone (purged, deleted) stay
	// verifiable, as ciphertext; they are pruned after the default
	// retention like any other.
	gone, err := s.goneOrgChains(ctx)
	if err != nil {
		return r, err
	}
	for _, org := range gone {
		n, err := s.audit.PruneOrgChain(ctx, org, s.core.Now().Add(-time.Duration(kluis.DefaultAuditRetentionDays)*day))
		r.AuditPruned += n
		if err != nil {
			return r, fmt.Errorf("audit pruning: %w", err)
		}
	}
	n, err := s.purgeExpired(ctx)
	r.ExpiredPurged = n
	if err != nil {
		return r, fmt.Errorf("expired purge: %w", err)
	}
	err = s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "retention.run", "", "success", map[string]any{
			"notified": r.Notified, "erased": r.Erased, "last_managers_kept": r.LastManagersKept,
			"orgs_terminated": r.OrgsTerminated, "orgs_purged": r.OrgsPurged,
			"audit_pruned": r.AuditPruned, "expired_purged": r.ExpiredPurged,
		})
	})
	return r, err
}

// goneOrgChains are the organisations whose chain remains while the
// organisation does not.
func (s *Service) goneOrgChains(ctx context.Context) ([]kluis.OrgID, error) {
	rows, err := s.core.DB().Query(ctx, `SELECT chain FROM audit_heads WHERE chain LIKE 'org:%' ORDER BY chain`)
	if err != nil {
		return nil, err
	}
	var chains []string
	for rows.Next() {
		var c string
		if err := rows.Scan(&c); err != nil {
			rows.Close()
			return nil, err
		}
		chains = append(chains, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, err
	}
	live, err := s.orgIDs(ctx)
	if err != nil {
		return nil, err
	}
	alive := map[string]bool{}
	for _, o := range live {
		alive[sqlstore.OrgChain(o)] = true
	}
	var out []kluis.OrgID
	for _, c := range chains {
		if !alive[c] {
			out = append(out, kluis.OrgID(strings.TrimPrefix(c, "org:")))
		}
	}
	return out, nil
}

func (s *Service) orgIDs(ctx context.Context) ([]kluis.OrgID, error) {
	rows, err := s.core.DB().Query(ctx, `SELECT id FROM orgs ORDER BY id`)
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

// licenceEnd applies R36 to one organisation: when its licence has ended
// it becomes read-only (recorded once as org.terminate in its chain, its
// managers told in their inbox); once the grace period has passed since
// then, it is erased (org.purge in the platform chain).
func (s *Service) licenceEnd(ctx context.Context, org kluis.OrgID, r *kluis.RetentionReport) error {
	if ended, err := s.ReadOnly(ctx, org); err != nil || !ended {
		return err // most organisations: no write, no lock on their chain
	}
	var purge bool
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		l, err := licences.Load(ctx, t, org)
		if err != nil || !l.Ended(t.Now()) {
			return err
		}
		var terminated sql.NullInt64
		if err := t.QueryRow(ctx, `SELECT terminated_at FROM orgs WHERE id = ?`+t.ForUpdate(), org).Scan(&terminated); err != nil {
			return err
		}
		if terminated.Valid {
			start := later(sqlstore.FromMicros(terminated.Int64), *l.EndsAt)
			purge = !t.Now().Before(start.Add(s.grace))
			return nil
		}
		if _, err := t.Exec(ctx, `UPDATE orgs SET terminated_at = ? WHERE id = ?`, sqlstore.Micros(t.Now()), org); err != nil {
			return err
		}
		purgeOn := later(t.Now(), *l.EndsAt).Add(s.grace)
		if err := t.Append(ctx, sqlstore.OrgChain(org), kluis.SystemActor, "org.terminate", "org:"+string(org), "success", map[string]any{
			"ends_at": l.EndsAt.UTC().Format(time.RFC3339), "purge_at": purgeOn.UTC().Format(time.RFC3339),
		}); err != nil {
			return err
		}
		r.OrgsTerminated++
		ends := *l.EndsAt
		_, err = inbox.PostToManagers(ctx, t, s.core, org, nil, kluis.NoticeLicenceEnded, func(l i18n.Lang) (string, string) {
			return l.T("inbox.terminated.title"), l.T("inbox.terminated.body", l.Date(ends, time.UTC), l.Date(purgeOn, time.UTC))
		})
		return err
	})
	if err != nil || !purge {
		return err
	}
	return s.purgeOrg(ctx, org, r)
}

// purgeOrg erases an organisation whose grace period has passed, as the
// operator's deletion does (orgs.DeleteOrg): its people, sessions, mail,
// projects and content rows go with its row, and its keys — organisation,
// people, projects — are destroyed right after. Its audit chain stays
// (ciphertext under destroyed keys, still verifiable); the platform chain
// records org.purge with the slug.
func (s *Service) purgeOrg(ctx context.Context, org kluis.OrgID, r *kluis.RetentionReport) error {
	var shred string
	var gone []kluis.ProjectID
	err := s.core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		l, err := licences.Load(ctx, t, org)
		if err != nil {
			return err
		}
		if !l.Ended(t.Now()) { // renewed meanwhile
			return nil
		}
		if gone, err = projects.ForgetContent(ctx, t, org); err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `DELETE FROM orgs WHERE id = ?`, org); err != nil {
			return err
		}
		if shred, err = t.ScheduleShred(ctx, org, ""); err != nil {
			return err
		}
		return t.Append(ctx, audit.PlatformChain, kluis.SystemActor, "org.purge", "org:"+string(org), "success", map[string]any{
			"slug": o.Slug, "ends_at": l.EndsAt.UTC().Format(time.RFC3339), "projects": len(gone),
		})
	})
	if err != nil || shred == "" {
		return err
	}
	r.OrgsPurged++
	s.core.ShredNow(ctx, kluis.SystemActor, shred)
	s.projects.DropBlobs(ctx, gone)
	return nil
}

// person is what the inactivity rule reads of one person.
type person struct {
	id       kluis.UserID
	role     kluis.Role
	status   kluis.UserStatus
	last     time.Time // last activity
	noticeAt *time.Time
}

// A person whose processing is restricted (R34, GDPR Art. 18) is left
// alone: no notice, no erasure, until the restriction is lifted; their
// inactivity counts on from where it stood.
//
// lastActivity is the latest of: the account's creation (the invitation),
// the last sign-in, the last use of any of the person's sessions, and the
// last use of any of their API tokens.
const peopleQuery = `SELECT u.id, u.role, u.status, u.created_at, u.last_login_at, u.inactivity_notice_at,
	(SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id),
	(SELECT MAX(k.last_used_at) FROM api_tokens k WHERE k.user_id = u.id)
	FROM users u WHERE u.org_id = ? AND u.restricted_at IS NULL ORDER BY u.created_at, u.id`

func (s *Service) people(ctx context.Context, org kluis.OrgID) ([]person, error) {
	rows, err := s.core.DB().Query(ctx, peopleQuery, org)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	var out []person
	for rows.Next() {
		var p person
		var created int64
		var login, notice, seen, used sql.NullInt64
		if err := rows.Scan(&p.id, &p.role, &p.status, &created, &login, &notice, &seen, &used); err != nil {
			return nil, err
		}
		p.last = sqlstore.FromMicros(created)
		for _, v := range []sql.NullInt64{login, seen, used} {
			if v.Valid && sqlstore.FromMicros(v.Int64).After(p.last) {
				p.last = sqlstore.FromMicros(v.Int64)
			}
		}
		if notice.Valid {
			n := sqlstore.FromMicros(notice.Int64)
			p.noticeAt = &n
		}
		out = append(out, p)
	}
	return out, rows.Err()
}

// inactivePeople applies R35 to one organisation. A person whose last
// activity lies InactivityNoticeDays less than the policy's
// inactive_user_days ago gets a notice (once per stretch of inactivity);
// one inactive for the whole period is erased — but not before
// InactivityNoticeDays after their notice, so that shortening the period
// never erases anyone unwarned. Invited and disabled people cannot sign
// in: they get no notice and are erased at the end of the period. The
// last active manager is never erased: an alert tells the operator.
func (s *Service) inactivePeople(ctx context.Context, org kluis.OrgID, r *kluis.RetentionReport) error {
	pol, err := s.core.Policy(ctx, org)
	if err != nil {
		return err
	}
	// The stored period is clamped to the policy's bounds: a value written
	// into the database behind kluis's back erases nobody sooner.
	period := time.Duration(clamp(pol.InactiveUserDays, kluis.MinInactiveUserDays, kluis.MaxInactiveUserDays)) * day
	warn := time.Duration(kluis.InactivityNoticeDays) * day
	people, err := s.people(ctx, org)
	if err != nil {
		return err
	}
	now := s.core.Now()
	keptManager := false
	for _, p := range people {
		noticed := p.noticeAt != nil && !p.noticeAt.Before(p.last)
		eraseOn := p.last.Add(period)
		if p.status == kluis.StatusActive {
			if !noticed {
				if now.Before(eraseOn.Add(-warn)) {
					continue
				}
				if err := s.notify(ctx, org, p, eraseOn, pol.InactiveUserDays, r); err != nil {
					return err
				}
				continue
			}
			eraseOn = later(eraseOn, p.noticeAt.Add(warn))
		}
		if now.Before(eraseOn) {
			continue
		}
		kept, err := s.erase(ctx, org, p, pol.InactiveUserDays, r)
		if err != nil {
			return err
		}
		keptManager = keptManager || kept
	}
	if keptManager {
		r.LastManagersKept++
		_, _, err := s.jobs.RaiseAlert(ctx, kluis.AlertInactiveLastManager, sqlstore.OrgChain(org),
			fmt.Sprintf("the organisation's last manager has been inactive longer than %d days and is kept", pol.InactiveUserDays))
		return err
	}
	return nil
}

func later(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// notify posts the inactivity notice to p, recorded as retention.notice.
// The person is read again in the transaction: a sign-in since the list
// was read cancels it.
func (s *Service) notify(ctx context.Context, org kluis.OrgID, p person, eraseOn time.Time, days int, r *kluis.RetentionReport) error {
	posted := false
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if active, err := s.stillInactive(ctx, t, org, p); err != nil || !active {
			return err
		}
		u, err := t.FindUser(ctx, org, p.id)
		if err != nil {
			return err
		}
		o, err := t.FindOrg(ctx, org)
		if err != nil {
			return err
		}
		if _, err := t.Exec(ctx, `UPDATE users SET inactivity_notice_at = ? WHERE org_id = ? AND id = ?`, sqlstore.Micros(t.Now()), org, p.id); err != nil {
			return err
		}
		if err := t.Append(ctx, sqlstore.OrgChain(org), kluis.SystemActor, "retention.notice", "user:"+string(p.id), "success", map[string]any{
			"erase_on": eraseOn.UTC().Format(time.DateOnly),
		}); err != nil {
			return err
		}
		posted = true
		return inbox.Post(ctx, t, s.core, o, u, kluis.NoticeInactivity, func(l i18n.Lang) (string, string) {
			return l.T("inbox.inactive.title"), l.T("inbox.inactive.body", days, l.Date(eraseOn, time.UTC))
		})
	})
	if err == nil && posted {
		r.Notified++
	}
	return err
}

// stillInactive reads p's activity again in t and reports whether it is
// what the list said (nobody signed in or used a token meanwhile) and p is
// not restricted now (a restriction may have come meanwhile).
func (s *Service) stillInactive(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, p person) (bool, error) {
	var login, seen, used, restricted sql.NullInt64
	err := t.QueryRow(ctx, `SELECT u.last_login_at,
		(SELECT MAX(s.last_seen_at) FROM sessions s WHERE s.user_id = u.id),
		(SELECT MAX(k.last_used_at) FROM api_tokens k WHERE k.user_id = u.id), u.restricted_at
		FROM users u WHERE u.org_id = ? AND u.id = ?`, org, p.id).Scan(&login, &seen, &used, &restricted)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if restricted.Valid {
		return false, nil
	}
	for _, v := range []sql.NullInt64{login, seen, used} {
		if v.Valid && sqlstore.FromMicros(v.Int64).After(p.last) {
			return false, nil
		}
	}
	return true, nil
}

// erase erases p for inactivity, recorded as user.erase (by the system,
// reason inactivity) in the organisation's chain, and destroys their key
// right after. It reports whether p was kept as the last manager.
func (s *Service) erase(ctx context.Context, org kluis.OrgID, p person, days int, r *kluis.RetentionReport) (kept bool, err error) {
	var shred string
	err = s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		if active, err := s.stillInactive(ctx, t, org, p); err != nil || !active {
			return err
		}
		// An invited or disabled manager of an organisation without an
		// active one is kept too: erasing them would leave it without
		// anyone who can ever manage it.
		if p.role == kluis.RoleManager && p.status != kluis.StatusActive {
			var n int
			if err := t.QueryRow(ctx, `SELECT COUNT(*) FROM users WHERE org_id = ? AND role = ? AND status = ? AND id <> ?`,
				org, kluis.RoleManager, kluis.StatusActive, p.id).Scan(&n); err != nil {
				return err
			}
			if n == 0 {
				return kluis.ErrLastManager
			}
		}
		var err error
		if shred, err = s.users.EraseInactive(ctx, t, org, p.id); err != nil {
			return err
		}
		return t.Append(ctx, sqlstore.OrgChain(org), kluis.SystemActor, "user.erase", "user:"+string(p.id), "success", map[string]any{
			"reason": "inactivity", "inactive_days": days,
		})
	})
	if errors.Is(err, kluis.ErrLastManager) {
		return true, nil
	}
	if err != nil || shred == "" {
		return false, err
	}
	r.Erased++
	s.core.ShredNow(ctx, kluis.SystemActor, shred)
	return false, nil
}

// expired are the tables whose rows are of no use after expires_at, with
// how long after it they still serve: SMS codes count against the hourly
// cap on texts sent to a person (factors/sms.go) for an hour after they
// were sent, so they are kept a day past their expiry.
var expired = []struct {
	table string
	keep  time.Duration
}{
	{"sessions", 0}, {"invitations", 0}, {"api_tokens", 0}, {"challenges", 0}, {"passkey_ceremonies", 0},
	{"email_changes", 0}, {"password_resets", 0}, {"sms_codes", day}, {"support_sessions", 0},
}

// purgeExpired removes every expired session, invitation, API token,
// sign-in challenge, passkey ceremony, e-mail change, reset link, SMS code
// and support session. Counted, not recorded one by one: none was of use.
func (s *Service) purgeExpired(ctx context.Context) (int64, error) {
	now := s.core.Now()
	var total int64
	for _, e := range expired {
		res, err := s.core.DB().WriteExec(ctx, `DELETE FROM `+e.table+` WHERE expires_at <= ?`, sqlstore.Micros(now.Add(-e.keep)))
		if err != nil {
			return total, fmt.Errorf("%s: %w", e.table, err)
		}
		n, _ := res.RowsAffected()
		total += n
	}
	return total, nil
}

// clamp bounds v to [lo, hi].
func clamp(v, lo, hi int) int { return max(lo, min(hi, v)) }
