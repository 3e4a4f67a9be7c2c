package privacy

import (
	"context"
	"database/sql"
	"errors"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// FindPrivacySettings returns what the organisation's privacy page says
// about its contact and the supervisory authority: the defaults (the Dutch
// Autoriteit Persoonsgegevens, no contact) until its managers change them.
// Every person of the organisation; reading them is not recorded (they are
// what the organisation publishes). Errors: unauthenticated.
func (s *Service) FindPrivacySettings(ctx context.Context, org kluis.OrgID, actor kluis.Actor) (kluis.PrivacySettings, error) {
	if !actor.IsOrgUser(org) && !actor.IsSupport(org) {
		return kluis.PrivacySettings{}, kluis.ErrUnauthenticated
	}
	st := kluis.DefaultPrivacySettings()
	err := s.core.DB().ReadRow(ctx, `SELECT contact, authority_name, authority_url FROM privacy_settings WHERE org_id = ?`, org).
		Scan(&st.Contact, &st.AuthorityName, &st.AuthorityURL)
	if errors.Is(err, sql.ErrNoRows) {
		return kluis.DefaultPrivacySettings(), nil
	}
	return st, err
}

// UpdatePrivacySettings sets the organisation's privacy contact and
// supervisory authority, recorded as privacy.update with the new values
// (the contact is published information, not a person's private data).
// Managers only. Errors: forbidden, invalid_input (contact,
// authority_name, authority_url).
func (s *Service) UpdatePrivacySettings(ctx context.Context, org kluis.OrgID, actor kluis.Actor, in kluis.PrivacySettings) (kluis.PrivacySettings, error) {
	if !kluis.CanHandlePrivacyRequests(actor, org) {
		return kluis.PrivacySettings{}, s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "privacy.update", "")
	}
	in = in.Normalize()
	if err := in.Validate(); err != nil {
		return kluis.PrivacySettings{}, err
	}
	err := s.core.Write(ctx, sqlstore.OrgChain(org), func(t *sqlstore.Tx) error {
		now := sqlstore.Micros(t.Now())
		res, err := t.Exec(ctx, `UPDATE privacy_settings SET contact = ?, authority_name = ?, authority_url = ?, updated_at = ? WHERE org_id = ?`,
			in.Contact, in.AuthorityName, in.AuthorityURL, now, org)
		if err != nil {
			return err
		}
		if n, _ := res.RowsAffected(); n == 0 {
			if _, err := t.Exec(ctx, `INSERT INTO privacy_settings (org_id, contact, authority_name, authority_url, updated_at) VALUES (?, ?, ?, ?, ?)`,
				org, in.Contact, in.AuthorityName, in.AuthorityURL, now); err != nil {
				return err
			}
		}
		return t.Append(ctx, sqlstore.OrgChain(org), actor, "privacy.update", "", "success", map[string]any{
			"contact": in.Contact, "authority_name": in.AuthorityName, "authority_url": in.AuthorityURL,
		})
	})
	if err != nil {
		return kluis.PrivacySettings{}, err
	}
	return in, nil
}
