package i18n_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
)

// TestEveryTextIsInBothLanguages: no text is missing a language, and a
// Dutch text that equals the English one is a word both languages share.
func TestEveryTextIsInBothLanguages(t *testing.T) {
	same := map[string]bool{"Status": true, "Details": true, "Conflict": true, "%s": true, "Code": true, "%d bytes": true}
	for _, k := range i18n.Keys() {
		en, nl := i18n.EN.T(k), i18n.NL.T(k)
		if strings.TrimSpace(en) == "" || strings.TrimSpace(nl) == "" {
			t.Errorf("text %q: en %q nl %q, want both", k, en, nl)
		}
		if en == nl && !same[en] && k != "lang.name" {
			t.Errorf("text %q is %q in both languages: not translated?", k, en)
		}
		if strings.Count(en, "%") != strings.Count(nl, "%") {
			t.Errorf("text %q: en %q and nl %q take different arguments", k, en, nl)
		}
	}
	if got := i18n.NL.T("no.such.key"); got != "!no.such.key" {
		t.Errorf("unknown key gives %q, want it marked", got)
	}
}

// TestDomainMessagesAreTranslated: every message the domain gives for a
// field has a Dutch text, numbers included.
func TestDomainMessagesAreTranslated(t *testing.T) {
	var msgs []string
	add := func(err error) {
		if err == nil {
			t.Fatal("want an error")
		}
		if ke, ok := err.(*kluis.Error); ok && len(ke.Fields) > 0 {
			for _, m := range ke.Fields {
				msgs = append(msgs, m)
			}
			return
		}
		msgs = append(msgs, err.Error())
	}
	add(kluis.ValidateEmail("not an address"))
	add(kluis.ValidateName(""))
	add(kluis.ValidateName(strings.Repeat("a", 201)))
	add(kluis.ValidateName("a\x07b"))
	add(kluis.ValidatePhone("call me"))
	bad := kluis.Role("boss")
	add(kluis.UserInput{Role: &bad}.Validate())
	add(kluis.Policy{PasswordMinLength: 1, SessionIdleMinutes: 0, SessionMaxHours: 0}.Validate())
	add(kluis.Policy{PasswordMinLength: 1, MaxManagers: new(101)}.Validate())
	p := kluis.DefaultPolicy
	p.PasswordRequireDigit, p.PasswordRequireUpper = true, true
	for _, pw := range []string{"short", strings.Repeat("a", kluis.MaxPasswordLength+1), "          ", "abcdefghij", "abcdefghi1", "\xff\xfe\xfd\xfc\xfb\xfa\xf9\xf8"} {
		add(p.CheckPassword(pw))
	}
	msgs = append(msgs, kluis.ErrLastManager.Message, kluis.ErrPreconditionFailed.Message)
	add(kluis.Policy{ProjectAccess: "anyone", TrashDays: 900}.Validate())
	for _, path := range []string{"", "a//b", strings.Repeat("x", kluis.MaxPathLength+1), "\xff"} {
		add(kluis.ValidatePath(path))
	}
	_, err := kluis.ParseSubject("nobody")
	add(err)
	add(kluis.ProjectInput{Name: strings.Repeat("p", 201)}.Validate())
	now := time.Now()
	add(kluis.SupportGrantInput{Scope: "nowhere", Right: "own", ExpiresAt: now.Add(15 * 24 * time.Hour)}.Validate(now))
	add(kluis.SupportGrantInput{ExpiresAt: now}.Validate(now))
	add(kluis.SupportGrantInput{}.Validate(now))
	add(kluis.Announcement{Title: strings.Repeat("t", 201), Body: "a\x07b"}.Validate())
	add(kluis.Announcement{}.Validate())
	msgs = append(msgs, kluis.ErrProcessingRestricted.Message)
	for _, m := range msgs {
		if !i18n.Translated(m) {
			t.Errorf("domain message %q has no Dutch text", m)
		}
	}
	if got := i18n.NL.Message("must be at least 12 characters"); got != "moet minstens 12 tekens lang zijn" {
		t.Errorf("number in a message: %q", got)
	}
	if got := i18n.EN.Message("anything"); got != "anything" {
		t.Errorf("English message changed: %q", got)
	}
}

func TestNegotiate(t *testing.T) {
	for _, tc := range []struct {
		header string
		want   i18n.Lang
	}{
		{"", i18n.EN},
		{"nl", i18n.NL},
		{"nl-NL,nl;q=0.9,en-US;q=0.8,en;q=0.7", i18n.NL},
		{"en-GB,en;q=0.9,nl;q=0.8", i18n.EN},
		{"de-DE,de;q=0.9,nl;q=0.5,en;q=0.4", i18n.NL},
		{"fr, en;q=0.1", i18n.EN},
		{"fr", i18n.EN},
		{"nl;q=0", i18n.EN},
		{"nl;q=abc, en;q=0.2", i18n.EN},
		{"NL-be", i18n.NL},
		{"*", i18n.EN},
		{"en;q=0.5, nl;q=0.5", i18n.EN},
		{strings.Repeat("nl,", 500), i18n.EN},
	} {
		if got := i18n.Negotiate(tc.header); got != tc.want {
			t.Errorf("Negotiate(%.40q) = %s, want %s", tc.header, got, tc.want)
		}
	}
}

func FuzzNegotiate(f *testing.F) {
	for _, s := range []string{"nl", "en-GB,en;q=0.9", "nl;q=0.5,,;;q=", "*;q=1.0"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, header string) {
		if l := i18n.Negotiate(header); l != i18n.EN && l != i18n.NL {
			t.Fatalf("Negotiate(%q) = %q", header, l)
		}
	})
}

func TestTimesInTheLanguageAndZone(t *testing.T) {
	at := time.Date(2026, 3, 29, 0, 30, 0, 0, time.UTC)
	ams, ok := i18n.Location("Europe/Amsterdam")
	if !ok {
		t.Fatal("Europe/Amsterdam is not known")
	}
	if got := i18n.NL.DateTime(at, ams); got != "29 mrt 2026 01:30 CET" {
		t.Errorf("Dutch: %q", got)
	}
	if got := i18n.EN.DateTime(at.Add(2*time.Hour), ams); got != "29 Mar 2026, 04:30 CEST" {
		t.Errorf("English after the clocks changed: %q", got)
	}
	for _, bad := range []string{"", "Local", "../../etc/passwd", "Europe/Nowhere", strings.Repeat("A", 65), "Europe/Amsterdam\x00"} {
		if _, ok := i18n.Location(bad); ok {
			t.Errorf("Location(%q) accepted", bad)
		}
	}
}
