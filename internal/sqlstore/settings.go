package sqlstore

import (
	"context"
	"database/sql"
	"errors"
)

// Setting returns a recorded setting, or "" when unset.
func (db *DB) Setting(ctx context.Context, key string) (string, error) {
	var v string
	err := db.ReadRow(ctx, `SELECT value FROM settings WHERE key = ?`, key).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	return v, err
}

// SettingOnce records a setting unless one is recorded already, and returns
// the value that is recorded (first writer wins, also across processes).
func (db *DB) SettingOnce(ctx context.Context, key, value string) (string, error) {
	if _, err := db.WriteExec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?) ON CONFLICT (key) DO NOTHING`, key, value); err != nil {
		return "", err
	}
	return db.Setting(ctx, key)
}

// SetSetting records a setting.
func (db *DB) SetSetting(ctx context.Context, key, value string) error {
	_, err := db.WriteExec(ctx, `INSERT INTO settings (key, value) VALUES (?, ?)
		ON CONFLICT (key) DO UPDATE SET value = excluded.value`, key, value)
	return err
}
