// Package content is kluis's store for project files (DESIGN §8): files are
// cut into content-defined chunks, each chunk is addressed and sealed on its
// own under the project's keys and kept as a blob, and a file is a manifest
// of chunk addresses. Large files stream through in bounded memory without a
// streaming AEAD, identical chunks of a project are stored once, and
// backups can copy sealed blobs without opening them.
//
//	file ──[Cut]──▶ chunks of 512 KiB to 4 MiB (about 1 MiB on average)
//	chunk ──[Sealer.Address]──▶ address = HMAC-SHA-256(project address key, "kluis/content/address/v1" ‖ chunk)
//	chunk ──[Sealer.Seal]──▶ AES-256-GCM under the project key, bound to organisation, project and address
//	sealed ──[Blobs.Put]──▶ <root>/<project>/<aa>/<address in hex>   ([Dir]; a database table in scale-out mode)
//	file = [FileManifest]{Size, [ChunkRef]{Address, Size}...}        (sealed and stored by the caller)
//
// [Store] does the writing side: it cuts, addresses, and seals and puts the
// chunks that [Blobs.Has] does not find, within a size limit, and says which
// chunks it put and which it found. [NewReader] does the reading side: an
// io.ReadSeeker (for http.ServeContent and its Range requests) that fetches
// and opens one chunk at a time (and the next one meanwhile, while it is read
// in order) and checks the length and the address of every chunk it opens
// against the manifest.
//
// This package holds no keys and imports neither the key store nor the
// database: a [Sealer] bound to one project does the cryptography, and
// [ProjectSealer] makes one from the key store (package keys, through the
// [ChunkKeys] interface); [Blobs] keeps the sealed chunks.
//
// # Chunk boundaries
//
// Cut points are found by a gear hash, FastCDC style (gear.go): a rolling
// hash over the last 64 bytes with a fixed, public table, nothing hashed in
// a chunk's first 512 KiB, a stricter mask before 1 MiB and a looser one
// after it (normalised chunking), 4 MiB at most. Boundaries are the same on
// every node and run, so an unchanged part of a file keeps its chunks (and
// an inserted byte changes only the chunk or two around it), and they are
// part of the format: changing the table, the masks or the size bounds
// would make every later upload of old content store new chunks. Backup
// tools such as restic keep their cut-point parameters secret per
// repository so that boundaries cannot be predicted from known content.
// Here chunks are addressed by a keyed HMAC and sealed under per-project
// keys, so a known plaintext cannot be matched to an address or a blob; a
// secret table would only hide where the cuts fall, which chunk sizes give
// away in part anyway, at the cost of another per-project secret. What a
// fixed table does leave is written down below.
//
// # Threat model
//
// The attacker may obtain the content folder (or the chunk table of a
// database copy, or a backup of either), and the data database with the
// sealed manifests, but not the key store and root key (package keys).
// Against that attacker:
//
//   - chunk plaintext is AES-256-GCM ciphertext under the project key;
//     addresses are HMAC-SHA-256 under the project's address key, so
//     neither reveals content, and a guessed plaintext cannot be confirmed
//     from an address;
//   - the attacker learns, per project: how many chunks there are and their
//     sizes (a blob is its chunk plus a fixed overhead), when they were
//     written (file times), and which chunks are shared by several files or
//     versions of the project (dedup: one blob per address). Because the
//     gear table is public, the sequence of chunk sizes of a file the
//     attacker already knows is predictable; an attacker who can also tell
//     which blobs belong to one upload (file times, or watching the folder)
//     can test whether that known file was stored. Sealed manifests hide the
//     grouping of chunks into files;
//   - nothing links content across projects: the same bytes in two projects
//     have unrelated addresses and ciphertexts;
//   - a blob altered, truncated, swapped with another blob, or moved to
//     another address or project fails to open (keys.ErrDecrypt), and a
//     chunk that opens but does not match its manifest entry fails with
//     [ErrCorrupt]: a reader never returns bytes that are not the file's;
//   - once the project key is destroyed (keys.Store.DestroyProjectKey,
//     which destroys the address key with it), no blob of the project, in
//     any copy, opens, and no address can be computed to test a guess.
//
// What this package does not protect against: an attacker with the key
// store and root key as well (package keys); one who deletes blobs
// (detected on read, as [ErrCorrupt], not repaired: restore from a backup;
// an older copy of a blob put back holds the same chunk and does no harm);
// and one who reads the memory of a kluis process, which holds the
// plaintext of the chunks it is storing or serving.
package content
