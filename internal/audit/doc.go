// Package audit hashes, signs and verifies kluis's tamper-evident audit chains
// (R23, R24, R25).
//
// Every organisation has a chain of its own ("org:" + organisation id) and the
// platform has one more ([PlatformChain]). An [Event] is sealed onto its
// predecessor:
//
//	hash = SHA-256(Label ‖ prev_hash ‖ Encode(event))
//
// where the first event of a chain has an all-zero prev_hash and [Event.Encode]
// is a canonical, length-prefixed encoding that begins with the versioned
// [Label]. Every so many events, and at shutdown, the storage layer takes a
// [Checkpoint] of a chain's newest event, has a [Signer] sign it with an
// Ed25519 key that lives in a file of its own (DATA/keys), stores it in the
// database and appends a copy to a [Witness] that lives outside the database.
// A [Verifier] walks a chain in sequence order, recomputes every hash, checks
// every checkpoint's signature and that every checkpoint lies on the chain,
// compares the chain with its head row, and reports the lowest broken sequence
// number.
//
// This package knows nothing of SQL: the storage layer reads and writes the
// rows, keeps the chain-head row in the same transaction as the event insert,
// and feeds this package plain values.
//
// # Threat model
//
// The attacker can read and write anything in the data database (through SQL
// injection, a stolen database password or a copied and restored database
// file) but can neither read the signing key in DATA/keys nor write the
// witness. Such an attacker can recompute hashes, so the hash chain alone only
// catches careless edits; what makes history fixed is the signed checkpoints,
// kept in the witness as well as in the database. Verification detects:
//
//   - a modified event: any change to any field, Details, Client and the time
//     (to the microsecond) included, breaks the row's own hash; a rewritten
//     hash breaks the next row's prev_hash; rewriting every later row and the
//     head row breaks the first signed checkpoint at or after the event;
//   - a deleted event in the middle of a chain (a sequence gap, or, if the rest
//     was renumbered, broken hashes as above);
//   - two events whose contents were swapped while their sequence numbers
//     stayed in place (the sequence number is part of the hash);
//   - an inserted, forged event before the newest row, which cannot be linked
//     in without rewriting every later event, as above;
//   - a row moved from another chain (the chain id is part of the hash);
//   - truncation of the newest events after a checkpoint, that is when a
//     deleted event was covered by a checkpoint: the witness keeps the
//     checkpoint even when its database copy is deleted with the rows
//     ("checkpoint beyond end of chain"), whether or not the head row was
//     rewritten to match;
//   - deletion of a whole chain that had a checkpoint, provided the caller
//     verifies every chain the witness names and not only those the database
//     still lists;
//   - a forged, altered or conflicting checkpoint (a bad signature, or two
//     signed checkpoints for one sequence number with different hashes);
//   - a head row that disagrees with the chain, which catches rows deleted or
//     appended, and the head row itself deleted, by someone who did not also
//     rewrite the head row consistently.
//
// It does not detect:
//
//   - truncation of events newer than the last checkpoint when the head row is
//     rewritten to the new newest event; more generally any rewrite of the
//     events after the last checkpoint (modified, deleted, inserted) with every
//     later hash and the head row recomputed. How many events are exposed is
//     bounded by how often checkpoints are taken (see [CheckpointDue]);
//   - forged events appended after the newest event, chained correctly, with
//     the head row updated: the chain proves that recorded history was not
//     altered, not that every event was written by kluis;
//   - anything done by an attacker who holds the signing key: they can rewrite
//     the whole chain and sign fresh checkpoints for it, and only the witness
//     (if they cannot rewrite it too) and the copies of it that go with backups
//     still testify to the original history;
//   - deletion of the witness together with the database rows: the witness
//     must lie outside the attacker's reach, which is why it is not a table.
//
// The chain proves integrity, not confidentiality: personal values in Details
// and Client are expected to be ciphertext already, so the chain hashes
// ciphertext and a destroyed key leaves the chain verifiable.
package audit
