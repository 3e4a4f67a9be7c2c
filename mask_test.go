package kluis_test

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/kluis/kluis"
)

// R29: an e-mail address in a list shows its first character and its domain,
// never the rest of the local part, and never its length.
func TestMaskEmail(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"jan@example.org", "j***@example.org"},
		{"j@example.org", "j***@example.org"},
		{"jan.jansen+kluis@example.org", "j***@example.org"},
		{"markermail7q@sub.example.co.uk", "m***@sub.example.co.uk"},
		// The first character is a rune, not a byte: no broken UTF-8.
		{"élise@example.org", "é***@example.org"},
		{"Ωmega@example.org", "Ω***@example.org"},
		// Nothing that looks like an address: masked whole.
		{"", "***"},
		{"no-at-sign", "***"},
		{"@example.org", "***"},
	} {
		got := kluis.MaskEmail(tt.in)
		if got != tt.want {
			t.Errorf("MaskEmail(%q) = %q, want %q", tt.in, got, tt.want)
		}
		if !utf8.ValidString(got) {
			t.Errorf("MaskEmail(%q) = %q is not valid UTF-8", tt.in, got)
		}
	}
}

// The mask hides the local part of addresses of every length: two addresses
// that differ only after the first character look the same.
func TestMaskEmailHidesLocalPartAndLength(t *testing.T) {
	a := kluis.MaskEmail("maria@example.org")
	b := kluis.MaskEmail("m.a.very.long.local.part@example.org")
	if a != b {
		t.Errorf("MaskEmail tells %q from %q, want the same mask for the same first character and domain", a, b)
	}
	for _, local := range []string{"markermail7q", "ab", "abc"} {
		got := kluis.MaskEmail(local + "@example.org")
		if strings.Contains(got, local[1:]) {
			t.Errorf("MaskEmail(%q) = %q shows more than the first character of the local part", local+"@example.org", got)
		}
	}
}

// R29: a phone number in a list shows its last two digits and its layout.
func TestMaskPhone(t *testing.T) {
	for _, tt := range []struct {
		in, want string
	}{
		{"", ""},
		{"+31612345678", "+*********78"},
		{"+31 6 12345678", "+** * ******78"},
		{"(020) 123-4567", "(***) ***-**67"},
		{"0612345678", "********78"},
		// Two digits or fewer: nothing to hide beyond what is shown anyway.
		{"12", "12"},
		{"+1", "+1"},
		{"123", "*23"},
	} {
		if got := kluis.MaskPhone(tt.in); got != tt.want {
			t.Errorf("MaskPhone(%q) = %q, want %q", tt.in, got, tt.want)
		}
	}
}

// Whatever the number, exactly its last two digits survive and nothing else
// that is a digit.
func TestMaskPhoneKeepsOnlyTheLastTwoDigits(t *testing.T) {
	for _, in := range []string{"+31697531864", "+442079460123", "+1 (555) 010-9999", "+49 30 901820"} {
		got := kluis.MaskPhone(in)
		if utf8.RuneCountInString(got) != utf8.RuneCountInString(in) {
			t.Errorf("MaskPhone(%q) = %q changes the layout", in, got)
		}
		var digits []rune
		for _, r := range got {
			if r >= '0' && r <= '9' {
				digits = append(digits, r)
			}
		}
		var all []rune
		for _, r := range in {
			if r >= '0' && r <= '9' {
				all = append(all, r)
			}
		}
		if string(digits) != string(all[len(all)-2:]) {
			t.Errorf("MaskPhone(%q) = %q shows digits %q, want only the last two %q", in, got, string(digits), string(all[len(all)-2:]))
		}
	}
}

// User.Masked masks the contact details and keeps everything a list needs:
// id, name, role, status, dates. The user it was called on is unchanged.
func TestUserMasked(t *testing.T) {
	created := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, tt := range []struct {
		name string
		in   kluis.User
		want kluis.User
	}{
		{
			name: "full contact details",
			in: kluis.User{ID: "u1", OrgID: "o1", Name: "Jan Jansen", Email: "jan@example.org", Phone: "+31612345678",
				MaintenanceEmails: true, Role: kluis.RoleManager, Status: kluis.StatusActive, CreatedAt: created, LastLoginAt: created.Add(time.Hour)},
			want: kluis.User{ID: "u1", OrgID: "o1", Name: "Jan Jansen", Email: "j***@example.org", Phone: "+*********78",
				MaintenanceEmails: true, Role: kluis.RoleManager, Status: kluis.StatusActive, CreatedAt: created, LastLoginAt: created.Add(time.Hour)},
		},
		{
			name: "no phone",
			in:   kluis.User{ID: "u2", OrgID: "o1", Name: "Mia", Email: "mia@example.org", Role: kluis.RoleMember, Status: kluis.StatusInvited},
			want: kluis.User{ID: "u2", OrgID: "o1", Name: "Mia", Email: "m***@example.org", Role: kluis.RoleMember, Status: kluis.StatusInvited},
		},
	} {
		t.Run(tt.name, func(t *testing.T) {
			orig := tt.in
			got := tt.in.Masked()
			if got != tt.want {
				t.Errorf("Masked() = %+v, want %+v", got, tt.want)
			}
			if tt.in != orig {
				t.Errorf("Masked changed the user it was called on: %+v", tt.in)
			}
			if orig.Phone != "" && strings.Contains(got.Phone, orig.Phone[:len(orig.Phone)-2]) {
				t.Errorf("masked phone %q still holds the number", got.Phone)
			}
		})
	}
}
