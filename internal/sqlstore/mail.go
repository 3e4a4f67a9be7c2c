package sqlstore

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
)

// Envelope is a queued message as sealed in mail_queue.envelope: everything
// that names or addresses the recipient, in one ciphertext.
type Envelope struct {
	From    string   `json:"from"`
	To      []string `json:"to"`
	Message []byte   `json:"message"`
}

// mailKey is the key a queued message is sealed under: its recipient's user
// key, so that deleting the user makes every copy unreadable; else the
// organisation's key, else the platform key.
func mailKey(org kluis.OrgID, user kluis.UserID) keys.KeyRef {
	switch {
	case user != "":
		return UserKey(org, user)
	case org != "":
		return keys.OrgKey(string(org))
	}
	return keys.PlatformKey()
}

func mailField(id string, org kluis.OrgID) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabMail, Column: colEnvelope, Row: id}
}

func (s *Core) sealEnvelope(ctx context.Context, id string, org kluis.OrgID, user kluis.UserID, e Envelope) ([]byte, error) {
	b, err := json.Marshal(e)
	if err != nil {
		return nil, err
	}
	return s.Seal(ctx, mailKey(org, user), mailField(id, org), b)
}

// ErrBadEnvelope marks a queued message whose envelope does not decode.
var ErrBadEnvelope = errors.New("not a queued message envelope")

// OpenMail opens a queued message's envelope. Errors: ErrUnreadable (with
// keys.ErrKeyDestroyed or keys.ErrDecrypt), ErrBadEnvelope.
func (s *Core) OpenMail(ctx context.Context, id string, org kluis.OrgID, c []byte) (Envelope, error) {
	var e Envelope
	b, err := s.Open(ctx, mailField(id, org), c)
	if err != nil {
		return e, err
	}
	if err := json.Unmarshal(b, &e); err != nil {
		return e, fmt.Errorf("%w: queued mail %s", ErrBadEnvelope, id)
	}
	return e, nil
}

// QueueMail renders a notice, composes it and queues it in this
// transaction; the worker delivers it after commit (R45: notices only). The
// envelope is sealed under the recipient's user key (org and user empty:
// the platform key).
//
// A mail to a person whose processing is restricted (R34) is dropped here,
// the one place every mail to a person passes, unless it serves their own
// sign-in (mail.Kind.NeededToSignIn): no area has to remember the rule.
func (t *Tx) QueueMail(ctx context.Context, org kluis.OrgID, user kluis.UserID, lang, to string, kind mail.Kind, data mail.Data) error {
	if org != "" && user != "" && !kind.NeededToSignIn() {
		restricted, err := t.Restricted(ctx, org, user)
		if err != nil || restricted {
			return err
		}
	}
	subject, body, err := mail.Render(kind, lang, data)
	if err != nil {
		return err
	}
	msg, _, err := mail.Compose(t.s.mailFrom, to, subject, body, t.Now())
	if err != nil {
		return err
	}
	orgID := sql.NullString{String: string(org), Valid: org != ""}
	userID := sql.NullString{String: string(user), Valid: user != ""}
	id := kluis.NewID(t.Now())
	env, err := t.s.sealEnvelope(ctx, id, org, user, Envelope{From: t.s.mailFrom, To: []string{to}, Message: msg})
	if err != nil {
		return err
	}
	if _, err := t.Exec(ctx, `INSERT INTO mail_queue (id, org_id, user_id, kind, created_at, next_attempt_at, lease_until, attempts, envelope)
		VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)`, id, orgID, userID, string(kind), Micros(t.Now()), Micros(t.Now()), env); err != nil {
		return fmt.Errorf("queue mail: %w", err)
	}
	t.mailed = true
	return nil
}

// Tables and columns of the SMS queue named in its ciphertexts' associated data.
const tabSMS = "sms_queue"

func smsField(org kluis.OrgID, id string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabSMS, Column: colEnvelope, Row: id}
}

// smsEnvelope is a queued text message as sealed in sms_queue.envelope.
type smsEnvelope struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// QueueSMS queues a text message in this transaction, sealed under the
// recipient's user key; the SMS worker delivers it after commit, until
// expires.
func (t *Tx) QueueSMS(ctx context.Context, org kluis.OrgID, user kluis.UserID, to, text string, expires time.Time) error {
	id := kluis.NewID(t.Now())
	b, err := json.Marshal(smsEnvelope{To: to, Text: text})
	if err != nil {
		return err
	}
	env, err := t.s.Seal(ctx, UserKey(org, user), smsField(org, id), b)
	if err != nil {
		return fmt.Errorf("seal SMS: %w", err)
	}
	if _, err := t.Exec(ctx, `INSERT INTO sms_queue (id, org_id, user_id, created_at, expires_at, next_attempt_at, lease_until, attempts, envelope)
		VALUES (?, ?, ?, ?, ?, ?, 0, 0, ?)`, id, org, user, Micros(t.Now()), Micros(expires), Micros(t.Now()), env); err != nil {
		return fmt.Errorf("queue SMS: %w", err)
	}
	t.texted = true
	return nil
}

// OpenSMS opens a queued text message's envelope: the number and the text.
// Errors: as OpenMail.
func (s *Core) OpenSMS(ctx context.Context, id string, org kluis.OrgID, c []byte) (to, text string, err error) {
	var e smsEnvelope
	b, err := s.Open(ctx, smsField(org, id), c)
	if err == nil && json.Unmarshal(b, &e) != nil {
		err = fmt.Errorf("%w: queued SMS %s", ErrBadEnvelope, id)
	}
	return e.To, e.Text, err
}
