package keys

import (
	"bytes"
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/tink-crypto/tink-go/v2/aead"
	"github.com/tink-crypto/tink-go/v2/keyset"
	"github.com/tink-crypto/tink-go/v2/mac"
	"github.com/tink-crypto/tink-go/v2/mac/hmac"
	"github.com/tink-crypto/tink-go/v2/tink"
)

// entry is one key version as the cache holds it: unwrapped into a tink
// primitive, or a tombstone for a destroyed version.
type entry struct {
	ref   KeyRef
	state State     // as read when unwrapped; only "destroyed" is acted upon
	aead  tink.AEAD // nil for index and address keys and tombstones
	mac   tink.MAC  // index and address keys only
}

// errUnknownKey means no row has the key version. Open turns it into
// ErrDecrypt: the ciphertext was made elsewhere.
var errUnknownKey = errors.New("keys: unknown key")

// newKeyset makes a fresh single-key keyset for a key of the kind:
// AES-256-GCM, or HMAC-SHA-256 with a 32-byte tag for index and address
// keys. Neither
// adds tink's output prefix; the ciphertext format is kluis's own. tink draws
// the key from crypto/rand.
func newKeyset(kind Kind) (*keyset.Handle, error) {
	if !kind.macs() {
		return keyset.NewHandle(aead.AES256GCMNoPrefixKeyTemplate())
	}
	p, err := hmac.NewParameters(hmac.ParametersOpts{
		KeySizeInBytes: 32, TagSizeInBytes: 32, HashType: hmac.SHA256, Variant: hmac.VariantNoPrefix,
	})
	if err != nil {
		return nil, err
	}
	m := keyset.NewManager()
	id, err := m.AddNewKeyFromParameters(p)
	if err != nil {
		return nil, err
	}
	if err := m.SetPrimary(id); err != nil {
		return nil, err
	}
	return m.Handle()
}

// newEntry turns a keyset into the cache's primitive for ref.
func newEntry(ref KeyRef, state State, h *keyset.Handle) (*entry, error) {
	if h.Len() != 1 {
		return nil, fmt.Errorf("keys: %s holds %d keys, want 1", ref, h.Len())
	}
	e := &entry{ref: ref, state: state}
	var err error
	if ref.Kind.macs() {
		e.mac, err = mac.New(h)
	} else {
		e.aead, err = aead.New(h)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: %s: %w", ref, err)
	}
	return e, nil
}

// wrap encrypts a keyset under its parent's AEAD, bound by wrapAAD to the
// row it goes into. The result is tink's EncryptedKeyset: the sealed keyset
// and a KeysetInfo that holds no key material.
func wrap(h *keyset.Handle, parent tink.AEAD, aad []byte) ([]byte, error) {
	var b bytes.Buffer
	if err := h.WriteWithAssociatedData(keyset.NewBinaryWriter(&b), parent, aad); err != nil {
		return nil, fmt.Errorf("keys: wrapping key: %w", err)
	}
	return b.Bytes(), nil
}

// unwrap reverses wrap. Its error says which key but never quotes tink's.
func unwrap(ref KeyRef, kv KeyVersion, wrapped []byte, parent tink.AEAD, parentID string, parentVersion int) (*keyset.Handle, error) {
	h, err := keyset.ReadWithAssociatedData(keyset.NewBinaryReader(bytes.NewReader(wrapped)), parent, wrapAAD(ref, kv, parentID, parentVersion))
	if err != nil {
		return nil, fmt.Errorf("keys: the %s (%s) does not unwrap: its row in the key store was altered or moved", ref, kv)
	}
	return h, nil
}

func (s *Store) expiry() time.Time { return s.now().Add(s.ttl) }

// entry returns key version kv from the cache, or reads and unwraps it. A
// destroyed version comes back as a tombstone (state destroyed), not as an
// error, so that callers can check other things first.
func (s *Store) entry(ctx context.Context, kv KeyVersion) (*entry, error) {
	now := s.now()
	s.mu.Lock()
	e, ok := s.entries.get(kv, now)
	epoch := s.epoch
	s.mu.Unlock()
	if ok {
		return e, nil
	}
	return s.load(ctx, kv, epoch)
}

// put caches e unless keys were destroyed since epoch was read: the row it
// came from may predate the destruction.
func (s *Store) put(kv KeyVersion, e *entry, epoch uint64) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.epoch == epoch {
		s.entries.put(kv, e, s.expiry())
	}
}

func (s *Store) load(ctx context.Context, kv KeyVersion, epoch uint64) (*entry, error) {
	var (
		kind, org, owner, state, parentID string
		wrapped                           []byte
		parentVersion                     int
	)
	err := s.reader.QueryRowContext(ctx, s.q(`SELECT kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version
		FROM keys WHERE id = ? AND version = ?`), kv.ID.String(), kv.Version).
		Scan(&kind, &org, &owner, &state, &wrapped, &parentID, &parentVersion)
	if errors.Is(err, sql.ErrNoRows) {
		return nil, fmt.Errorf("%w %s", errUnknownKey, kv)
	}
	if err != nil {
		return nil, fmt.Errorf("keys: reading key %s: %w", kv, err)
	}
	ref := KeyRef{Kind: Kind(kind), Org: org, Owner: owner}
	if State(state) == StateDestroyed {
		e := &entry{ref: ref, state: StateDestroyed}
		s.put(kv, e, epoch)
		return e, nil
	}
	parent, err := s.parentAEAD(ctx, parentID, parentVersion)
	if err != nil {
		return nil, err
	}
	h, err := unwrap(ref, kv, wrapped, parent, parentID, parentVersion)
	if err != nil {
		return nil, err
	}
	e, err := newEntry(ref, State(state), h)
	if err != nil {
		return nil, err
	}
	s.obs.KeyUnwrapped(org, ref.Kind)
	s.put(kv, e, epoch)
	return e, nil
}

// parentAEAD returns the AEAD that wraps the keys recorded as wrapped by
// parentID at version: the root key of that generation, or an organisation
// key version.
func (s *Store) parentAEAD(ctx context.Context, parentID string, version int) (tink.AEAD, error) {
	if parentID == rootParent {
		r, err := s.rootFor(ctx, version, "")
		if err != nil {
			return nil, err
		}
		return r.wrap, nil
	}
	id, err := parseKeyID(parentID)
	if err != nil {
		return nil, err
	}
	kv := KeyVersion{ID: id, Version: version}
	pe, err := s.entry(ctx, kv)
	switch {
	case errors.Is(err, errUnknownKey):
		return nil, fmt.Errorf("keys: the key store lacks parent key %s", kv)
	case err != nil:
		return nil, err
	case pe.state == StateDestroyed:
		return nil, fmt.Errorf("%w: the %s", ErrKeyDestroyed, pe.ref)
	case pe.aead == nil:
		return nil, fmt.Errorf("keys: parent key %s is not a wrapping key", kv)
	}
	return pe.aead, nil
}

// latestRow is the newest version of a key.
type latestRow struct {
	kv    KeyVersion
	state State
}

type queryRower interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// latest returns the newest version of ref, if any.
func (s *Store) latest(ctx context.Context, q queryRower, ref KeyRef) (latestRow, bool, error) {
	var (
		l     latestRow
		id    string
		state string
	)
	err := q.QueryRowContext(ctx, s.q(`SELECT id, version, state FROM keys WHERE kind = ? AND org_id = ? AND owner_id = ?
		ORDER BY version DESC LIMIT 1`), string(ref.Kind), ref.Org, ref.Owner).Scan(&id, &l.kv.Version, &state)
	if errors.Is(err, sql.ErrNoRows) {
		return l, false, nil
	}
	if err != nil {
		return l, false, fmt.Errorf("keys: reading the %s: %w", ref, err)
	}
	if l.kv.ID, err = parseKeyID(id); err != nil {
		return l, false, err
	}
	l.state = State(state)
	return l, true, nil
}

// activeVersion returns the version of ref that seals, making the key (and
// its organisation key) if it does not exist yet, as actor's change. A
// destroyed key, or any key of a destroyed organisation, is never made again:
// ErrKeyDestroyed.
func (s *Store) activeVersion(ctx context.Context, ref KeyRef, actor string) (KeyVersion, error) {
	l, found, err := s.latest(ctx, s.reader, ref)
	if err != nil {
		return KeyVersion{}, err
	}
	if found {
		switch l.state {
		case StateActive:
			return l.kv, nil
		case StateDestroyed:
			return KeyVersion{}, fmt.Errorf("%w: the %s", ErrKeyDestroyed, ref)
		}
	}
	return s.ensure(ctx, ref, actor)
}

// madeKey is a key made in a transaction, recorded as an event in it and
// cached once it commits.
type madeKey struct {
	ref KeyRef
	kv  KeyVersion
	e   *entry
}

// ensure makes ref (and what it needs above it) in one transaction unless it
// exists, with an ActionCreated event of actor's for every key made, and
// returns its active version.
func (s *Store) ensure(ctx context.Context, ref KeyRef, actor string) (KeyVersion, error) {
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	var (
		made []madeKey
		kv   KeyVersion
		now  = s.now()
	)
	err := s.inTx(ctx, func(tx *sql.Tx, m meta) error {
		made = made[:0]
		var err error
		if kv, err = s.ensureTx(ctx, tx, m, ref, now, &made); err != nil {
			return err
		}
		events := make([]Event, len(made))
		for i, mk := range made {
			events[i] = Event{Action: ActionCreated, Key: mk.ref, ID: mk.kv.ID, Version: mk.kv.Version}
		}
		return s.recordEvents(ctx, tx, now, actor, events...)
	})
	if err != nil {
		return KeyVersion{}, err
	}
	s.mu.Lock()
	if s.epoch == epoch {
		exp := s.expiry()
		for _, mk := range made {
			s.entries.put(mk.kv, mk.e, exp)
			s.active.put(mk.ref, mk.kv, exp)
		}
	}
	s.mu.Unlock()
	return kv, nil
}

func (s *Store) ensureTx(ctx context.Context, tx *sql.Tx, m meta, ref KeyRef, now time.Time, made *[]madeKey) (KeyVersion, error) {
	if ref.Kind != KindPlatform && ref.Kind != KindOrg {
		o, found, err := s.latest(ctx, tx, OrgKey(ref.Org))
		if err != nil {
			return KeyVersion{}, err
		}
		if found && o.state == StateDestroyed {
			return KeyVersion{}, fmt.Errorf("%w: the keys of organisation %s", ErrKeyDestroyed, ref.Org)
		}
	}
	if ref.Kind == KindAddress {
		// An address key exists only with its project key: making the
		// project key makes it (below), and a destroyed project key bars it.
		if _, err := s.ensureTx(ctx, tx, m, ProjectKey(ref.Org, ref.Owner), now, made); err != nil {
			return KeyVersion{}, err
		}
	}
	l, found, err := s.latest(ctx, tx, ref)
	if err != nil {
		return KeyVersion{}, err
	}
	if found {
		switch l.state {
		case StateActive:
			return l.kv, nil
		case StateDestroyed:
			return KeyVersion{}, fmt.Errorf("%w: the %s", ErrKeyDestroyed, ref)
		}
		return KeyVersion{}, fmt.Errorf("keys: the %s has no active version", ref)
	}

	var (
		parent        tink.AEAD
		parentID      = rootParent
		parentVersion = m.generation
	)
	if ref.Kind.wrappedByRoot() {
		r, err := s.rootFor(ctx, m.generation, m.fingerprint)
		if err != nil {
			return KeyVersion{}, err
		}
		parent = r.wrap
	} else {
		okv, err := s.ensureTx(ctx, tx, m, OrgKey(ref.Org), now, made)
		if err != nil {
			return KeyVersion{}, err
		}
		for _, mk := range *made {
			if mk.kv == okv {
				parent = mk.e.aead
			}
		}
		if parent == nil {
			// The organisation key existed before this transaction, so the
			// reader pool sees it.
			if parent, err = s.parentAEAD(ctx, okv.ID.String(), okv.Version); err != nil {
				return KeyVersion{}, err
			}
		}
		parentID, parentVersion = okv.ID.String(), okv.Version
	}

	id, err := newKeyID()
	if err != nil {
		return KeyVersion{}, err
	}
	kv := KeyVersion{ID: id, Version: 1}
	h, err := newKeyset(ref.Kind)
	if err != nil {
		return KeyVersion{}, fmt.Errorf("keys: making the %s: %w", ref, err)
	}
	wrapped, err := wrap(h, parent, wrapAAD(ref, kv, parentID, parentVersion))
	if err != nil {
		return KeyVersion{}, err
	}
	if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at)
		VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)`),
		id.String(), kv.Version, string(ref.Kind), ref.Org, ref.Owner, wrapped, parentID, parentVersion, now.UnixMicro()); err != nil {
		return KeyVersion{}, fmt.Errorf("keys: storing the %s: %w", ref, err)
	}
	e, err := newEntry(ref, StateActive, h)
	if err != nil {
		return KeyVersion{}, err
	}
	*made = append(*made, madeKey{ref: ref, kv: kv, e: e})
	switch ref.Kind {
	case KindOrg:
		// The index key is made with the organisation key.
		if _, err := s.ensureTx(ctx, tx, m, indexKey(ref.Org), now, made); err != nil {
			return KeyVersion{}, err
		}
	case KindProject:
		// And the content-address key with the project key.
		if _, err := s.ensureTx(ctx, tx, m, addressKey(ref.Org, ref.Owner), now, made); err != nil {
			return KeyVersion{}, err
		}
	}
	return kv, nil
}

// sealing returns the version of ref that seals and its unwrapped entry,
// making the key if need be. Only an active version seals: a cached active
// version whose key turns out retired (rotated by another process) is
// dropped and the key store asked again. A cached active version is never
// extended: it expires at most a TTL after it was read from the key store.
func (s *Store) sealing(ctx context.Context, ref KeyRef) (KeyVersion, *entry, error) {
	now := s.now()
	s.mu.Lock()
	kv, haveKV := s.active.get(ref, now)
	if haveKV {
		if e, ok := s.entries.get(kv, now); ok && e.state == StateActive {
			s.mu.Unlock()
			return kv, e, nil
		}
	}
	epoch := s.epoch
	s.mu.Unlock()

	for attempt := 0; ; attempt++ {
		fresh := !haveKV
		if fresh {
			var err error
			if kv, err = s.activeVersion(ctx, ref, firstUseActor); err != nil {
				return KeyVersion{}, nil, err
			}
		}
		e, err := s.entry(ctx, kv)
		if err != nil {
			return KeyVersion{}, nil, err
		}
		switch {
		case e.state == StateDestroyed:
			return KeyVersion{}, nil, fmt.Errorf("%w: the %s", ErrKeyDestroyed, ref)
		case e.state != StateActive && attempt == 0:
			// Retired since it was cached: read the active version again.
			s.mu.Lock()
			s.active.deleteFunc(func(r KeyRef, _ KeyVersion) bool { return r == ref })
			s.mu.Unlock()
			haveKV = false
			continue
		case e.state != StateActive:
			return KeyVersion{}, nil, fmt.Errorf("keys: the %s has no active version", ref)
		}
		if fresh {
			s.mu.Lock()
			if s.epoch == epoch {
				s.active.put(ref, kv, s.expiry())
			}
			s.mu.Unlock()
		}
		return kv, e, nil
	}
}

// forget drops every cached key, and every cached active version, whose
// reference matches, and invalidates loads already under way.
func (s *Store) forget(match func(KeyRef) bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.epoch++
	s.entries.deleteFunc(func(_ KeyVersion, e *entry) bool { return match(e.ref) })
	s.active.deleteFunc(func(r KeyRef, _ KeyVersion) bool { return match(r) })
}
