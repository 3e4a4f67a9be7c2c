package httpserver_test

import (
	"encoding/json"
	"fmt"
	"net/url"
	"strings"
	"testing"

	"github.com/kluis/kluis/internal/kluistest"
)

// restrictedRoute is one route that would change a restricted person's data.
type restrictedRoute struct {
	name         string
	method, path string
	token        string
	body         any
}

// TestRestrictionFreezesThePersonsData (R34, issue 15 acceptance): while
// processing is restricted, every route that would change the person's
// profile, role, status or contact data answers 409 processing_restricted
// and changes nothing, and no mail about them is queued — not the mail of
// routes that were refused, not a notice to a restricted manager, not the
// invitation of a restricted invitee. Their own password change and sign-in
// still work, and so does the reset link they ask for (the documented
// exception). Restricting and lifting are recorded; after lifting the same
// change works.
func TestRestrictionFreezesThePersonsData(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			mgr2 := a.addUser(t, o, "manager")
			other := a.addUser(t, o, "member")
			invited := a.invite(t, o, "member")
			inviteToken := a.inviteToken(t)
			_, op := a.operator(t)
			a.mail(t)

			// The person restricts themselves; a manager restricts the
			// invitee and the second manager.
			wantStatus(t, "restrict me", a.call(t, "POST", orgPath(o.Slug, "/me/restriction"), mem.Token, nil), 204)
			wantStatus(t, "restrict again", a.call(t, "POST", orgPath(o.Slug, "/me/restriction"), mem.Token, nil), 204)
			wantStatus(t, "restrict the invitee", a.call(t, "POST", orgPath(o.Slug, "/users/"+invited.ID+"/restriction"), o.Manager.Token, nil), 204)
			wantStatus(t, "restrict a manager", a.call(t, "POST", orgPath(o.Slug, "/users/"+mgr2.ID+"/restriction"), o.Manager.Token, nil), 204)
			// A member cannot restrict someone else.
			wantError(t, "a member restricts another", a.call(t, "POST", orgPath(o.Slug, "/users/"+other.ID+"/restriction"), mem.Token, nil), 403, "forbidden")
			if me := a.me(t, o.Slug, mem.Token); me.RestrictedAt == nil {
				t.Fatalf("GET /me after restricting: restricted_at is null")
			}
			before := a.me(t, o.Slug, mem.Token)

			routes := []restrictedRoute{
				{"own name", "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]string{"name": "Changed " + mem.Name}},
				{"own phone", "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]string{"phone": "+31 20 123 4567"}},
				{"own maintenance mail choice", "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]bool{"maintenance_emails": true}},
				{"own e-mail address", "POST", orgPath(o.Slug, "/me/email"), mem.Token, map[string]string{"email": uniqueEmail("moved")}},
				{"confirm an e-mail change", "POST", orgPath(o.Slug, "/me/email/confirm"), mem.Token, map[string]string{"token": strings.Repeat("A", 43)}},
				{"manager renames", "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]string{"name": "Renamed"}},
				{"manager changes the role", "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]string{"role": "manager"}},
				{"manager disables", "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]bool{"disabled": true}},
				{"manager demotes a restricted manager", "PATCH", orgPath(o.Slug, "/users/"+mgr2.ID), o.Manager.Token, map[string]string{"role": "member"}},
				{"manager deletes", "DELETE", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, nil},
				{"manager resends an invitation", "POST", orgPath(o.Slug, "/users/"+invited.ID+"/invitation"), o.Manager.Token, nil},
				{"manager revokes an invitation", "DELETE", orgPath(o.Slug, "/users/"+invited.ID+"/invitation"), o.Manager.Token, nil},
				{"invitee accepts", "POST", orgPath(o.Slug, "/invitations/accept"), "", map[string]string{"token": inviteToken, "name": invited.Name, "password": invited.Password}},
				{"operator erases on request", "POST", "/api/v1/operator/orgs/" + o.Slug + "/erasures", op.Token, map[string]string{"email": mem.Email, "reason": "asked by the organisation"}},
			}
			for _, rt := range routes {
				wantError(t, rt.name, a.call(t, rt.method, rt.path, rt.token, rt.body), 409, "processing_restricted")
			}

			// Nothing changed.
			after := a.me(t, o.Slug, mem.Token)
			if after.Name != before.Name || after.Email != before.Email || after.Phone != before.Phone ||
				after.Role != before.Role || after.Status != before.Status || after.MaintenanceEmails != before.MaintenanceEmails {
				t.Errorf("after the refused changes the person reads %+v, want %+v", after, before)
			}
			r := a.call(t, "GET", orgPath(o.Slug, "/users/"+invited.ID), o.Manager.Token, nil)
			wantStatus(t, "read the invitee", r, 200)
			if u := decodeStrict[userObject](t, r); u.Status != "invited" || u.RestrictedAt == nil {
				t.Errorf("invitee %+v, want still invited and restricted", u)
			}

			// Something that mails every manager: a new manager is made.
			// The restricted manager gets the notice in the inbox, no mail.
			wantStatus(t, "promote another", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+other.ID), o.Manager.Token, map[string]string{"role": "manager"}), 200)
			// A new invitee restricted before their mail went out gets none.
			late := a.invite(t, o, "member")
			wantStatus(t, "restrict before the mail", a.call(t, "POST", orgPath(o.Slug, "/users/"+late.ID+"/restriction"), o.Manager.Token, nil), 204)
			// An announcement does not reach a restricted person even when
			// they opted in before (set here in the database: the route is
			// frozen).
			a.env.MustExec(t, fmt.Sprintf(`UPDATE users SET maintenance_emails = TRUE WHERE id IN ('%s', '%s')`, mem.ID, mgr2.ID))
			wantStatus(t, "announce", a.call(t, "POST", "/api/v1/operator/announcements", op.Token, map[string]string{"title": "Maintenance", "body": "Sunday 02:00"}), 200)

			restricted := []string{mem.ID, mgr2.ID, invited.ID, late.ID}
			for _, id := range restricted {
				if rows := a.env.Query(t, fmt.Sprintf(`SELECT kind FROM mail_queue WHERE user_id = '%s'`, id)); len(rows) != 0 {
					t.Errorf("mail queued for restricted person %s: %d rows", id, len(rows))
				}
			}
			var notices int
			for _, row := range a.env.Query(t, fmt.Sprintf(`SELECT kind FROM notices WHERE user_id = '%s'`, mgr2.ID)) {
				if string(row[0]) == "manager_granted" {
					notices++
				}
			}
			if notices != 1 {
				t.Errorf("the restricted manager has %d manager_granted notices, want 1 (the inbox is no mail)", notices)
			}
			msgs := a.mail(t)
			for _, acc := range []account{mem, mgr2, invited, late} {
				for _, m := range msgs {
					if strings.Contains(m, "To: <"+acc.Email+">") {
						t.Errorf("a mail went to a restricted person:\n%s", m)
					}
				}
			}

			// Their own password change and sign-in still work, and the
			// reset link they ask for is mailed (needed to sign in).
			newPW := uniquePassword()
			wantStatus(t, "own password change", a.call(t, "POST", orgPath(o.Slug, "/me/password"), mem.Token, map[string]string{"current_password": mem.Password, "new_password": newPW}), 204)
			mem.Token = a.login(t, o.Slug, mem.Email, newPW).Token
			wantStatus(t, "ask for a reset link", a.call(t, "POST", orgPath(o.Slug, "/password-reset"), "", map[string]string{"email": mem.Email}), 202)
			// Two mails, both for their own sign-in: "your password
			// changed" (no link) and the reset link.
			var links []string
			var toMem int
			for _, m := range a.mail(t) {
				if strings.Contains(m, "To: <"+mem.Email+">") {
					toMem++
					if strings.Contains(m, "/reset#") {
						links = append(links, kluistest.Link(t, m))
					}
				}
			}
			if toMem != 2 || len(links) != 1 {
				t.Errorf("%d mails to the restricted person with %d reset links, want the password notice and one reset link", toMem, len(links))
			}

			// Recorded, and lifted by the person: the change then works.
			events := a.auditLog(t, o.Slug, o.Manager.Token)
			counts := map[string]int{}
			for _, e := range events {
				if e.Action == "user.restrict" {
					counts[e.Target]++
				}
			}
			for _, id := range restricted {
				if counts["user:"+id] != 1 {
					t.Errorf("user.restrict events for %s: %d, want 1 (restricting again records nothing)", id, counts["user:"+id])
				}
			}
			wantStatus(t, "lift", a.call(t, "DELETE", orgPath(o.Slug, "/me/restriction"), mem.Token, nil), 204)
			r = a.call(t, "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]string{"name": "Changed " + mem.Name})
			wantStatus(t, "change after lifting", r, 200)
			if u := decodeStrict[userObject](t, r); u.Name != "Changed "+mem.Name || u.RestrictedAt != nil {
				t.Errorf("after lifting: %+v, want the new name and no restriction", u)
			}
			wantStatus(t, "manager lifts", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+mgr2.ID+"/restriction"), o.Manager.Token, nil), 204)
			lifted := 0
			for _, e := range a.auditLog(t, o.Slug, o.Manager.Token) {
				if e.Action == "user.lift_restriction" && (e.Target == "user:"+mem.ID && e.Actor == "user:"+mem.ID || e.Target == "user:"+mgr2.ID && e.Actor == "user:"+o.Manager.ID) {
					lifted++
				}
			}
			if lifted != 2 {
				t.Errorf("%d user.lift_restriction events, want 2 (by the person and by the manager)", lifted)
			}
		})
	}
}

// TestRestrictedPersonLeftOutOfTheOrganisationsExport (R34): the
// organisation's export lists a restricted person by id, without their
// name, address or phone, and the audit log in it does not open the values
// of events about them; after lifting, the export shows them again.
func TestRestrictedPersonLeftOutOfTheOrganisationsExport(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			phone := "+31 6 9876 5432"
			wantStatus(t, "set phone", a.call(t, "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]string{"phone": phone}), 200)
			wantStatus(t, "restrict", a.call(t, "POST", orgPath(o.Slug, "/users/"+mem.ID+"/restriction"), o.Manager.Token, nil), 204)

			export := func() map[string][]byte {
				t.Helper()
				r := a.call(t, "GET", orgPath(o.Slug, "/export"), o.Manager.Token, nil)
				wantStatus(t, "export", r, 200)
				_, files := unzip(t, r.body)
				return files
			}
			files := export()
			var users struct {
				Users []map[string]any `json:"users"`
			}
			if err := json.Unmarshal(files["users.json"], &users); err != nil {
				t.Fatal(err)
			}
			found := false
			for _, u := range users.Users {
				if u["id"] == mem.ID {
					found = true
					if u["restricted"] != true || u["name"] != "[restricted]" || u["email"] != "[restricted]" || u["phone"] != nil {
						t.Errorf("restricted person in users.json: %v, want id only with [restricted] values", u)
					}
				}
			}
			if !found {
				t.Errorf("the restricted person's id is missing from users.json")
			}
			all := string(files["users.json"]) + string(files["audit/events.jsonl"])
			mustNotContain(t, "the export", all, mem.Name, mem.Email, "+31698765432")
			if !strings.Contains(all, o.Manager.Email) {
				t.Errorf("the export lacks the unrestricted manager's address")
			}

			wantStatus(t, "lift", a.call(t, "DELETE", orgPath(o.Slug, "/users/"+mem.ID+"/restriction"), o.Manager.Token, nil), 204)
			files = export()
			if !strings.Contains(string(files["users.json"]), mem.Email) {
				t.Errorf("after lifting the export lacks the person's address")
			}
		})
	}
}

// TestRectificationRecordsOldAndNewValuesSealed (R34 rectification, R24,
// R29): a person corrects their own name and phone, a manager the name of
// one of their people; each user.update event holds the old and the new
// values, hidden in the audit list, opened for the manager in the audit
// export, and stored only as ciphertext in the database.
func TestRectificationRecordsOldAndNewValuesSealed(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			oldName, selfName, mgrName := mem.Name, uniqueName("Self"), uniqueName("Fixed")
			phone := "+31612345678"
			wantStatus(t, "own correction", a.call(t, "PATCH", orgPath(o.Slug, "/me"), mem.Token, map[string]string{"name": selfName, "phone": phone}), 200)
			wantStatus(t, "manager's correction", a.call(t, "PATCH", orgPath(o.Slug, "/users/"+mem.ID), o.Manager.Token, map[string]string{"name": mgrName}), 200)

			var listed []auditEvent
			for _, e := range a.auditLog(t, o.Slug, o.Manager.Token) {
				if e.Action == "user.update" && e.Target == "user:"+mem.ID {
					listed = append(listed, e)
				}
			}
			if len(listed) != 2 {
				t.Fatalf("%d user.update events about the person, want 2", len(listed))
			}
			for _, e := range listed {
				mustNotContain(t, "the audit list", string(e.Details), oldName, selfName, mgrName, phone)
				if !strings.Contains(string(e.Details), `"name_old":"[hidden]"`) || !strings.Contains(string(e.Details), `"name_new":"[hidden]"`) {
					t.Errorf("listed details %s, want name_old and name_new hidden", e.Details)
				}
			}

			r := a.call(t, "GET", orgPath(o.Slug, "/audit/export"), o.Manager.Token, nil)
			wantStatus(t, "audit export", r, 200)
			type values struct {
				Fields   []string `json:"fields"`
				NameOld  string   `json:"name_old"`
				NameNew  string   `json:"name_new"`
				PhoneOld *string  `json:"phone_old"`
				PhoneNew *string  `json:"phone_new"`
			}
			var got []values
			for _, line := range strings.Split(strings.TrimSpace(string(r.body)), "\n") {
				var e auditEvent
				if err := json.Unmarshal([]byte(line), &e); err != nil {
					t.Fatal(err)
				}
				if e.Action == "user.update" && e.Target == "user:"+mem.ID {
					var v values
					if err := json.Unmarshal(e.Details, &v); err != nil {
						t.Fatal(err)
					}
					got = append(got, v)
				}
			}
			if len(got) != 2 {
				t.Fatalf("%d exported user.update events, want 2", len(got))
			}
			self, mgr := got[0], got[1]
			if self.NameOld != oldName || self.NameNew != selfName || self.PhoneOld == nil || *self.PhoneOld != "" || self.PhoneNew == nil || *self.PhoneNew != phone {
				t.Errorf("own correction exported as %+v, want %q → %q and phone \"\" → %q", self, oldName, selfName, phone)
			}
			if mgr.NameOld != selfName || mgr.NameNew != mgrName || mgr.PhoneOld != nil {
				t.Errorf("manager's correction exported as %+v, want %q → %q and no phone", mgr, selfName, mgrName)
			}

			stored := a.env.Query(t, fmt.Sprintf(`SELECT details FROM audit_events WHERE action = 'user.update' AND target = 'user:%s'`, mem.ID))
			if len(stored) != 2 {
				t.Fatalf("%d stored rows, want 2", len(stored))
			}
			for _, row := range stored {
				mustNotContain(t, "the stored audit row", string(row[0]), oldName, selfName, mgrName, phone)
				if !strings.Contains(string(row[0]), `"sealed"`) {
					t.Errorf("stored details %s, want sealed values", row[0])
				}
			}
		})
	}
}

// TestRestrictionOnThePages (R34, docs/UI.md): My account shows whether
// processing is restricted with a button to restrict or lift it; the
// person's page shows a manager the same, with the buttons; a restricted
// person's profile form is refused with the page's error; a member cannot
// restrict someone else from the pages either.
func TestRestrictionOnThePages(t *testing.T) {
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			a := newTestAPI(t, engine)
			o := a.newOrg(t)
			mem := a.addUser(t, o, "member")
			mgr := signInPage(t, a, o.Slug, o.Manager)
			member := signInPage(t, a, o.Slug, mem)
			account, person := "/o/"+o.Slug+"/account", "/o/"+o.Slug+"/users/"+mem.ID

			p := member.get(t, account)
			wantPage(t, "my account", p, 200, "")
			for _, want := range []string{`id="restriction-state"`, `action="/o/` + o.Slug + `/account/restriction"`} {
				if !strings.Contains(p.body, want) {
					t.Errorf("My account lacks %s", want)
				}
			}
			wantPage(t, "restrict me", member.post(t, account+"/restriction", url.Values{}), 303, account)
			p = member.get(t, account)
			if !strings.Contains(p.body, `action="/o/`+o.Slug+`/account/restriction/lift"`) || !strings.Contains(p.body, "restricted since") && !strings.Contains(p.body, "beperkt sinds") {
				t.Errorf("My account of a restricted person lacks the state and the lift button:\n%s", excerpt(p.body))
			}
			p = member.post(t, account+"/profile", url.Values{"name": {"Other Name"}, "phone": {""}})
			if p.status != 409 {
				t.Errorf("profile form while restricted: %d, want 409", p.status)
			}

			if p := mgr.get(t, "/o/"+o.Slug+"/users"); !strings.Contains(p.body, "tag restricted") {
				t.Errorf("the people list does not mark the restricted person")
			}
			p = mgr.get(t, person)
			wantPage(t, "the person's page", p, 200, "")
			if !strings.Contains(p.body, `action="`+person+`/restriction/lift"`) {
				t.Errorf("the person's page lacks the lift button for a restricted person:\n%s", excerpt(p.body))
			}
			wantPage(t, "manager lifts", mgr.post(t, person+"/restriction/lift", url.Values{}), 303, person)
			p = mgr.get(t, person)
			if !strings.Contains(p.body, `action="`+person+`/restriction"`) {
				t.Errorf("the person's page lacks the restrict button:\n%s", excerpt(p.body))
			}
			p = member.post(t, "/o/"+o.Slug+"/users/"+o.Manager.ID+"/restriction", url.Values{})
			if p.status != 403 {
				t.Errorf("a member restricting the manager from the pages: %d, want 403", p.status)
			}
		})
	}
}
