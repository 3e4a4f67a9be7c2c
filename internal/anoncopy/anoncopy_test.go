package anoncopy_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"image/png"
	"io"
	"regexp"
	"strconv"
	"strings"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/anoncopy"
	"github.com/kluis/kluis/internal/kluistest"
)

// R48: every table of the schema has a rule saying what the anonymised
// copy does with it, and a table without one makes the copy refuse — a
// table added later is never copied (or left out) by accident; so does a
// column added to a table whose rows are copied as they are.
func TestEveryTableHasAnAnonymisedCopyRule(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		tables, err := env.DB.Tables(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, table := range tables {
			if _, ok := anoncopy.Rules[table]; !ok {
				t.Errorf("table %s has no rule in anoncopy.Rules", table)
			}
		}
		if err := anoncopy.CheckTables(ctx, env.Core); err != nil {
			t.Fatalf("CheckTables on the schema: %v", err)
		}
		env.MustExec(t, `ALTER TABLE orgs ADD COLUMN contact_email TEXT`)
		if err := anoncopy.CheckTables(ctx, env.Core); !errors.Is(err, anoncopy.ErrNoRule) || !strings.Contains(err.Error(), "orgs.contact_email") {
			t.Fatalf("CheckTables with a new column of a copied table: %v, want ErrNoRule naming it", err)
		}
		env.MustExec(t, `ALTER TABLE orgs DROP COLUMN contact_email`)
		env.MustExec(t, `CREATE TABLE secret_notes (id TEXT PRIMARY KEY, note TEXT)`)
		if err := anoncopy.CheckTables(ctx, env.Core); !errors.Is(err, anoncopy.ErrNoRule) || !strings.Contains(err.Error(), "secret_notes") {
			t.Fatalf("CheckTables with a table without a rule: %v, want ErrNoRule naming it", err)
		}
	})
}

// R48: the same real value gives the same fake within one copy (so the
// copy stays consistent), another fake in another copy (the key is random
// and forgotten), and no fake holds the real value or a part of it.
func TestFakesAreConsistentWithinACopyAndUnlinkableAcross(t *testing.T) {
	f1, _ := anoncopy.NewFaker()
	f2, _ := anoncopy.NewFaker()
	email := "Wilhelmina.Zandvoort@Example.com"
	if f1.Email(email) != f1.Email(" wilhelmina.zandvoort@example.com") {
		t.Error("the same address (normalised) gives two fakes in one copy")
	}
	if f1.Email(email) == f2.Email(email) || f1.Name("Wilhelmina") == f2.Name("Wilhelmina") && f1.Email("x@y.z") == f2.Email("x@y.z") {
		t.Error("two copies fake the same address alike")
	}
	if f1.Phone("+31 6 1234 5678") != f1.Phone("+31612345678") || f1.Phone("") != "" {
		t.Error("phone fakes are not consistent, or an empty phone got one")
	}
	for _, fake := range []string{f1.Email(email), f1.Name("Wilhelmina Zandvoort"), f1.Phone("+31612345678"),
		f1.Path("p", "klanten/Zandvoort/hypotheek.txt"), f1.OrgName("x"), f1.OrgSlug("x")} {
		for _, part := range []string{"ilhelmina", "Zandvoort", "12345678", "klanten", "hypotheek"} {
			if strings.Contains(fake, part) {
				t.Errorf("fake %q holds %q", fake, part)
			}
		}
	}
	if kluis.ValidateEmail(f1.Email(email)) != nil || kluis.ValidatePhone(f1.Phone("+31612345678")) != nil || kluis.ValidateSlug(f1.OrgSlug("x")) != nil {
		t.Error("a fake is not a valid value of its kind")
	}
	p := f1.Path("proj", "a/b/Report Jansen.PDF")
	if !regexp.MustCompile(`^folder-[0-9a-f]{12}/folder-[0-9a-f]{12}/file-[0-9a-f]{12}\.pdf$`).MatchString(p) || p != f1.Path("proj", "a/b/Report Jansen.PDF") {
		t.Errorf("Path = %q: want the depth and the extension kept, consistently", p)
	}
	if strings.Contains(f1.Path("proj", "notes.Jansen family"), "Jansen") {
		t.Error("an extension that is no type was kept")
	}
	f1.Forget()
	if f1.Email(email) == f2.Email(email) {
		t.Error("a forgotten key still fakes")
	}
}

// R48: a file's stand-in has exactly the file's size, and is a valid file
// of its type where that is simple: text, JSON, PNG (it decodes) and PDF
// (its cross-reference offsets point at its objects); otherwise random
// bytes.
func TestStandInsHaveTheSizeAndType(t *testing.T) {
	for _, ext := range []string{".txt", ".md", ".csv", ".json", ".png", ".pdf", ".bin", ""} {
		for _, size := range []int64{0, 1, 2, 70, 71, 72, 82, 83, 84, 400, 4096, 99999, 1 << 20} {
			b, err := io.ReadAll(anoncopy.StandIn(ext, size))
			if err != nil {
				t.Fatal(err)
			}
			if int64(len(b)) != size {
				t.Fatalf("StandIn(%q, %d) has %d bytes", ext, size, len(b))
			}
			switch ext {
			case ".txt", ".md", ".csv":
				if !bytes.HasPrefix([]byte("This file is a stand-in"), b[:min(len(b), 23)]) {
					t.Errorf("StandIn(%q, %d) is not the text stand-in", ext, size)
				}
			case ".json":
				if size >= 2 && (b[0] != '"' || b[size-1] != '"') {
					t.Errorf("StandIn(.json, %d) is not a JSON string", size)
				}
			case ".png":
				if size >= 83 || size == 71 { // 71: the bare image; from 83 on: padded
					if _, err := png.Decode(bytes.NewReader(b)); err != nil {
						t.Errorf("StandIn(.png, %d) does not decode: %v", size, err)
					}
				}
			case ".pdf":
				if size >= 400 {
					checkPDF(t, b)
				}
			}
		}
	}
}

func checkPDF(t *testing.T, b []byte) {
	t.Helper()
	s := string(b)
	if !strings.HasPrefix(s, "%PDF-1.4\n") || !strings.HasSuffix(s, "%%EOF\n") {
		t.Fatalf("no PDF of %d bytes: %q…", len(b), s[:20])
	}
	m := regexp.MustCompile(`startxref\n(\d+)\n`).FindStringSubmatch(s)
	if m == nil {
		t.Fatal("no startxref")
	}
	at, _ := strconv.Atoi(m[1])
	if !strings.HasPrefix(s[at:], "xref\n0 4\n") {
		t.Fatalf("startxref %d does not point at the xref table", at)
	}
	offs := regexp.MustCompile(`(\d{10}) 00000 n `).FindAllStringSubmatch(s[at:], -1)
	if len(offs) != 3 {
		t.Fatalf("%d objects in the xref table", len(offs))
	}
	for i, o := range offs {
		n, _ := strconv.Atoi(o[1])
		if !strings.HasPrefix(s[n:], fmt.Sprintf("%d 0 obj", i+1)) {
			t.Errorf("xref entry %d points at %q", i+1, s[n:min(len(s), n+10)])
		}
	}
}
