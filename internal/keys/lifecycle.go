package keys

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"
)

// DestroyUserKey destroys every version of the key of user in organisation
// org (crypto-shredding, R31 R34): the rows stay with their metadata, state
// destroyed and the wrapped bytes erased, and this process's cache drops the
// key at once; other processes stop using it within their cache TTL. From then
// on Open of anything sealed under it gets [ErrKeyDestroyed], and no new key
// is ever made for that user. Each version destroyed is recorded as a
// key.destroyed event of actor's, the audit name of who causes it (see
// [Store.EnsureOrgKey]), in the same transaction. Destroying a key that never
// existed records a destroyed placeholder for the same effect (and no
// event); destroying twice does nothing.
func (s *Store) DestroyUserKey(ctx context.Context, org, user, actor string) error {
	return s.destroyKey(ctx, UserKey(org, user), actor)
}

// DestroyProjectKey is [Store.DestroyUserKey] for a project's key, and
// destroys the project's content-address key with it, in one transaction:
// afterwards nothing of the project's content opens ([ErrKeyDestroyed]) and
// no content address or path index of it can be computed, by this process
// at once and by others within their cache TTL.
func (s *Store) DestroyProjectKey(ctx context.Context, org, project, actor string) error {
	ref := ProjectKey(org, project)
	if err := ref.validate(); err != nil {
		return err
	}
	return s.destroy(ctx, ref, actor, ` AND kind IN (?, ?) AND owner_id = ?`, string(KindProject), string(KindAddress), project)
}

func (s *Store) destroyKey(ctx context.Context, ref KeyRef, actor string) error {
	if err := ref.validate(); err != nil {
		return err
	}
	return s.destroy(ctx, ref, actor, ` AND kind = ? AND owner_id = ?`, string(ref.Kind), ref.Owner)
}

// DestroyOrgKeys destroys every version of organisation org's key, its index
// key and every user and project key below them, in one transaction, as
// [Store.DestroyUserKey] does for one key, with a key.destroyed event of
// actor's for each version destroyed. Everything the organisation sealed
// becomes unreadable, wherever copies of the ciphertext are, and its blind
// indexes can no longer be computed.
func (s *Store) DestroyOrgKeys(ctx context.Context, org, actor string) error {
	ref := OrgKey(org)
	if err := ref.validate(); err != nil {
		return err
	}
	return s.destroy(ctx, ref, actor, "")
}

type destroyedKey struct {
	ref KeyRef
	kv  KeyVersion
}

// destroy erases the wrapped bytes of the keys of tomb's organisation that
// match the extra condition, and leaves a destroyed placeholder for tomb if it
// has no row at all, so that it is never made afresh. Each version destroyed
// is recorded as actor's event in the same transaction.
func (s *Store) destroy(ctx context.Context, tomb KeyRef, actor, cond string, args ...any) error {
	if err := checkActor(actor); err != nil {
		return err
	}
	now := s.now()
	var gone []destroyedKey
	err := s.inTx(ctx, func(tx *sql.Tx, _ meta) error {
		gone = gone[:0]
		rows, err := tx.QueryContext(ctx, s.q(`UPDATE keys SET state = 'destroyed', wrapped = NULL, destroyed_at = ?
			WHERE org_id = ? AND state <> 'destroyed'`+cond+` RETURNING id, version, kind, owner_id`),
			append([]any{now.UnixMicro(), tomb.Org}, args...)...)
		if err != nil {
			return fmt.Errorf("keys: destroying keys: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var (
				d          destroyedKey
				id, kind   string
				owner      string
				versionNum int
			)
			if err := rows.Scan(&id, &versionNum, &kind, &owner); err != nil {
				return fmt.Errorf("keys: destroying keys: %w", err)
			}
			if d.kv.ID, err = parseKeyID(id); err != nil {
				return err
			}
			d.kv.Version = versionNum
			d.ref = KeyRef{Kind: Kind(kind), Org: tomb.Org, Owner: owner}
			gone = append(gone, d)
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("keys: destroying keys: %w", err)
		}
		rows.Close()
		events := make([]Event, len(gone))
		for i, d := range gone {
			events[i] = Event{Action: ActionDestroyed, Key: d.ref, ID: d.kv.ID, Version: d.kv.Version}
		}
		if err := s.recordEvents(ctx, tx, now, actor, events...); err != nil {
			return err
		}
		_, found, err := s.latest(ctx, tx, tomb)
		if err != nil || found {
			return err
		}
		id, err := newKeyID()
		if err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at, destroyed_at)
			VALUES (?, 1, ?, ?, ?, 'destroyed', NULL, '', 0, ?, ?)`),
			id.String(), string(tomb.Kind), tomb.Org, tomb.Owner, now.UnixMicro(), now.UnixMicro()); err != nil {
			return fmt.Errorf("keys: destroying the %s: %w", tomb, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	switch tomb.Kind {
	case KindOrg:
		s.forget(func(r KeyRef) bool { return r.Org == tomb.Org })
	case KindProject:
		s.forget(func(r KeyRef) bool { return r == tomb || r == addressKey(tomb.Org, tomb.Owner) })
	default:
		s.forget(func(r KeyRef) bool { return r == tomb })
	}
	s.eraseFreedPages(ctx)
	return nil
}

// eraseFreedPages moves the write-ahead log into the SQLite file and
// truncates it, so that the only copy of the page images that held the
// erased wrapped bytes, the log, is gone; secure_delete has zeroed them in the
// pages themselves. It is best effort: a reader in the middle of a long read
// can make it give up, and the next checkpoint finishes the job.
func (s *Store) eraseFreedPages(ctx context.Context) {
	if s.engine != SQLite {
		return
	}
	var busy, logPages, moved int
	_ = s.writer.QueryRowContext(ctx, `PRAGMA wal_checkpoint(TRUNCATE)`).Scan(&busy, &logPages, &moved)
}

// RotateOrgKey starts a new version of organisation org's key for new seals;
// the version before is retired and still opens what it sealed (audit rows
// keep their ciphertext; other data is re-encrypted in the background by the
// caller). In the same transaction every active user and project key of
// the organisation gets a new version wrapped under the new organisation key
// version, and its version before is retired the same way: rotation renews
// the key material of all the organisation's data, once the caller has
// re-encrypted it. The index key does not change (blind indexes stay valid),
// nor do the projects' content-address keys (content addresses stay valid):
// these are re-wrapped, unchanged, under the new organisation key version.
// Every new version and every retired one is recorded as a key.rotated or
// key.retired event of actor's (see [Store.EnsureOrgKey]) in the same
// transaction; the organisation key's key.rotated event counts the keys
// given a new version and those re-wrapped. It returns the new version. An organisation without keys gets
// [ErrNoKey], a destroyed one [ErrKeyDestroyed].
func (s *Store) RotateOrgKey(ctx context.Context, org, actor string) (KeyVersion, error) {
	ref := OrgKey(org)
	if err := ref.validate(); err != nil {
		return KeyVersion{}, err
	}
	if err := checkActor(actor); err != nil {
		return KeyVersion{}, err
	}
	now := s.now()
	s.mu.Lock()
	epoch := s.epoch
	s.mu.Unlock()
	var (
		oldKV, newKV KeyVersion
		newE         *entry
		children     []childRow
	)
	err := s.inTx(ctx, func(tx *sql.Tx, m meta) error {
		l, found, err := s.latest(ctx, tx, ref)
		switch {
		case err != nil:
			return err
		case !found:
			return fmt.Errorf("%w: the %s", ErrNoKey, ref)
		case l.state == StateDestroyed:
			return fmt.Errorf("%w: the %s", ErrKeyDestroyed, ref)
		case l.state != StateActive:
			return fmt.Errorf("keys: the %s has no active version", ref)
		}
		if l.kv.Version >= maxVersion {
			return fmt.Errorf("keys: the %s has run out of versions", ref)
		}
		r, err := s.rootFor(ctx, m.generation, m.fingerprint)
		if err != nil {
			return err
		}
		oldKV, newKV = l.kv, KeyVersion{ID: l.kv.ID, Version: l.kv.Version + 1}
		h, err := newKeyset(KindOrg)
		if err != nil {
			return fmt.Errorf("keys: making the %s: %w", ref, err)
		}
		wrapped, err := wrap(h, r.wrap, wrapAAD(ref, newKV, rootParent, m.generation))
		if err != nil {
			return err
		}
		if newE, err = newEntry(ref, StateActive, h); err != nil {
			return err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET state = 'retired', retired_at = ? WHERE id = ? AND version = ?`),
			now.UnixMicro(), oldKV.ID.String(), oldKV.Version); err != nil {
			return fmt.Errorf("keys: retiring the %s: %w", ref, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at)
			VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)`),
			newKV.ID.String(), newKV.Version, string(KindOrg), org, org, wrapped, rootParent, m.generation, now.UnixMicro()); err != nil {
			return fmt.Errorf("keys: storing the %s: %w", ref, err)
		}
		if children, err = s.rotateChildren(ctx, tx, org, newKV, newE, now); err != nil {
			return err
		}
		rewrapped, err := s.rewrapAddressKeys(ctx, tx, org, newKV, newE)
		if err != nil {
			return err
		}
		events := []Event{
			{Action: ActionRotated, Key: ref, ID: newKV.ID, Version: newKV.Version, Rewrapped: len(children) + rewrapped},
			{Action: ActionRetired, Key: ref, ID: oldKV.ID, Version: oldKV.Version},
		}
		for _, c := range children {
			events = append(events,
				Event{Action: ActionRotated, Key: c.ref, ID: c.kv.ID, Version: c.kv.Version},
				Event{Action: ActionRetired, Key: c.ref, ID: c.kv.ID, Version: c.retired})
		}
		return s.recordEvents(ctx, tx, now, actor, events...)
	})
	if err != nil {
		return KeyVersion{}, err
	}
	s.mu.Lock()
	// New seals of the children use their new versions at once here, and
	// in other processes within the cache TTL.
	s.active.deleteFunc(func(r KeyRef, _ KeyVersion) bool {
		return r.Org == org && (r.Kind == KindUser || r.Kind == KindProject)
	})
	if s.epoch == epoch {
		exp := s.expiry()
		s.entries.put(newKV, newE, exp)
		s.active.put(ref, newKV, exp)
	} else {
		// Keys were destroyed meanwhile, maybe these: ask the key store.
		s.active.deleteFunc(func(r KeyRef, _ KeyVersion) bool { return r == ref })
	}
	s.mu.Unlock()
	return newKV, nil
}

type childRow struct {
	ref     KeyRef
	kv      KeyVersion // the new version
	retired int        // the version before
}

// rotateChildren makes a new version of every active user and project key
// of org, wrapped under the organisation key version newKV, and retires the
// version before, which stays wrapped under the retired organisation key
// version and keeps opening what it sealed. It returns the new versions. The
// caller re-encrypts the data sealed under the retired versions (audit rows
// excepted: they keep their ciphertext, DESIGN §4).
func (s *Store) rotateChildren(ctx context.Context, tx *sql.Tx, org string, newKV KeyVersion, newE *entry, now time.Time) ([]childRow, error) {
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, version, kind, owner_id FROM keys
		WHERE org_id = ? AND kind IN ('user', 'project') AND state = 'active'`), org)
	if err != nil {
		return nil, fmt.Errorf("keys: rotating keys: %w", err)
	}
	var children []childRow
	for rows.Next() {
		var (
			c        childRow
			id, kind string
		)
		if err := rows.Scan(&id, &c.kv.Version, &kind, &c.ref.Owner); err != nil {
			rows.Close()
			return nil, fmt.Errorf("keys: rotating keys: %w", err)
		}
		if c.kv.ID, err = parseKeyID(id); err != nil {
			rows.Close()
			return nil, err
		}
		c.ref.Kind, c.ref.Org = Kind(kind), org
		children = append(children, c)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("keys: rotating keys: %w", err)
	}
	parentID := newKV.ID.String()
	for i, c := range children {
		if c.kv.Version >= maxVersion {
			return nil, fmt.Errorf("keys: the %s has run out of versions", c.ref)
		}
		next := KeyVersion{ID: c.kv.ID, Version: c.kv.Version + 1}
		h, err := newKeyset(c.ref.Kind)
		if err != nil {
			return nil, fmt.Errorf("keys: making the %s: %w", c.ref, err)
		}
		w, err := wrap(h, newE.aead, wrapAAD(c.ref, next, parentID, newKV.Version))
		if err != nil {
			return nil, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET state = 'retired', retired_at = ? WHERE id = ? AND version = ?`),
			now.UnixMicro(), c.kv.ID.String(), c.kv.Version); err != nil {
			return nil, fmt.Errorf("keys: retiring the %s: %w", c.ref, err)
		}
		if _, err := tx.ExecContext(ctx, s.q(`INSERT INTO keys (id, version, kind, org_id, owner_id, state, wrapped, wrapped_by_id, wrapped_by_version, created_at)
			VALUES (?, ?, ?, ?, ?, 'active', ?, ?, ?, ?)`),
			next.ID.String(), next.Version, string(c.ref.Kind), org, c.ref.Owner, w, parentID, newKV.Version, now.UnixMicro()); err != nil {
			return nil, fmt.Errorf("keys: storing the %s: %w", c.ref, err)
		}
		children[i].retired = c.kv.Version
		children[i].kv = next
	}
	return children, nil
}

// rewrapAddressKeys re-wraps every live content-address key of org under
// the organisation key version newKV, in place: same key id, version and key
// material (content addresses must not change), the new parent recorded in
// the row. The retired organisation key version is then no longer needed to
// compute addresses. It returns how many keys it re-wrapped.
func (s *Store) rewrapAddressKeys(ctx context.Context, tx *sql.Tx, org string, newKV KeyVersion, newE *entry) (int, error) {
	type addressRow struct {
		ref           KeyRef
		kv            KeyVersion
		wrapped       []byte
		parentID      string
		parentVersion int
	}
	rows, err := tx.QueryContext(ctx, s.q(`SELECT id, version, owner_id, wrapped, wrapped_by_id, wrapped_by_version FROM keys
		WHERE org_id = ? AND kind = ? AND state <> 'destroyed'`), org, string(KindAddress))
	if err != nil {
		return 0, fmt.Errorf("keys: re-wrapping address keys: %w", err)
	}
	var all []addressRow
	for rows.Next() {
		var (
			a     addressRow
			id    string
			owner string
		)
		if err := rows.Scan(&id, &a.kv.Version, &owner, &a.wrapped, &a.parentID, &a.parentVersion); err != nil {
			rows.Close()
			return 0, fmt.Errorf("keys: re-wrapping address keys: %w", err)
		}
		if a.kv.ID, err = parseKeyID(id); err != nil {
			rows.Close()
			return 0, err
		}
		a.ref = addressKey(org, owner)
		all = append(all, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("keys: re-wrapping address keys: %w", err)
	}
	parentID := newKV.ID.String()
	for _, a := range all {
		// The parent is a committed organisation key version, which the
		// reader pool sees.
		parent, err := s.parentAEAD(ctx, a.parentID, a.parentVersion)
		if err != nil {
			return 0, err
		}
		h, err := unwrap(a.ref, a.kv, a.wrapped, parent, a.parentID, a.parentVersion)
		if err != nil {
			return 0, err
		}
		w, err := wrap(h, newE.aead, wrapAAD(a.ref, a.kv, parentID, newKV.Version))
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET wrapped = ?, wrapped_by_id = ?, wrapped_by_version = ? WHERE id = ? AND version = ?`),
			w, parentID, newKV.Version, a.kv.ID.String(), a.kv.Version); err != nil {
			return 0, fmt.Errorf("keys: re-wrapping the %s: %w", a.ref, err)
		}
	}
	return len(all), nil
}

// RotateRoot re-wraps every live organisation, index and platform key under
// newRoot in one transaction and records newRoot's fingerprint, without
// touching any data. Seal and Open go on meanwhile (they use cached keys,
// and a key unwrapped during the rotation is unwrapped under whichever root
// its row was read with). Afterwards only newRoot opens the key store:
// [OpenStore] with the old root gets [ErrRootMismatch]. The caller saves
// newRoot ([SaveRoot]) before calling, and replaces the old root key file
// after. newRoot must differ from the current root key. The rotation is
// recorded as a key.root-rotated event of actor's (see [Store.EnsureOrgKey])
// in the same transaction.
func (s *Store) RotateRoot(ctx context.Context, newRoot *Root, actor string) error {
	if newRoot == nil {
		return errors.New("keys: RotateRoot needs a new root key")
	}
	if err := checkActor(actor); err != nil {
		return err
	}
	now := s.now()
	var (
		old   meta
		gen   int
		added bool
		done  []KeyRef
	)
	err := s.inTx(ctx, func(tx *sql.Tx, m meta) error {
		old = m
		if _, err := s.rootFor(ctx, m.generation, m.fingerprint); err != nil {
			return err
		}
		if newRoot.sameFingerprint(m.fingerprint) {
			return errors.New("keys: the new root key is the current one")
		}
		gen = m.generation + 1
		rows, err := tx.QueryContext(ctx, s.q(`SELECT id, version, kind, org_id, owner_id, wrapped, wrapped_by_version FROM keys
			WHERE wrapped_by_id = ? AND state <> 'destroyed'`), rootParent)
		if err != nil {
			return fmt.Errorf("keys: re-wrapping keys: %w", err)
		}
		type rootChild struct {
			ref           KeyRef
			kv            KeyVersion
			wrapped       []byte
			parentVersion int
		}
		var rewrap []rootChild
		for rows.Next() {
			var (
				c        rootChild
				id, kind string
			)
			if err := rows.Scan(&id, &c.kv.Version, &kind, &c.ref.Org, &c.ref.Owner, &c.wrapped, &c.parentVersion); err != nil {
				rows.Close()
				return fmt.Errorf("keys: re-wrapping keys: %w", err)
			}
			if c.kv.ID, err = parseKeyID(id); err != nil {
				rows.Close()
				return err
			}
			c.ref.Kind = Kind(kind)
			rewrap = append(rewrap, c)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("keys: re-wrapping keys: %w", err)
		}
		done = done[:0]
		for _, c := range rewrap {
			r, err := s.rootFor(ctx, c.parentVersion, "")
			if err != nil {
				return err
			}
			h, err := unwrap(c.ref, c.kv, c.wrapped, r.wrap, rootParent, c.parentVersion)
			if err != nil {
				return err
			}
			done = append(done, c.ref)
			w, err := wrap(h, newRoot.wrap, wrapAAD(c.ref, c.kv, rootParent, gen))
			if err != nil {
				return err
			}
			if _, err := tx.ExecContext(ctx, s.q(`UPDATE keys SET wrapped = ?, wrapped_by_version = ? WHERE id = ? AND version = ?`),
				w, gen, c.kv.ID.String(), c.kv.Version); err != nil {
				return fmt.Errorf("keys: re-wrapping the %s: %w", c.ref, err)
			}
		}
		if _, err := tx.ExecContext(ctx, s.q(`UPDATE key_store SET root_fingerprint = ?, root_generation = ?, root_rotated_at = ? WHERE id = 1`),
			newRoot.Fingerprint(), gen, now.UnixMicro()); err != nil {
			return fmt.Errorf("keys: recording the new root key: %w", err)
		}
		if err := s.recordEvents(ctx, tx, now, actor, Event{
			Action: ActionRootRotated, Version: gen, Rewrapped: len(done),
			RootFingerprint: newRoot.Fingerprint(), PreviousRootFingerprint: old.fingerprint,
		}); err != nil {
			return err
		}
		// Known before the commit, so that a reader that sees the new rows
		// the moment they commit finds the root key that wraps them.
		s.addRoot(gen, newRoot)
		added = true
		return nil
	})
	if err != nil {
		if added {
			s.rootMu.Lock()
			delete(s.roots, gen)
			s.rootGen = old.generation
			s.rootMu.Unlock()
		}
		return err
	}
	for _, k := range done {
		s.obs.KeyUnwrapped(k.Org, k.Kind)
	}
	return nil
}

// Status describes the key store for kluis keys status. It holds no key
// material.
type Status struct {
	RootFingerprint string
	RootGeneration  int // 1, plus one per root rotation
	RootRotatedAt   time.Time
	// Keys lists every version of every organisation, index and platform
	// key, by organisation, kind and version. User, project and address
	// keys are counted in their organisation key's entries, not listed.
	Keys []KeyInfo
}

// KeyInfo describes one version of a key.
type KeyInfo struct {
	Key         KeyRef
	ID          KeyID
	Version     int
	State       State
	CreatedAt   time.Time
	RetiredAt   time.Time // zero unless retired
	DestroyedAt time.Time // zero unless destroyed
	Age         time.Duration
	// Users, Projects and Addresses count the live user, project and
	// content-address keys wrapped by this version (organisation keys only).
	Users, Projects, Addresses int
}

// KeyStatus returns the root key's fingerprint and generation and the
// versions, states and ages of the organisation, index and platform keys.
func (s *Store) KeyStatus(ctx context.Context) (Status, error) {
	var st Status
	m, err := s.readMeta(ctx)
	if err != nil {
		return st, fmt.Errorf("keys: reading key store: %w", err)
	}
	st.RootFingerprint, st.RootGeneration, st.RootRotatedAt = m.fingerprint, m.generation, fromMicro(m.rotatedAt)
	now := s.now()

	rows, err := s.reader.QueryContext(ctx, `SELECT id, version, kind, org_id, owner_id, state, created_at, retired_at, destroyed_at
		FROM keys WHERE kind IN ('org', 'index', 'platform') ORDER BY org_id, kind, version`)
	if err != nil {
		return st, fmt.Errorf("keys: reading key store: %w", err)
	}
	defer rows.Close()
	at := map[KeyVersion]int{}
	for rows.Next() {
		var (
			k                  KeyInfo
			id, kind, state    string
			created            int64
			retired, destroyed sql.NullInt64
		)
		if err := rows.Scan(&id, &k.Version, &kind, &k.Key.Org, &k.Key.Owner, &state, &created, &retired, &destroyed); err != nil {
			return st, fmt.Errorf("keys: reading key store: %w", err)
		}
		if k.ID, err = parseKeyID(id); err != nil {
			return st, err
		}
		k.Key.Kind, k.State = Kind(kind), State(state)
		k.CreatedAt, k.RetiredAt, k.DestroyedAt = fromMicro(created), fromMicro(retired.Int64), fromMicro(destroyed.Int64)
		k.Age = now.Sub(k.CreatedAt)
		at[KeyVersion{ID: k.ID, Version: k.Version}] = len(st.Keys)
		st.Keys = append(st.Keys, k)
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("keys: reading key store: %w", err)
	}
	rows.Close()

	rows, err = s.reader.QueryContext(ctx, `SELECT wrapped_by_id, wrapped_by_version, kind, COUNT(*) FROM keys
		WHERE kind IN ('user', 'project', 'address') AND state <> 'destroyed' GROUP BY wrapped_by_id, wrapped_by_version, kind`)
	if err != nil {
		return st, fmt.Errorf("keys: reading key store: %w", err)
	}
	defer rows.Close()
	for rows.Next() {
		var (
			parent, kind string
			version, n   int
		)
		if err := rows.Scan(&parent, &version, &kind, &n); err != nil {
			return st, fmt.Errorf("keys: reading key store: %w", err)
		}
		id, err := parseKeyID(parent)
		if err != nil {
			return st, err
		}
		i, ok := at[KeyVersion{ID: id, Version: version}]
		if !ok {
			continue
		}
		switch Kind(kind) {
		case KindUser:
			st.Keys[i].Users += n
		case KindProject:
			st.Keys[i].Projects += n
		case KindAddress:
			st.Keys[i].Addresses += n
		}
	}
	if err := rows.Err(); err != nil {
		return st, fmt.Errorf("keys: reading key store: %w", err)
	}
	return st, nil
}

func fromMicro(us int64) time.Time {
	if us == 0 {
		return time.Time{}
	}
	return time.UnixMicro(us).UTC()
}

// Versions returns the state of every version of every key of organisation
// org ("" for the platform key), so that a caller can tell which stored
// ciphertexts ([ParseCiphertext]) still use a retired version.
func (s *Store) Versions(ctx context.Context, org string) (map[KeyVersion]State, error) {
	rows, err := s.reader.QueryContext(ctx, s.q(`SELECT id, version, state FROM keys WHERE org_id = ?`), org)
	if err != nil {
		return nil, fmt.Errorf("keys: listing versions: %w", err)
	}
	defer rows.Close()
	out := map[KeyVersion]State{}
	for rows.Next() {
		var id, state string
		var kv KeyVersion
		if err := rows.Scan(&id, &kv.Version, &state); err != nil {
			return nil, fmt.Errorf("keys: listing versions: %w", err)
		}
		if kv.ID, err = parseKeyID(id); err != nil {
			return nil, err
		}
		out[kv] = State(state)
	}
	return out, rows.Err()
}

// CacheTTL is how long this Store keeps an unwrapped key or an active
// version: after a rotation elsewhere, it seals with the new version within
// this time.
func (s *Store) CacheTTL() time.Duration { return s.ttl }
