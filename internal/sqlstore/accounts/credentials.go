package accounts

import (
	"context"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Credentials that must not outlive a change of how a person signs in: a
// new password, a reset of their second factors, a disabled account. Each
// area owns its table; this is the one list of what goes.

// DropInFlight ends what a credential change must not leave working: open
// password-reset links (and their undelivered mail, which carries the
// link), login challenges, and a pending second-factor set-up.
func DropInFlight(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) error {
	if scope.Realm == kluis.RealmOrg {
		if err := DropResets(ctx, t, scope.Org, kluis.UserID(subject)); err != nil {
			return err
		}
	}
	if _, err := t.Exec(ctx, `DELETE FROM challenges WHERE org_id = ? AND subject = ?`, scope.Org, subject); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM factors WHERE org_id = ? AND subject = ? AND confirmed_at IS NULL`, scope.Org, subject)
	return err
}

// DropResets deletes a user's reset links and their undelivered mail: no
// working token outlives its link anywhere.
func DropResets(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID, user kluis.UserID) error {
	if _, err := t.Exec(ctx, `DELETE FROM password_resets WHERE org_id = ? AND user_id = ?`, org, user); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM mail_queue WHERE org_id = ? AND user_id = ? AND kind = ?`, org, user, string(mail.PasswordReset))
	return err
}

// RevokeTokens revokes every personal API token of the account (RealmOrg;
// operators have none) and returns how many there were.
func RevokeTokens(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) (int64, error) {
	if scope.Realm != kluis.RealmOrg {
		return 0, nil
	}
	res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ? AND user_id = ?`, scope.Org, subject)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}

// RevokeOrgTokens revokes every personal API token of the organisation.
func RevokeOrgTokens(ctx context.Context, t *sqlstore.Tx, org kluis.OrgID) (int64, error) {
	res, err := t.Exec(ctx, `DELETE FROM api_tokens WHERE org_id = ?`, org)
	if err != nil {
		return 0, err
	}
	return res.RowsAffected()
}
