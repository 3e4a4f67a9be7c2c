package sqlstore

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
)

// Field encryption (issue 3, DESIGN §4, R28). Every personal value is stored
// as a ciphertext of the keys package, sealed for its table, column and row
// under the key of the person it describes: a user's name, e-mail address and
// phone under the user key, queued mail under its recipient's user key, the
// client address of an audit event under the organisation key (the platform
// key for the platform chain), personal values in audit details under the
// key of the person. Only the keys package unwraps keys; this file is the only
// place in the store that calls it for data.

// Keys are made before, never inside, a data transaction: making a key
// records its life-cycle event in the key store, and the store then drains
// it into the audit chain (keyevents.go) with a write transaction of its
// own, which inside a write transaction would wait for itself (SQLite has
// one writer). So the platform key is made at start (EnsureKeys), an
// organisation's keys and a user's key just before the transaction that
// creates them (their key.created comes first in the chain), and a seal
// inside a transaction finds its key existing, or destroyed.

// EnsurePlatformKey makes the platform key unless it exists and records in
// the audit chains the key events that a process stopped before recording
// (DrainKeyEvents). Call it once at start; an error means the instance
// cannot start.
func (s *Core) EnsurePlatformKey(ctx context.Context) error {
	if err := s.keys.EnsurePlatformKey(ctx, kluis.SystemActor.AuditName()); err != nil {
		return err
	}
	_, err := s.DrainKeyEvents(ctx)
	return err
}

// Tables and columns named in the associated data of ciphertexts. They are
// part of the stored format: renaming one makes its ciphertexts unreadable.
const (
	tabUsers    = "users"
	tabMail     = "mail_queue"
	tabAudit    = "audit_events"
	colEmail    = "email"
	colName     = "name"
	colPhone    = "phone"
	colEnvelope = "envelope"
	colClient   = "client"
	colDetails  = "details." // + the detail's name
)

func UserField(org kluis.OrgID, user kluis.UserID, column string) keys.FieldRef {
	return keys.FieldRef{Org: string(org), Table: tabUsers, Column: column, Row: string(user)}
}

func UserKey(org kluis.OrgID, user kluis.UserID) keys.KeyRef {
	return keys.UserKey(string(org), string(user))
}

// seal encrypts a value for its field. A destroyed key (the user or the
// organisation was deleted meanwhile) is not_found: nothing is written for
// someone who is gone.
func (s *Core) Seal(ctx context.Context, key keys.KeyRef, f keys.FieldRef, plaintext []byte) ([]byte, error) {
	c, err := s.keys.Seal(ctx, key, f, plaintext)
	if errors.Is(err, keys.ErrKeyDestroyed) {
		return nil, kluis.ErrNotFound
	}
	if err != nil {
		return nil, fmt.Errorf("seal %s.%s: %w", f.Table, f.Column, err)
	}
	return c, nil
}

// ErrUnreadable wraps every failure to decrypt stored data: an altered or
// moved ciphertext, or a destroyed key. Clients get a neutral internal error;
// never another field's or another organisation's value.
var ErrUnreadable = errors.New("stored data cannot be decrypted")

func (s *Core) Open(ctx context.Context, f keys.FieldRef, c []byte) ([]byte, error) {
	p, err := s.keys.Open(ctx, f, c)
	if err != nil {
		// The cause names key ids and the field, never a value.
		return nil, fmt.Errorf("%w: %s.%s of row %s: %w", ErrUnreadable, f.Table, f.Column, f.Row, err)
	}
	return p, nil
}

// sealUser encrypts a user's personal fields under the user key.
func (s *Core) SealUser(ctx context.Context, org kluis.OrgID, id kluis.UserID, column, value string) ([]byte, error) {
	return s.Seal(ctx, UserKey(org, id), UserField(org, id, column), []byte(value))
}

// emailIndex is the blind index a user is found by at login: HMAC-SHA-256
// under the organisation's index key of the normalised address (DESIGN §4).
func (s *Core) EmailIndex(ctx context.Context, org kluis.OrgID, normalized string) ([]byte, error) {
	idx, err := s.keys.BlindIndex(ctx, string(org), normalized)
	if errors.Is(err, keys.ErrKeyDestroyed) {
		return nil, kluis.ErrNotFound
	}
	return idx, err
}

// scanUser reads the columns of userColumns (and extra) and decrypts the
// personal fields.
func (s *Core) ScanUser(ctx context.Context, row interface{ Scan(...any) error }, extra ...any) (kluis.User, error) {
	su, err := ScanSealedUser(row, extra...)
	if err != nil {
		return su.User, err
	}
	return s.OpenUser(ctx, su)
}

func (s *Core) OpenUser(ctx context.Context, su SealedUser) (kluis.User, error) {
	u := su.User
	for _, f := range []struct {
		col string
		c   []byte
		out *string
	}{{colEmail, su.email, &u.Email}, {colName, su.name, &u.Name}, {colPhone, su.phone, &u.Phone}} {
		p, err := s.Open(ctx, UserField(u.OrgID, u.ID, f.col), f.c)
		if err != nil {
			return kluis.User{}, err
		}
		*f.out = string(p)
	}
	return u, nil
}

// sealedDetail is a personal value in an audit event's details: appendEvent
// seals it under key for the event's row, and it is stored as
// {"sealed":"BASE64"}. It stays in the chain as ciphertext forever and becomes
// unreadable when key is destroyed (erasure), while the chain still verifies.
type SealedDetail struct {
	Key   keys.KeyRef
	Value string
}

// chainOrg is the organisation whose keys seal a chain's values ("" for the
// platform chain, whose values go under the platform key).
func chainOrg(chain string) kluis.OrgID {
	return kluis.OrgID(strings.TrimPrefix(chain, "org:"))
}

func chainKey(chain string) keys.KeyRef {
	if chain == audit.PlatformChain {
		return keys.PlatformKey()
	}
	return keys.OrgKey(string(chainOrg(chain)))
}

func auditField(chain, eventID, column string) keys.FieldRef {
	org := ""
	if chain != audit.PlatformChain {
		org = string(chainOrg(chain))
	}
	return keys.FieldRef{Org: org, Table: tabAudit, Column: column, Row: eventID}
}

// sealDetails replaces the sealedDetail values of details by their
// ciphertexts, for the event id of chain.
func (s *Core) sealDetails(ctx context.Context, chain, eventID string, details map[string]any) (map[string]any, error) {
	var out map[string]any
	for name, v := range details {
		sd, ok := v.(SealedDetail)
		if !ok {
			continue
		}
		if out == nil {
			out = make(map[string]any, len(details))
			for k, v := range details {
				out[k] = v
			}
		}
		c, err := s.keys.Seal(ctx, sd.Key, auditField(chain, eventID, colDetails+name), []byte(sd.Value))
		switch {
		case errors.Is(err, keys.ErrKeyDestroyed):
			out[name] = Erased // the person is erased: nothing to record
		case err != nil:
			return nil, fmt.Errorf("seal audit detail %s: %w", name, err)
		default:
			out[name] = map[string]string{"sealed": base64.StdEncoding.EncodeToString(c)}
		}
	}
	if out == nil {
		return details, nil
	}
	return out, nil
}

// sealClient encrypts the client address of an audit event: under the
// actor's user key when a user of the chain's organisation acted (the address
// is theirs: erasing them makes it unreadable, like their other data), else
// under the organisation key (the platform key for the platform chain). The
// command line and background work have none (an empty column).
func (s *Core) sealClient(ctx context.Context, chain, eventID string, actor kluis.Actor) ([]byte, error) {
	addr := actor.From.Client
	if !addr.IsValid() {
		return []byte{}, nil
	}
	key := chainKey(chain)
	if chain != audit.PlatformChain && actor.IsOrgUser(chainOrg(chain)) {
		key = UserKey(actor.OrgID, actor.UserID)
	}
	c, err := s.keys.Seal(ctx, key, auditField(chain, eventID, colClient), []byte(addr.Unmap().String()))
	if errors.Is(err, keys.ErrKeyDestroyed) {
		return []byte{}, nil // the actor or the organisation is erased: no address kept
	}
	if err != nil {
		return nil, fmt.Errorf("seal audit client: %w", err)
	}
	return c, nil
}

// Erased is shown in place of a value whose key was destroyed (the person or
// the organisation was erased).
const Erased = kluis.Erased

// OpenAuditValue decrypts a sealed value of an audit event for display; a
// destroyed key gives Erased.
func (s *Core) OpenAuditValue(ctx context.Context, chain, eventID, column string, c []byte) (string, error) {
	p, err := s.keys.Open(ctx, auditField(chain, eventID, column), c)
	if errors.Is(err, keys.ErrKeyDestroyed) {
		return Erased, nil
	}
	if err != nil {
		return "", fmt.Errorf("%w: %s of audit event %s: %w", ErrUnreadable, column, eventID, err)
	}
	return string(p), nil
}

// SealedDetails returns the ciphertexts of the sealed values in an audit
// event's stored details.
func SealedDetails(details []byte) [][]byte {
	if !bytes.Contains(details, []byte(`"sealed"`)) {
		return nil
	}
	var d map[string]json.RawMessage
	if json.Unmarshal(details, &d) != nil {
		return nil
	}
	var out [][]byte
	for _, v := range d {
		var sv struct {
			Sealed []byte `json:"sealed"`
		}
		if json.Unmarshal(v, &sv) == nil && sv.Sealed != nil {
			out = append(out, sv.Sealed)
		}
	}
	return out
}
