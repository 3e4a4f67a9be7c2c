// Package usage keeps the anonymous usage statistics (R37): one counter per
// feature per UTC day, in the database every node shares, added to in
// batches by the server's request counter (internal/httpserver) and read by
// operator admins with every count below kluis.UsageSuppressBelow left out.
// It implements kluis.UsageService.
//
// Threat model: the counters must not let anyone — an operator, a copy of
// the database — learn who did what. So nothing but a feature and a day is
// stored (no person, organisation, address, session or request), a feature
// that looks like it holds an identifier is refused here as well as never
// produced by the counter, and small counts, which could single out one
// person's use of a rare feature, never leave the store. Adding to a
// counter is not audited (it would write the chain on every request);
// reading is the operator's plain right and not recorded either, like other
// data without personal data.
package usage

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Service is the usage statistics' area.
type Service struct {
	core *sqlstore.Core
}

// New returns the area over core.
func New(core *sqlstore.Core) *Service { return &Service{core: core} }

var _ kluis.UsageService = (*Service)(nil)

const dayLayout = "2006-01-02"

// RecordUsage adds counts to the shared counters in one transaction: all
// of them, or none when one is invalid.
func (s *Service) RecordUsage(ctx context.Context, counts []kluis.UsageCount) error {
	for _, c := range counts {
		if _, err := time.Parse(dayLayout, c.Day); err != nil || c.Count < 1 {
			return kluis.Invalid(map[string]string{"counts": "must be a day as YYYY-MM-DD with a positive count"})
		}
		if !kluis.ValidUsageFeature(c.Feature) {
			return kluis.Invalid(map[string]string{"counts": "must be a route pattern or a dotted name, without identifiers"})
		}
	}
	if len(counts) == 0 {
		return nil
	}
	return s.core.Write(ctx, "", func(t *sqlstore.Tx) error {
		for _, c := range counts {
			if _, err := t.Exec(ctx, `INSERT INTO usage_counts (day, feature, count) VALUES (?, ?, ?)
				ON CONFLICT (day, feature) DO UPDATE SET count = usage_counts.count + excluded.count`, c.Day, c.Feature, c.Count); err != nil {
				return fmt.Errorf("usage counter: %w", err)
			}
		}
		return nil
	})
}

// UsageStatistics returns the counters of from to to, counts below
// kluis.UsageSuppressBelow left out in the query itself.
func (s *Service) UsageStatistics(ctx context.Context, actor kluis.Actor, from, to time.Time) (kluis.UsageReport, error) {
	if !kluis.CanReadStatistics(actor) {
		return kluis.UsageReport{}, s.core.Refuse(ctx, audit.PlatformChain, actor, "statistics.read", "")
	}
	if to.IsZero() {
		to = s.core.Now()
	}
	if from.IsZero() {
		from = to.AddDate(0, 0, -(kluis.UsageDefaultDays - 1))
	}
	from, to = from.UTC().Truncate(24*time.Hour), to.UTC().Truncate(24*time.Hour)
	if to.Before(from) || to.Sub(from) >= kluis.UsageMaxDays*24*time.Hour {
		return kluis.UsageReport{}, kluis.Invalid(map[string]string{"from": fmt.Sprintf("must not be after to, and the range at most %d days", kluis.UsageMaxDays)})
	}
	r := kluis.UsageReport{From: from.Format(dayLayout), To: to.Format(dayLayout), Counts: []kluis.UsageCount{}}
	rows, err := s.core.DB().Query(ctx, `SELECT day, feature, count FROM usage_counts
		WHERE day >= ? AND day <= ? AND count >= ? ORDER BY day, feature`, r.From, r.To, kluis.UsageSuppressBelow)
	if err != nil {
		return r, err
	}
	defer rows.Close()
	for rows.Next() {
		var c kluis.UsageCount
		if err := rows.Scan(&c.Day, &c.Feature, &c.Count); err != nil {
			return r, err
		}
		r.Counts = append(r.Counts, c)
	}
	if err := rows.Err(); err != nil {
		return r, err
	}
	// The query left them out; this keeps it so if the query changes.
	r.Counts = slices.DeleteFunc(r.Counts, func(c kluis.UsageCount) bool { return c.Count < kluis.UsageSuppressBelow })
	return r, nil
}
