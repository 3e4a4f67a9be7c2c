package mail_test

import (
	"slices"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/mail"
)

const testLink = "https://kluis.example.org/o/acme/invite#Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"

func TestRenderEveryKindAndLanguage(t *testing.T) { // R45: a notice with a link, nothing more
	tests := []struct {
		kind       mail.Kind
		lang       string
		link       string
		wantInBody []string
	}{
		{mail.Invitation, "en", testLink, []string{"Acme Zorg", "72 hours", "ignore"}},
		{mail.Invitation, "nl", testLink, []string{"Acme Zorg", "72 uur", "negeren"}},
		{mail.PasswordReset, "en", "https://kluis.example.org/o/acme/reset#" + strings.Repeat("A", 43), []string{"Acme Zorg", "30 minutes", "once", "ignore"}},
		{mail.PasswordReset, "nl", "https://kluis.example.org/o/acme/reset#" + strings.Repeat("A", 43), []string{"Acme Zorg", "30 minuten", "één keer", "Negeer"}},
		{mail.PasswordChanged, "en", "https://kluis.example.org/o/acme/login", []string{"Acme Zorg", "password", "manager"}},
		{mail.PasswordChanged, "nl", "https://kluis.example.org/o/acme/login", []string{"Acme Zorg", "wachtwoord", "beheerder"}},
		{mail.PasswordChanged, "en", "", []string{"Acme Zorg", "password", "manager"}},
		{mail.PasswordChanged, "nl", "", []string{"Acme Zorg", "wachtwoord", "beheerder"}},
		// Issue 13 (R5, R8, R45): a notice waits; what it says is not in the mail.
		{mail.NoticeWaiting, "en", "https://kluis.example.org/o/acme/inbox", []string{"Acme Zorg", "inbox", "Sign in"}},
		{mail.NoticeWaiting, "nl", "https://kluis.example.org/o/acme/inbox", []string{"Acme Zorg", "postvak", "Meld je aan"}},
	}
	for _, tt := range tests {
		t.Run(string(tt.kind)+"/"+tt.lang+"/link="+tt.link, func(t *testing.T) {
			subject, body, err := mail.Render(tt.kind, tt.lang, mail.Data{OrgName: "Acme Zorg", Link: tt.link})
			if err != nil {
				t.Fatalf("Render: got error %v, want nil", err)
			}
			if strings.TrimSpace(subject) == "" || strings.ContainsAny(subject, "\r\n") {
				t.Errorf("subject: got %q, want one non-empty line", subject)
			}
			for _, s := range []string{subject, body} {
				if strings.Contains(s, "{{") || strings.Contains(s, "<no value>") {
					t.Errorf("rendered text: got %q, want no template remnants", s)
				}
			}
			if strings.Contains(subject+body, "@") {
				t.Errorf("rendered text: got %q / %q, want no address (R3, R40)", subject, body)
			}
			if strings.HasPrefix(body, "Subject:") || strings.HasPrefix(body, "\n") {
				t.Errorf("body: got %q, want it to start with text", body)
			}
			if !strings.HasSuffix(body, "\n") || strings.HasSuffix(body, "\n\n") {
				t.Errorf("body: got %q, want exactly one final newline", body)
			}
			lines := strings.Split(body, "\n")
			if tt.link != "" && !slices.Contains(lines, tt.link) {
				t.Errorf("body: got %q, want the link %q on a line of its own", body, tt.link)
			}
			if tt.link == "" && strings.Contains(body, "http") {
				t.Errorf("body: got %q, want no link", body)
			}
			if n := strings.Count(body, "http"); tt.link != "" && n != 1 {
				t.Errorf("links in body: got %d, want 1", n)
			}
			for _, want := range tt.wantInBody {
				if !strings.Contains(body, want) {
					t.Errorf("body: got %q, want it to contain %q", body, want)
				}
			}
			if len(body) > 600 {
				t.Errorf("body length: got %d bytes, want a short notice (≤ 600)", len(body))
			}
		})
	}
}

func TestRenderLanguageFallback(t *testing.T) {
	d := mail.Data{OrgName: "Acme", Link: testLink}
	en, _, err := mail.Render(mail.Invitation, "en", d)
	if err != nil {
		t.Fatalf("Render en: got error %v, want nil", err)
	}
	nl, _, err := mail.Render(mail.Invitation, "nl", d)
	if err != nil {
		t.Fatalf("Render nl: got error %v, want nil", err)
	}
	if en == nl {
		t.Fatalf("subjects: got %q for both en and nl, want different languages", en)
	}
	tests := []struct {
		lang string
		want string
	}{
		{"", en},
		{"de", en},
		{"fr-FR", en},
		{"EN", en},
		{"en-GB", en},
		{"nl-BE", nl},
		{"NL", nl},
		{"nl_NL", nl},
		{"../nl", en},
	}
	for _, tt := range tests {
		got, _, err := mail.Render(mail.Invitation, tt.lang, d)
		if err != nil {
			t.Errorf("Render(%q): got error %v, want nil", tt.lang, err)
		}
		if got != tt.want {
			t.Errorf("Render(%q) subject: got %q, want %q", tt.lang, got, tt.want)
		}
	}
}

func TestRenderRefusesBadInput(t *testing.T) {
	tests := []struct {
		name string
		kind mail.Kind
		data mail.Data
	}{
		{"unknown kind", "welcome", mail.Data{OrgName: "Acme", Link: testLink}},
		{"path in kind", "../en/invitation", mail.Data{OrgName: "Acme", Link: testLink}},
		{"invitation without link", mail.Invitation, mail.Data{OrgName: "Acme"}},
		{"password reset without link", mail.PasswordReset, mail.Data{OrgName: "Acme"}},
		{"empty organisation name", mail.Invitation, mail.Data{OrgName: " ", Link: testLink}},
		{"line break in organisation name", mail.PasswordChanged, mail.Data{OrgName: "Acme\n\nClick https://evil.example"}},
		{"link with a space", mail.Invitation, mail.Data{OrgName: "Acme", Link: "https://kluis.example.org/o/a b"}},
		{"link with a line break", mail.Invitation, mail.Data{OrgName: "Acme", Link: testLink + "\nhttps://evil.example"}},
		{"relative link", mail.Invitation, mail.Data{OrgName: "Acme", Link: "/o/acme/invite#token"}},
		{"javascript link", mail.Invitation, mail.Data{OrgName: "Acme", Link: "javascript:alert(1)"}},
		{"link with credentials", mail.Invitation, mail.Data{OrgName: "Acme", Link: "https://u:p@kluis.example.org/"}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			subject, body, err := mail.Render(tt.kind, "en", tt.data)
			if err == nil {
				t.Fatalf("Render: got subject %q body %q, want an error", subject, body)
			}
			if tt.data.Link != "" && strings.Contains(err.Error(), tt.data.Link) {
				t.Errorf("error: got %q, want no link (it may carry a token)", err)
			}
		})
	}
}

// TestRenderOperatorAlert (R25, R30): the operator's alert mail says that
// something needs attention, of which kind, and where to look — in either
// language, with no link, no address and nothing but the kind; a kind that
// could carry anything else is refused.
func TestRenderOperatorAlert(t *testing.T) {
	subjects := map[string]bool{}
	for _, lang := range []string{"en", "nl"} {
		subject, body, err := mail.Render(mail.OperatorAlert, lang, mail.Data{OrgName: "kluis.example.org", Alert: "audit_chain_broken"})
		if err != nil {
			t.Fatalf("Render %s: %v", lang, err)
		}
		subjects[subject] = true
		for _, want := range []string{"audit_chain_broken", "kluis.example.org", "kluis jobs", "kluis alert resolve"} {
			if !strings.Contains(subject+body, want) {
				t.Errorf("%s: got %q / %q, want it to contain %q", lang, subject, body, want)
			}
		}
		for _, never := range []string{"http", "@", "{{", "<no value>"} {
			if strings.Contains(subject+body, never) {
				t.Errorf("%s: got %q / %q, want no %q", lang, subject, body, never)
			}
		}
	}
	if len(subjects) != 2 {
		t.Errorf("subjects: got %v, want an English and a Dutch one", subjects)
	}
	for _, bad := range []string{"", "Audit", "org:0190", "kind\nhttps://evil.example", "a@b"} {
		if _, _, err := mail.Render(mail.OperatorAlert, "en", mail.Data{OrgName: "kluis.example.org", Alert: bad}); err == nil {
			t.Errorf("alert kind %q: rendered, want an error", bad)
		}
	}
}
