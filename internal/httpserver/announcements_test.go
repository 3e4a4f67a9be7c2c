package httpserver_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// TestAnnouncementsReachOnlyPeopleWhoOptedIn (R3, R40, R45, issue 15): a
// new invitee — a first manager too — starts opted out of maintenance mail;
// an operator admin's announcement reaches, across organisations, only the
// active people who opted in (an earlier choice stays honoured) and are not
// restricted: a notice in their inbox with the text, and a mail through the
// outbox that only says a notice waits. Opted-out and restricted people
// get neither. The send is recorded in the platform chain with the count,
// the text sealed.
func TestAnnouncementsReachOnlyPeopleWhoOptedIn(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			in := a.addUser(t, o, "member")
			out := a.addUser(t, o, "member")
			restricted := a.addUser(t, o, "member")
			o2 := a.newOrg(t)
			earlier := a.addUser(t, o2, "member")
			_, op := a.operator(t)

			// R40: everyone invited starts opted out.
			for _, acc := range []struct {
				slug string
				account
			}{{o.Slug, o.Manager}, {o.Slug, in}, {o.Slug, out}, {o.Slug, restricted}, {o2.Slug, o2.Manager}, {o2.Slug, earlier}} {
				if u := a.me(t, acc.slug, acc.Token); u.MaintenanceEmails {
					t.Errorf("%s starts with maintenance_emails true, want false (privacy-friendly default)", acc.Email)
				}
			}
			// One opts in on their account; another opts in and is then
			// restricted; a person of another organisation has the choice
			// from before the default changed (set as a migration would
			// have left it).
			for _, acc := range []account{in, restricted} {
				wantStatus(t, "opt in", a.call(t, "PATCH", orgPath(o.Slug, "/me"), acc.Token, map[string]bool{"maintenance_emails": true}), 200)
			}
			wantStatus(t, "restrict", a.call(t, "POST", orgPath(o.Slug, "/me/restriction"), restricted.Token, nil), 204)
			a.env.MustExec(t, fmt.Sprintf(`UPDATE users SET maintenance_emails = TRUE WHERE id = '%s'`, earlier.ID))
			a.mail(t)

			title, body := "Maintenance "+kluistest.Name("window"), "Sunday 02:00-04:00 UTC "+kluistest.Name("body")
			wantInvalid(t, "no title", a.call(t, "POST", "/api/v1/operator/announcements", op.Token, map[string]string{"body": body}), "title")
			r := a.call(t, "POST", "/api/v1/operator/announcements", op.Token, map[string]string{"title": title, "body": body})
			wantStatus(t, "announce", r, 200)
			if got := decodeStrict[struct {
				Recipients int `json:"recipients"`
			}](t, r).Recipients; got != 2 {
				t.Errorf("recipients %d, want 2 (the one who opted in and the earlier choice)", got)
			}

			msgs := a.mail(t)
			for _, acc := range []account{in, earlier} {
				m := mailTo(t, msgs, acc.Email)
				mustNotContain(t, "the announcement mail", m, title, body, acc.Name)
				if !strings.Contains(m, "/inbox") {
					t.Errorf("announcement mail:\n%s\nwant a link to the inbox", m)
				}
			}
			for _, acc := range []account{o.Manager, out, restricted, o2.Manager} {
				for _, m := range msgs {
					if strings.Contains(m, "To: <"+acc.Email+">") {
						t.Errorf("a mail went to %s, who did not opt in or is restricted:\n%s", acc.Email, m)
					}
				}
			}
			if len(msgs) != 2 {
				t.Errorf("%d mails, want 2", len(msgs))
			}

			inbox := func(slug, token string) noticesJSON {
				t.Helper()
				r := a.call(t, "GET", orgPath(slug, "/inbox"), token, nil)
				wantStatus(t, "inbox", r, 200)
				return decodeStrict[noticesJSON](t, r)
			}
			for _, c := range []struct {
				slug string
				acc  account
				want int
			}{{o.Slug, in, 1}, {o2.Slug, earlier, 1}, {o.Slug, out, 0}, {o.Slug, restricted, 0}, {o.Slug, o.Manager, 0}} {
				got := 0
				for _, n := range inbox(c.slug, c.acc.Token).Notices {
					if n.Kind == "maintenance" {
						got++
						if n.Title != title || n.Body != body {
							t.Errorf("notice %q / %q, want the announcement's text", n.Title, n.Body)
						}
					}
				}
				if got != c.want {
					t.Errorf("%s has %d maintenance notices, want %d", c.acc.Email, got, c.want)
				}
			}

			rows := a.env.Query(t, `SELECT details FROM audit_events WHERE chain = 'platform' AND action = 'announcement.send'`)
			if len(rows) != 1 {
				t.Fatalf("%d announcement.send events in the platform chain, want 1", len(rows))
			}
			d := string(rows[0][0])
			if !strings.Contains(d, `"recipients":2`) || !strings.Contains(d, `"sealed"`) {
				t.Errorf("announcement.send details %s, want the count and the text sealed", d)
			}
			mustNotContain(t, "the stored event", d, title, body)
		})
	}
}
