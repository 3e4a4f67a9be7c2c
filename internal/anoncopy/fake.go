package anoncopy

import (
	"bytes"
	"compress/zlib"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"hash/crc32"
	"io"
	"path"
	"strings"

	"github.com/kluis/kluis"
)

// Faker turns real values into fake ones, consistently: the same real value
// of a kind gives the same fake value everywhere in one copy, and nothing
// about the real value can be learned from the fake without the copy's key.
// The key is random, made for one copy, and never stored: a later copy
// fakes the same person differently, and nobody can recompute the mapping.
type Faker struct {
	key []byte
}

// NewFaker makes a faker with a fresh random key.
func NewFaker() (*Faker, error) {
	k := make([]byte, 32)
	if _, err := rand.Read(k); err != nil {
		return nil, err
	}
	return &Faker{key: k}, nil
}

// sum is the HMAC of a value of a kind under the copy's key.
func (f *Faker) sum(kind, value string) []byte {
	m := hmac.New(sha256.New, f.key)
	m.Write([]byte(kind))
	m.Write([]byte{0})
	m.Write([]byte(value))
	return m.Sum(nil)
}

func (f *Faker) tag(kind, value string, n int) string {
	return hex.EncodeToString(f.sum(kind, value))[:n]
}

// Forget drops the key: no fake made after can match one made before.
func (f *Faker) Forget() { clear(f.key) }

var firstNames = []string{"Alex", "Sam", "Robin", "Kim", "Noa", "Jip", "Lou", "Max", "Eli", "Ari",
	"Fenna", "Daan", "Luca", "Mila", "Tijn", "Saar", "Jules", "Roos", "Milan", "Yara"}

var lastNames = []string{"Testa", "Proef", "Voorbeeld", "Example", "Sample", "Demo", "Muster",
	"Placeholder", "Fictief", "Stand-in", "Dummy", "Specimen"}

// Name is a fake person's name: a first and last name from short lists of
// obviously made-up names, and a tag that tells people apart.
func (f *Faker) Name(real string) string {
	s := f.sum("name", strings.TrimSpace(real))
	return fmt.Sprintf("%s %s %s", firstNames[int(s[0])%len(firstNames)], lastNames[int(s[1])%len(lastNames)],
		strings.ToUpper(hex.EncodeToString(s[2:4])))
}

// Email is a fake e-mail address under example.org (RFC 2606): mail sent
// to it in the copy reaches nobody.
func (f *Faker) Email(real string) string {
	return "person-" + f.tag("email", kluis.NormalizeEmail(real), 12) + "@example.org"
}

// Phone is a fake phone number in the range the UK regulator keeps for
// drama (+44 7700 900000 to 900999): it rings nobody. Empty stays empty.
func (f *Faker) Phone(real string) string {
	real = kluis.NormalizePhone(real)
	if real == "" {
		return ""
	}
	s := f.sum("phone", real)
	return fmt.Sprintf("+447700900%03d", int(binary.BigEndian.Uint16(s))%1000)
}

// OrgName and OrgSlug fake an organisation's name and slug.
func (f *Faker) OrgName(id string) string {
	return "Organisation " + strings.ToUpper(f.tag("org", id, 6))
}
func (f *Faker) OrgSlug(id string) string { return "org-" + f.tag("org", id, 10) }

// Label fakes a name of a kind ("Project", "Group") given the row's id.
func (f *Faker) Label(kind, id string) string {
	return kind + " " + strings.ToUpper(f.tag(kind, id, 6))
}

// Path fakes a file's path segment by segment, keeping the depth and the
// extension of the last segment (its type): the same real path gives the
// same fake path in every version of the project.
func (f *Faker) Path(project, real string) string {
	segs := strings.Split(real, "/")
	for i, s := range segs {
		prefix := "folder-"
		ext := ""
		if i == len(segs)-1 {
			prefix, ext = "file-", safeExt(s)
		}
		segs[i] = prefix + f.tag("path", project+"/"+strings.Join(segs[:i], "/")+"/"+s, 12) + ext
	}
	return strings.Join(segs, "/")
}

// safeExt is a file name's extension when it looks like a type (a dot and
// one to eight letters or digits), in lower case; otherwise none, so that a
// name like "notes.Jansen family" does not keep a personal part.
func safeExt(name string) string {
	ext := strings.ToLower(path.Ext(name))
	if len(ext) < 2 || len(ext) > 9 {
		return ""
	}
	for _, r := range ext[1:] {
		if (r < 'a' || r > 'z') && (r < '0' || r > '9') {
			return ""
		}
	}
	return ext
}

// textExts are the extensions whose stand-in is plain text.
var textExts = map[string]bool{".txt": true, ".md": true, ".csv": true, ".log": true, ".text": true}

const filler = "This file is a stand-in made for an anonymised copy of a kluis instance; its content is not the original's.\n"

// StandIn is generated content in place of a file's: exactly size bytes,
// of the type the extension names where that is simple — plain text for
// .txt, .md, .csv and .log, a valid PNG image for .png, a valid PDF for
// .pdf, a JSON string for .json — and random bytes otherwise or when the
// size is too small for a valid file of the type. It streams: a file of
// gigabytes takes no more memory than a small one.
func StandIn(ext string, size int64) io.Reader {
	switch {
	case textExts[ext]:
		return repeat(filler, size)
	case ext == ".json" && size >= 2:
		return io.MultiReader(strings.NewReader(`"`), repeat("anonymised stand-in ", size-2), strings.NewReader(`"`))
	case ext == ".png":
		if r, ok := pngStandIn(size); ok {
			return r
		}
	case ext == ".pdf":
		if r, ok := pdfStandIn(size); ok {
			return r
		}
	}
	return io.LimitReader(rand.Reader, size)
}

type repeater struct {
	s   string
	pos int
}

func (r *repeater) Read(p []byte) (int, error) {
	n := 0
	for n < len(p) {
		c := copy(p[n:], r.s[r.pos:])
		n += c
		r.pos = (r.pos + c) % len(r.s)
	}
	return n, nil
}

func repeat(s string, size int64) io.Reader { return io.LimitReader(&repeater{s: s}, size) }

// pngChunk is one PNG chunk: length, type, data, CRC.
func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	binary.Write(&b, binary.BigEndian, uint32(len(data)))
	b.WriteString(typ)
	b.Write(data)
	binary.Write(&b, binary.BigEndian, crc32.ChecksumIEEE(append([]byte(typ), data...)))
	return b.Bytes()
}

// pngStandIn is a 1×1 grey PNG, padded to size with a private ancillary
// chunk of zeros ("klUs") that decoders skip.
func pngStandIn(size int64) (io.Reader, bool) {
	var head bytes.Buffer
	head.Write([]byte("\x89PNG\r\n\x1a\n"))
	head.Write(pngChunk("IHDR", []byte{0, 0, 0, 1, 0, 0, 0, 1, 8, 0, 0, 0, 0}))
	var z bytes.Buffer
	zw := zlib.NewWriter(&z)
	zw.Write([]byte{0, 0x80}) // filter none, one grey pixel
	zw.Close()
	head.Write(pngChunk("IDAT", z.Bytes()))
	end := pngChunk("IEND", nil)
	base := int64(head.Len() + len(end))
	switch {
	case size == base:
		return io.MultiReader(&head, bytes.NewReader(end)), true
	case size < base+12 || size-base-12 > 1<<31-1:
		return nil, false
	}
	pad := size - base - 12
	// The CRC of the padding chunk, over its type and pad zero bytes.
	crc := crc32.ChecksumIEEE([]byte("klUs"))
	zeros := make([]byte, 64<<10)
	for left := pad; left > 0; {
		n := min(left, int64(len(zeros)))
		crc = crc32.Update(crc, crc32.IEEETable, zeros[:n])
		left -= n
	}
	var ph, pt [4]byte
	binary.BigEndian.PutUint32(ph[:], uint32(pad))
	binary.BigEndian.PutUint32(pt[:], crc)
	return io.MultiReader(&head, bytes.NewReader(ph[:]), strings.NewReader("klUs"),
		io.LimitReader(zeroReader{}, pad), bytes.NewReader(pt[:]), bytes.NewReader(end)), true
}

type zeroReader struct{}

func (zeroReader) Read(p []byte) (int, error) { clear(p); return len(p), nil }

// pdfStandIn is a one-page blank PDF, padded to size with a comment line
// after its header; the cross-reference table's offsets account for it.
func pdfStandIn(size int64) (io.Reader, bool) {
	head := "%PDF-1.4\n%"
	build := func(pad int64) string {
		objs := []string{
			"1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n",
			"2 0 obj\n<< /Type /Pages /Kids [3 0 R] /Count 1 >>\nendobj\n",
			"3 0 obj\n<< /Type /Page /Parent 2 0 R /MediaBox [0 0 595 842] >>\nendobj\n",
		}
		off := int64(len(head)) + pad + 1
		var body, xref strings.Builder
		xref.WriteString("xref\n0 4\n0000000000 65535 f \n")
		for _, o := range objs {
			fmt.Fprintf(&xref, "%010d 00000 n \n", off)
			body.WriteString(o)
			off += int64(len(o))
		}
		fmt.Fprintf(&xref, "trailer\n<< /Size 4 /Root 1 0 R >>\nstartxref\n%d\n%%%%EOF\n", off)
		return "\n" + body.String() + xref.String()
	}
	rest := build(0)
	if size < int64(len(head)+len(rest)) {
		return nil, false
	}
	pad := size - int64(len(head)+len(rest))
	for range 4 { // the startxref number may grow by a digit or two
		rest = build(pad)
		if d := size - int64(len(head)) - pad - int64(len(rest)); d != 0 {
			if pad += d; pad < 0 {
				return nil, false
			}
			continue
		}
		return io.MultiReader(strings.NewReader(head), repeat("x", pad), strings.NewReader(rest)), true
	}
	return nil, false
}
