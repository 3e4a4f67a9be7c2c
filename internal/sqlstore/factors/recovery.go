package factors

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"database/sql"
	"errors"
	"fmt"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mfa"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
)

// Recovery codes: ten single-use codes made with a person's first second
// factor (and with every new authenticator app), kept as keyed hashes under
// a key apart from the data, so a copy of the database alone cannot be
// searched: a user's under their organisation's index key, an operator's
// under a key of their own sealed under the platform key.

// newRecoveryCodes replaces the account's recovery codes by ten new ones
// and returns them, to be shown once.
func (s *Service) newRecoveryCodes(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) ([]string, error) {
	if _, err := t.Exec(ctx, `DELETE FROM recovery_codes WHERE org_id = ? AND subject = ?`, scope.Org, subject); err != nil {
		return nil, err
	}
	hash, err := s.recoveryHasher(ctx, t, scope, subject, true)
	if err != nil {
		return nil, err
	}
	user, operator := accounts.Owner(scope, subject)
	codes := mfa.NewRecoveryCodes(mfa.RecoveryCodes)
	for _, c := range codes {
		h, err := hash(c)
		if err != nil {
			return nil, err
		}
		if _, err := t.Exec(ctx, `INSERT INTO recovery_codes (id, org_id, subject, user_id, operator_id, code_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)`,
			kluis.NewID(t.Now()), scope.Org, subject, user, operator, h, sqlstore.Micros(t.Now())); err != nil {
			return nil, err
		}
	}
	return codes, nil
}

// useRecoveryCode uses up a recovery code of the account and reports
// whether it was one.
func (s *Service) useRecoveryCode(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject, code string) (bool, error) {
	hash, err := s.recoveryHasher(ctx, t, scope, subject, false)
	if err != nil || hash == nil {
		return false, err
	}
	h, err := hash(code)
	if err != nil {
		return false, err
	}
	res, err := t.Exec(ctx, `UPDATE recovery_codes SET used_at = ? WHERE org_id = ? AND subject = ? AND code_hash = ? AND used_at IS NULL`,
		sqlstore.Micros(t.Now()), scope.Org, subject, h)
	if err != nil {
		return false, err
	}
	n, _ := res.RowsAffected()
	return n == 1, nil
}

// recoveryLeft counts the account's unused recovery codes.
func recoveryLeft(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) (int, error) {
	var n int
	err := t.QueryRow(ctx, `SELECT COUNT(*) FROM recovery_codes WHERE org_id = ? AND subject = ? AND used_at IS NULL`, scope.Org, subject).Scan(&n)
	return n, err
}

// recoveryHasher returns what the store keeps of a code of the account: an
// HMAC under the organisation's index key bound to the user, or under the
// operator's own recovery key. With fresh, an operator gets a new key (new
// codes are being made); without, a missing key means no codes (nil).
func (s *Service) recoveryHasher(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string, fresh bool) (func(string) ([]byte, error), error) {
	if scope.Realm == kluis.RealmOrg {
		return func(code string) ([]byte, error) {
			return s.core.Keys().BlindIndex(ctx, string(scope.Org), "recovery-code/v1\x00"+subject+"\x00"+mfa.NormalizeRecoveryCode(code))
		}, nil
	}
	key, err := s.operatorRecoveryKey(ctx, t, subject, fresh)
	if err != nil || key == nil {
		return nil, err
	}
	return func(code string) ([]byte, error) {
		m := hmac.New(sha256.New, key)
		fmt.Fprintf(m, "kluis/operator-recovery-code/v1\x00%s\x00%s", subject, mfa.NormalizeRecoveryCode(code))
		return m.Sum(nil), nil
	}, nil
}

// operatorRecoveryKey returns the key of an operator's recovery codes:
// operators.recovery_key, or for codes made before it existed the
// recovery_key of the operator's TOTP row. With fresh it makes a new one.
func (s *Service) operatorRecoveryKey(ctx context.Context, t *sqlstore.Tx, op string, fresh bool) ([]byte, error) {
	field := operatorRecoveryField(op)
	if fresh {
		key := make([]byte, 32)
		rand.Read(key)
		return key, s.storeOperatorRecoveryKey(ctx, t, op, key)
	}
	var sealed []byte
	if err := t.QueryRow(ctx, `SELECT recovery_key FROM operators WHERE id = ?`, op).Scan(&sealed); err != nil {
		return nil, err
	}
	if sealed != nil {
		return s.core.Open(ctx, field, sealed)
	}
	var id string
	err := t.QueryRow(ctx, `SELECT id, recovery_key FROM factors WHERE org_id = '' AND subject = ? AND recovery_key IS NOT NULL`, op).Scan(&id, &sealed)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	return s.core.Open(ctx, secretField(kluis.OperatorScope, id, "recovery_key"), sealed)
}

func operatorRecoveryField(op string) keys.FieldRef {
	return keys.FieldRef{Table: "operators", Column: "recovery_key", Row: op}
}

// storeOperatorRecoveryKey seals key into operators.recovery_key and
// forgets any copy kept on the operator's factor rows.
func (s *Service) storeOperatorRecoveryKey(ctx context.Context, t *sqlstore.Tx, op string, key []byte) error {
	sealed, err := s.core.Seal(ctx, keys.PlatformKey(), operatorRecoveryField(op), key)
	if err != nil {
		return fmt.Errorf("seal recovery key: %w", err)
	}
	if _, err := t.Exec(ctx, `UPDATE operators SET recovery_key = ? WHERE id = ?`, sealed, op); err != nil {
		return err
	}
	_, err = t.Exec(ctx, `UPDATE factors SET recovery_key = NULL WHERE org_id = '' AND subject = ?`, op)
	return err
}

// keepRecoveryKey is called before an operator's factor row is deleted or
// replaced: recovery codes made before operators.recovery_key existed are
// keyed by the recovery_key of the operator's authenticator-app row, which
// then moves to operators.recovery_key, so that the codes keep working
// without the app. Users' codes do not depend on a factor row.
func (s *Service) keepRecoveryKey(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) error {
	if scope.Realm != kluis.RealmOperator {
		return nil
	}
	var sealed []byte
	if err := t.QueryRow(ctx, `SELECT recovery_key FROM operators WHERE id = ?`, subject).Scan(&sealed); err != nil {
		return err
	}
	if sealed != nil {
		return nil
	}
	key, err := s.operatorRecoveryKey(ctx, t, subject, false)
	if err != nil || key == nil {
		return err
	}
	return s.storeOperatorRecoveryKey(ctx, t, subject, key)
}

// dropRecoveryWithoutFactor removes the recovery codes and the wrong-answer
// count of an account that has no second factor left.
func dropRecoveryWithoutFactor(ctx context.Context, t *sqlstore.Tx, scope kluis.Scope, subject string) error {
	var n int
	if err := t.QueryRow(ctx, `SELECT (SELECT COUNT(*) FROM factors WHERE org_id = ? AND subject = ? AND confirmed_at IS NOT NULL)
		+ (SELECT COUNT(*) FROM passkeys WHERE org_id = ? AND subject = ?)`, scope.Org, subject, scope.Org, subject).Scan(&n); err != nil {
		return err
	}
	if n > 0 {
		return nil
	}
	if _, err := t.Exec(ctx, `DELETE FROM recovery_codes WHERE org_id = ? AND subject = ?`, scope.Org, subject); err != nil {
		return err
	}
	_, err := t.Exec(ctx, `DELETE FROM factor_guards WHERE org_id = ? AND subject = ?`, scope.Org, subject)
	return err
}
