// Package keys is kluis's key hierarchy, field encryption and
// crypto-shredding (DESIGN §4; R15 R28 R29, and the ground for the erasure
// requirements R31 R34 R35 R36).
//
//	root key (a file: DATA/keys/root or KLUIS_ROOT_KEY_FILE; never in a database)
//	  ├─ organisation key (versioned)  → organisation-level personal data
//	  │    ├─ user key                 → that user's personal fields
//	  │    ├─ project key              → that project's content
//	  │    └─ project address key      → its content addresses and path index (HMAC-SHA-256)
//	  ├─ organisation index key        → blind indexes (HMAC-SHA-256)
//	  └─ platform key                  → operator-side secrets
//
// A [Root] is 32 random bytes in a PEM file of mode 0600. It never keys
// anything directly: an AES-256-GCM wrapping key is derived from it with
// HKDF-SHA-256 (info "kluis/root-wrap/v1"), and the key store records its
// fingerprint, SHA-256("kluis/root-fingerprint/v1" ‖ root).
//
// Every other key is a tink keyset of one key (AES-256-GCM, or HMAC-SHA-256
// for index and address keys, both without tink's output prefix), generated
// by tink from crypto/rand and stored only wrapped: tink's EncryptedKeyset,
// sealed by its parent (the root wrapping key, or the organisation key
// version recorded in the row) with associated data
//
//	"kluis/key-wrap/v1" ‖ key id ‖ version ‖ kind ‖ organisation ‖ owner ‖ parent id ‖ parent version
//
// (each variable part length-prefixed), so wrapped bytes moved to another row
// do not unwrap. tink's cleartext keyset I/O is never used.
//
// The wrapped keys live in a key [Store] apart from the data: a SQLite file
// (DATA/keys/keys.db, secure_delete on, WAL, synchronous FULL) or a
// PostgreSQL database of its own. Unwrapped keys exist only in a Store's
// cache, as tink primitives, never as bytes handed to callers: bounded (least
// recently used first) and short-lived (at most [MaxCacheTTL]), so that a key
// destroyed or rotated by another process stops being used everywhere within
// the TTL. Every change to the key store runs in one transaction that holds
// the key store's write lock (SQLite's, or a row lock on PostgreSQL), so
// several processes and nodes may share one key store.
//
// Fields are sealed with [Store.Seal] into the versioned format read by
// [ParseCiphertext]:
//
//	"v1:" ‖ key id (16) ‖ key version (4) ‖ nonce (12) ‖ AES-256-GCM ciphertext ‖ tag (16)
//
// with the associated data of [FieldLabel] (table, column, row id, key id and
// key version), and opened with [Store.Open], which also requires the key to
// belong to the field's organisation. [Store.BlindIndex] computes
// HMAC-SHA-256(index key, [BlindIndexLabel] ‖ value).
//
// Project content (DESIGN §8, package content) is chunked by the caller;
// [Store.ContentAddress] computes a chunk's address, HMAC-SHA-256(project
// address key, [ContentAddressLabel] ‖ chunk), [Store.SealChunk] seals it in
// the same version 1 format under the project key with the associated data
// of [ChunkLabel] (organisation, project, address, key id and version), and
// [Store.OpenChunk] opens it only for that project and address.
// [Store.PathIndex] is the project's blind index of file paths. The address
// key is made with the project key ([Store.EnsureProjectKey]) and destroyed
// with it ([Store.DestroyProjectKey]).
//
// Key destruction ([Store.DestroyUserKey], [Store.DestroyProjectKey],
// [Store.DestroyOrgKeys]) keeps the key's rows (for the record and for kluis
// keys status) with state destroyed and the wrapped bytes set to NULL; a
// destroyed key is never made again.
// Rotation: [Store.RotateRoot] re-wraps the root-wrapped keys under a new root
// key; [Store.RotateOrgKey] starts a new organisation key version and
// renews the user and project keys under it (address keys are re-wrapped
// unchanged, so content addresses stay valid), while the retired version
// keeps opening what it sealed until data is re-encrypted (audit rows never
// are). Every life-cycle event (a key made, rotated, retired or destroyed, the
// root key rotated) is recorded in the key store itself, in the transaction
// of the change and with the actor the caller names, until the caller has
// moved it into its audit log ([Store.PendingEvents], [Store.MarkEventsDone]):
// a crash cannot lose one. Unwraps are reported to an [Observer] (metrics).
//
// # Threat model
//
// The attacker may obtain the data database, or any copy of it (an old file,
// a dump, a backup, rows read through SQL injection), and may write to it.
// Against that attacker:
//
//   - personal values sealed here are AES-256-GCM ciphertext; their keys are
//     not in the data database, so the copy alone reveals nothing but lengths,
//     the key ids and versions in the ciphertext header, which rows share
//     a blind index within an organisation, and which chunks of a project's
//     content are equal (their addresses are); nothing links equal content
//     across projects;
//   - a ciphertext moved to another table, column or row, or to another
//     organisation's row, or altered in any bit, fails with [ErrDecrypt]:
//     Open never returns a value sealed for somewhere else. Swapping two
//     ciphertexts of the same field between versions of the same row is not
//     detected (the row id is the same); neither is replacing a value with an
//     older ciphertext of the same field and row (a rollback);
//   - after a user's or an organisation's keys are destroyed, no copy of the
//     data taken before or after can be decrypted with the current key store
//     and root key.
//
// The attacker may also obtain the key store, or a copy of it, but not the
// root key file. Wrapped keys are useless without the root key; the attacker
// learns how many keys exist, their owners' ids, ages and states, and, from
// the key events not yet moved into the audit log, who changed which keys
// lately (actors' audit names, such as "user:ID").
//
// What this package does not protect against:
//
//   - an attacker who holds both the root key and a copy of the key store
//     made before a destruction: they can unwrap the destroyed key from that
//     copy. Crypto-shredding is final only once every older copy of the key
//     store (its backups are a separate, short-lived stream) is gone, or the
//     root key has been rotated and the old one destroyed. On SQLite the
//     erased bytes are overwritten in the file (secure_delete) and the
//     write-ahead log is truncated after each destruction; on PostgreSQL
//     they survive in dead tuples until VACUUM, and in the server's WAL and
//     base backups until those are recycled;
//   - an attacker who runs code inside a kluis process, or reads its memory:
//     unwrapped keys are in the cache for up to the TTL, and Go gives no
//     guarantee that freed key material is overwritten;
//   - data a user already downloaded or that left kluis in another way;
//   - an attacker who can write the key store and wants to deny service:
//     they can delete or corrupt rows. Tampering is detected (a wrapped key
//     does not unwrap) but not repaired; a key store backup restores it;
//   - loss of the root key: then everything is lost, by design. Back it up
//     (kluis keys export-root).
//
// Key ids, fingerprints, error messages and [Event]s hold no key material and
// no plaintext and may be logged.
package keys
