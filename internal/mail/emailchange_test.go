package mail_test

import (
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/mail"
)

// TestEmailChangeNotices (R45): the link goes only to the new address; the
// notices to the old one name the new address masked and carry no link.
func TestEmailChangeNotices(t *testing.T) {
	const link = "https://kluis.example.org/o/acme/confirm-email#Zm9vYmFyYmF6cXV4cXV1eGNvcmdlZ3JhdWx0Z2FycGx5"
	for _, lang := range []string{"en", "nl"} {
		_, body, err := mail.Render(mail.EmailChangeConfirm, lang, mail.Data{OrgName: "Acme Zorg", Link: link})
		if err != nil || !strings.Contains(body, "\n"+link+"\n") || !strings.Contains(body, "24") || strings.Contains(body, "@") {
			t.Errorf("%s confirmation: %v\n%s", lang, err, body)
		}
		for _, k := range []mail.Kind{mail.EmailChangeRequested, mail.EmailChanged} {
			subject, body, err := mail.Render(k, lang, mail.Data{OrgName: "Acme Zorg", Masked: "j***@example.org"})
			if err != nil || !strings.Contains(body, "j***@example.org") || strings.Contains(body, "http") || subject == "" {
				t.Errorf("%s %s: %v\n%s", lang, k, err, body)
			}
		}
	}
	for _, c := range []struct {
		name string
		kind mail.Kind
		d    mail.Data
	}{
		{"confirmation without a link", mail.EmailChangeConfirm, mail.Data{OrgName: "Acme"}},
		{"confirmation naming an address", mail.EmailChangeConfirm, mail.Data{OrgName: "Acme", Link: link, Masked: "j***@example.org"}},
		{"notice with the address in clear", mail.EmailChangeRequested, mail.Data{OrgName: "Acme", Masked: "jan@example.org"}},
		{"notice without an address", mail.EmailChanged, mail.Data{OrgName: "Acme"}},
		{"notice with a link", mail.EmailChangeRequested, mail.Data{OrgName: "Acme", Masked: "j***@example.org", Link: link}},
		{"masked address with a line break", mail.EmailChanged, mail.Data{OrgName: "Acme", Masked: "j***@example.org\nBcc: x"}},
	} {
		if _, _, err := mail.Render(c.kind, "en", c.d); err == nil {
			t.Errorf("%s: rendered, want an error", c.name)
		}
	}
}
