package backup

import (
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"
)

// Format names the layout of a backup. A target holds:
//
//	backups/<id>/manifest.age   the manifest (this type, JSON)
//	backups/<id>/data.age       the data database (package sqldump's stream)
//	keys/<id>.age               the key store, the root key and the audit
//	                            signing key (its own object, its own retention)
//	chunks/<project>/<address>.<hash>.age
//	                            one sealed project chunk, shared by every
//	                            backup on that target that holds it
//
// Every object is an age file to the operator's recipients (and the drill
// key). Inside, personal data and content stay sealed under kluis's keys:
// the data stream holds the database's sealed columns as they are, a chunk
// object holds the chunk as the content store keeps it (AES-256-GCM under
// the project key).
const Format = "kluis-backup/1"

// Manifest describes one backup on one target.
type Manifest struct {
	Format    string    `json:"format"`
	ID        string    `json:"id"`
	CreatedAt time.Time `json:"created_at"`
	// Engine and Schema are the source database's engine and migration
	// version; a restore loads into that schema, then migrates.
	Engine string  `json:"engine"`
	Schema int     `json:"schema"`
	Data   Written `json:"data"`
	Keys   Written `json:"keys"`
	// Tables counts the rows of each table in the data stream.
	Tables map[string]int64 `json:"tables"`
	// Chunks are the sealed project chunks the backup holds on this target.
	Chunks []Chunk `json:"chunks"`
	// Orgs says what the backup holds per organisation (R31).
	Orgs []OrgHolding `json:"orgs"`
	// CheckpointPublicKey verifies the audit checkpoints (base64 Ed25519);
	// the witness's checkpoints are in the data stream.
	CheckpointPublicKey string `json:"checkpoint_public_key"`
}

// Chunk is one sealed project chunk in a backup.
type Chunk struct {
	Project string `json:"project"`
	Address string `json:"address"` // hex
	Written
}

// OrgHolding counts what a backup holds for one organisation.
type OrgHolding struct {
	Org         string `json:"org"`
	Slug        string `json:"slug"`
	Users       int64  `json:"users"`
	Projects    int64  `json:"projects"`
	Files       int64  `json:"files"`
	Versions    int64  `json:"versions"`
	Chunks      int64  `json:"chunks"`
	AuditEvents int64  `json:"audit_events"`
}

// Object names of a backup.
func ManifestName(id string) string { return "backups/" + id + "/manifest.age" }

// DataName is the object of a backup's data stream.
func DataName(id string) string { return "backups/" + id + "/data.age" }

// KeysName is the object of the key store stream made with backup id.
func KeysName(id string) string { return "keys/" + id + ".age" }

// ChunkPrefix is the start of the names of a project chunk's objects.
func ChunkPrefix(project, address string) string { return "chunks/" + project + "/" + address + "." }

// ChunkName is the object of a sealed chunk whose ciphertext has the
// SHA-256 sum (hex): a chunk object names its own checksum, so any backup
// that reuses it can verify it without another record.
func ChunkName(project, address, sum string) string {
	return ChunkPrefix(project, address) + sum + ".age"
}

// ParseChunkName returns the project and address of a chunk object.
func ParseChunkName(name string) (project, address string, ok bool) {
	rest, ok := strings.CutPrefix(name, "chunks/")
	if !ok {
		return "", "", false
	}
	project, file, ok := strings.Cut(rest, "/")
	if !ok {
		return "", "", false
	}
	address, _, ok = strings.Cut(file, ".")
	return project, address, ok && address != ""
}

// ChunkSum returns the checksum a chunk object's name records.
func ChunkSum(name string) (string, bool) {
	rest, ok := strings.CutSuffix(name, ".age")
	if !ok {
		return "", false
	}
	i := strings.LastIndexByte(rest, '.')
	if i < 0 || len(rest)-i-1 != 64 {
		return "", false
	}
	return rest[i+1:], true
}

// idLayout is the time part of a backup id: ids sort by time, and a
// backup's time can be read from any of its objects' names.
const idLayout = "20060102-150405"

// NewID returns a new backup id for a backup started at t: the time to
// the second, then six hex digits — the millisecond (three digits, 000 to
// 3e7) and three random ones — so that two backups of one second still
// sort in the order they were made.
func NewID(t time.Time) string {
	var b [2]byte
	rand.Read(b[:])
	t = t.UTC()
	return fmt.Sprintf("%s-%03x%03x", t.Format(idLayout), t.Nanosecond()/int(time.Millisecond), int(b[0])<<4|int(b[1])>>4)
}

// IDTime returns the time a backup id was made at.
func IDTime(id string) (time.Time, error) {
	if len(id) != len(idLayout)+7 || id[len(idLayout)] != '-' {
		return time.Time{}, fmt.Errorf("backup: %q is not a backup id", truncate(id))
	}
	if _, err := hex.DecodeString(id[len(idLayout)+1:]); err != nil {
		return time.Time{}, fmt.Errorf("backup: %q is not a backup id", truncate(id))
	}
	t, err := time.Parse(idLayout, id[:len(idLayout)])
	if err != nil {
		return time.Time{}, fmt.Errorf("backup: %q is not a backup id", truncate(id))
	}
	return t, nil
}

// CheckID refuses anything that is not a backup id.
func CheckID(id string) error {
	_, err := IDTime(id)
	return err
}

// IDFromName returns the backup id of a manifest or key object name.
func IDFromName(name string) (string, bool) {
	if rest, ok := strings.CutPrefix(name, "backups/"); ok {
		id, file, ok := strings.Cut(rest, "/")
		if ok && file == "manifest.age" && CheckID(id) == nil {
			return id, true
		}
		return "", false
	}
	if rest, ok := strings.CutPrefix(name, "keys/"); ok {
		id, ok := strings.CutSuffix(rest, ".age")
		if ok && CheckID(id) == nil {
			return id, true
		}
	}
	return "", false
}
