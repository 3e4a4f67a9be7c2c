package privacy_test

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
)

// R34: a person files a request and follows it; it is due one calendar
// month later; the managers see every request of their organisation and
// handle it; every step is in the organisation's chain.
func TestPersonFilesRequestManagerHandlesItAudited(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "dsr")
		m := env.NewMember(t, o, mgr, "ann@dsr.example", kluis.RoleMember)
		svc := env.PrivacyRequests

		r, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestAccess})
		if err != nil {
			t.Fatal(err)
		}
		if r.Subject != m.UserID || r.Status != kluis.RequestOpen || r.Handler != "" {
			t.Errorf("filed: %+v, want the member's own, open, no handler", r)
		}
		if want := kluis.PrivacyRequestDue(r.ReceivedAt); !r.DueAt.Equal(want) || !r.ReceivedAt.Equal(env.Clock.Now().Truncate(time.Microsecond)) {
			t.Errorf("received %s due %s, want now and %s", r.ReceivedAt, r.DueAt, want)
		}

		mine, err := svc.FindPrivacyRequests(ctx, o.ID, m, false)
		if err != nil || len(mine) != 1 || mine[0].ID != r.ID || mine[0].SubjectName != "Member" {
			t.Fatalf("the member's list: %+v, %v", mine, err)
		}
		all, err := svc.FindPrivacyRequests(ctx, o.ID, mgr, false)
		if err != nil || len(all) != 1 || all[0].ID != r.ID {
			t.Fatalf("the manager's register: %+v, %v", all, err)
		}

		status, outcome := kluis.RequestDone, "Export sent through kluis on request."
		got, err := svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{Status: &status, Outcome: &outcome})
		if err != nil {
			t.Fatal(err)
		}
		if got.Status != kluis.RequestDone || got.Handler != mgr.UserID || got.HandlerName != "Boss" || got.Outcome != outcome {
			t.Errorf("handled: %+v, want done by the caller with the outcome", got)
		}
		mine, _ = svc.FindPrivacyRequests(ctx, o.ID, m, false)
		if len(mine) != 1 || mine[0].Outcome != outcome || mine[0].Status != kluis.RequestDone {
			t.Errorf("the member follows it: %+v", mine)
		}
		// The member is told in their inbox, and the mail says only that a
		// notice waits (R45).
		notices, err := env.Inbox.FindNotices(ctx, o.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		var told int
		for _, n := range notices {
			if n.Kind == kluis.NoticePrivacyRequestUpdated {
				told++
				if !strings.Contains(n.Body, "Access") || !strings.Contains(n.Body, "Done") {
					t.Errorf("the notice reads %q", n.Body)
				}
			}
		}
		if told != 1 {
			t.Errorf("%d notices to the member, want 1", told)
		}
		for _, msg := range env.Mail(t) {
			if strings.Contains(msg, "Export sent") || strings.Contains(msg, "Access") {
				t.Errorf("a mail carries the request's content:\n%s", msg)
			}
		}

		evs := env.Events(t, o.ID, mgr)
		for action, want := range map[string]int{"dsr.create": 1, "dsr.update": 1, "dsr.list": 1} {
			if n := kluistest.CountAction(evs, action); n != want {
				t.Errorf("%d %s events, want %d", n, action, want)
			}
		}
		for _, ev := range evs {
			if strings.HasPrefix(ev.Action, "dsr.") && strings.Contains(string(ev.Details), "Export sent") {
				t.Errorf("%s holds the outcome in its details: %s", ev.Action, ev.Details)
			}
			if ev.Action == "dsr.update" && (ev.Target != "dsr:"+string(r.ID) || !strings.Contains(string(ev.Details), `"done"`)) {
				t.Errorf("dsr.update: target %q details %s", ev.Target, ev.Details)
			}
		}
	})
}

// R34, R2: another organisation's request is not found; a person sees only
// their own and can change none; a manager of another organisation learns
// nothing.
func TestPrivacyRequestsStayWithTheirPersonAndOrganisation(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "one")
		other, otherMgr := env.NewOrg(t, "two")
		ann := env.NewMember(t, o, mgr, "ann@one.example", kluis.RoleMember)
		bob := env.NewMember(t, o, mgr, "bob@one.example", kluis.RoleMember)
		svc := env.PrivacyRequests
		r, err := svc.FilePrivacyRequest(ctx, o.ID, ann, kluis.PrivacyRequestInput{Type: kluis.RequestErasure})
		if err != nil {
			t.Fatal(err)
		}
		done := kluis.RequestDone

		list, err := svc.FindPrivacyRequests(ctx, o.ID, bob, false)
		if err != nil || len(list) != 0 {
			t.Errorf("another person's list: %+v, %v, want empty", list, err)
		}
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, bob, r.ID, kluis.PrivacyRequestUpdate{Status: &done})
		kluistest.WantCode(t, err, kluis.ENotFound)
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, ann, r.ID, kluis.PrivacyRequestUpdate{Status: &done})
		kluistest.WantCode(t, err, kluis.EForbidden)
		_, err = svc.FilePrivacyRequest(ctx, o.ID, bob, kluis.PrivacyRequestInput{Type: kluis.RequestAccess, Subject: ann.UserID})
		kluistest.WantCode(t, err, kluis.EForbidden)

		// The other organisation's manager, through their own organisation
		// and through this one.
		_, err = svc.UpdatePrivacyRequest(ctx, other.ID, otherMgr, r.ID, kluis.PrivacyRequestUpdate{Status: &done})
		kluistest.WantCode(t, err, kluis.ENotFound)
		list, err = svc.FindPrivacyRequests(ctx, other.ID, otherMgr, false)
		if err != nil || len(list) != 0 {
			t.Errorf("another organisation's register: %+v, %v, want empty", list, err)
		}
		_, err = svc.FindPrivacyRequests(ctx, o.ID, otherMgr, false)
		kluistest.WantCode(t, err, kluis.EUnauthenticated)
		_, err = svc.FilePrivacyRequest(ctx, other.ID, otherMgr, kluis.PrivacyRequestInput{Type: kluis.RequestAccess, Subject: ann.UserID})
		kluistest.WantCode(t, err, kluis.EInvalid)

		// A manager may record one for a person who asked by mail; a
		// handler must be a manager; refusing needs the reasons.
		byMail, err := svc.FilePrivacyRequest(ctx, o.ID, mgr, kluis.PrivacyRequestInput{Type: kluis.RequestObjection, Subject: bob.UserID})
		if err != nil || byMail.Subject != bob.UserID {
			t.Fatalf("filed for bob: %+v, %v", byMail, err)
		}
		h := bob.UserID
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, byMail.ID, kluis.PrivacyRequestUpdate{Handler: &h})
		kluistest.WantCode(t, err, kluis.EInvalid)
		refused := kluis.RequestRefused
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, byMail.ID, kluis.PrivacyRequestUpdate{Status: &refused})
		kluistest.WantCode(t, err, kluis.EInvalid)
		list, _ = svc.FindPrivacyRequests(ctx, o.ID, bob, false)
		if len(list) != 1 || list[0].Status != kluis.RequestOpen || list[0].Handler != "" {
			t.Errorf("after refused changes: %+v, want it unchanged", list)
		}
		mine, _ := svc.FindPrivacyRequests(ctx, o.ID, mgr, true)
		if len(mine) != 0 {
			t.Errorf("the manager's own requests: %+v, want none", mine)
		}
		for _, ev := range env.Events(t, o.ID, mgr) {
			if ev.Action == "dsr.update" && ev.Outcome != "denied" {
				t.Errorf("a dsr.update event %s after refusals only, want only denials", ev.Outcome)
			}
		}
	})
}

// R34, R28: what a manager writes as the outcome is sealed under the
// organisation key: no plaintext in the database; the register outlives the
// person's erasure with their pseudonymous id and the outcome still
// readable to the managers.
func TestPrivacyRequestOutcomeIsSealedAndOutlivesTheSubject(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "seal")
		m := env.NewMember(t, o, mgr, "gone@seal.example", kluis.RoleMember)
		svc := env.PrivacyRequests
		r, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestErasure})
		if err != nil {
			t.Fatal(err)
		}
		outcome, done := "Zwanenburg-7781 erased; backups roll off within 730 days.", kluis.RequestDone
		if _, err := svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{Status: &done, Outcome: &outcome}); err != nil {
			t.Fatal(err)
		}
		for _, row := range env.Query(t, `SELECT outcome FROM privacy_requests`) {
			if _, err := keys.ParseCiphertext(row[0]); bytes.Contains(row[0], []byte("Zwanenburg")) || err != nil {
				t.Errorf("outcome stored as %q, want a ciphertext", row[0])
			}
		}
		for _, row := range env.Query(t, `SELECT details FROM audit_events`) {
			if bytes.Contains(row[0], []byte("Zwanenburg")) {
				t.Errorf("the outcome is in an audit event: %s", row[0])
			}
		}
		if err := env.Users.DeleteUser(ctx, o.ID, mgr, m.UserID); err != nil {
			t.Fatal(err)
		}
		list, err := svc.FindPrivacyRequests(ctx, o.ID, mgr, false)
		if err != nil || len(list) != 1 {
			t.Fatalf("after the erasure: %+v, %v", list, err)
		}
		if got := list[0]; got.Subject != m.UserID || got.SubjectName != "" || got.Outcome != outcome {
			t.Errorf("after the erasure: %+v, want the id, no name, the outcome", got)
		}
	})
}

// R34, R45: the reminders reach the managers' inboxes a week before the
// due date, a day before and once overdue — on their day, not before, and
// each once however often the job runs; the mail says only that a notice
// waits; a handled request gets none.
func TestPrivacyRemindersFireOnTheirDayOnce(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "remind")
		m := env.NewMember(t, o, mgr, "ann@remind.example", kluis.RoleMember)
		svc := env.PrivacyRequests
		r, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestPortability})
		if err != nil {
			t.Fatal(err)
		}
		handled, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestAccess})
		if err != nil {
			t.Fatal(err)
		}
		done := kluis.RequestDone
		if _, err := svc.UpdatePrivacyRequest(ctx, o.ID, mgr, handled.ID, kluis.PrivacyRequestUpdate{Status: &done}); err != nil {
			t.Fatal(err)
		}
		env.Mail(t) // the invitations

		notices := func() []kluis.Notice {
			t.Helper()
			boss := env.SignedIn(t, o.ID, "boss@remind.example")
			list, err := env.Inbox.FindNotices(ctx, o.ID, boss)
			if err != nil {
				t.Fatal(err)
			}
			var out []kluis.Notice
			for _, n := range list {
				if n.Kind == kluis.NoticePrivacyRequestDue {
					out = append(out, n)
				}
			}
			return out
		}
		run := func(wantRequests int) {
			t.Helper()
			for i := range 2 { // a second run (another node, a retry) adds nothing
				got, err := env.PrivacyRequests.RemindPrivacyRequests(ctx)
				if err != nil {
					t.Fatal(err)
				}
				want := wantRequests
				if i == 1 {
					want = 0
				}
				if got.Requests != want {
					t.Fatalf("run %d at %s: %d requests reminded, want %d", i+1, env.Clock.Now(), got.Requests, want)
				}
			}
		}
		to := func(at time.Time) { env.Clock.Advance(at.Sub(env.Clock.Now())) }

		to(r.DueAt.Add(-7*24*time.Hour - time.Second))
		run(0)
		to(r.DueAt.Add(-7 * 24 * time.Hour))
		run(1)
		if n := notices(); len(n) != 1 || !strings.Contains(n[0].Title, "week") {
			t.Fatalf("a week before: %+v, want one notice", n)
		}
		to(r.DueAt.Add(-24*time.Hour - time.Second))
		run(0)
		to(r.DueAt.Add(-24 * time.Hour))
		run(1)
		to(r.DueAt)
		run(0)
		to(r.DueAt.Add(time.Second))
		run(1)
		env.Clock.Advance(30 * 24 * time.Hour)
		run(0)
		n := notices()
		if len(n) != 3 || !strings.Contains(n[0].Title, "overdue") || !strings.Contains(n[1].Title, "tomorrow") {
			t.Fatalf("notices: %+v, want three: a week, a day, overdue", n)
		}
		for _, msg := range env.Mail(t) {
			if strings.Contains(msg, "portability") || strings.Contains(msg, "Member") || strings.Contains(msg, "ann@") {
				t.Errorf("a reminder's mail says more than that a notice waits:\n%s", msg)
			}
		}
		if got := kluistest.CountAction(env.Events(t, o.ID, mgr), "dsr.remind"); got != 3 {
			t.Errorf("%d dsr.remind events, want 3", got)
		}
	})
}

// R34: a request filed late in the cycle (the job was down, or the due
// date is near) gets only the latest reminder that applies, once.
func TestPrivacyRemindersSkipStagesAlreadyPassed(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "late")
		r, err := env.PrivacyRequests.FilePrivacyRequest(ctx, o.ID, mgr, kluis.PrivacyRequestInput{Type: kluis.RequestRectification})
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(r.DueAt.Sub(env.Clock.Now()) + time.Hour)
		got, err := env.PrivacyRequests.RemindPrivacyRequests(ctx)
		if err != nil || got.Requests != 1 || got.Notices != 1 {
			t.Fatalf("overdue at the first run: %+v, %v, want one request, one manager", got, err)
		}
		if got, _ := env.PrivacyRequests.RemindPrivacyRequests(ctx); got.Requests != 0 {
			t.Errorf("second run: %+v, want nothing", got)
		}
	})
}

// R34: the privacy page's settings default to the Dutch supervisory
// authority; managers change them, recorded; people read but cannot.
func TestPrivacySettingsDefaultToTheDutchAuthority(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "set")
		m := env.NewMember(t, o, mgr, "ann@set.example", kluis.RoleMember)
		svc := env.PrivacyRequests
		s, err := svc.FindPrivacySettings(ctx, o.ID, m)
		if err != nil || s.AuthorityName != "Autoriteit Persoonsgegevens" || s.AuthorityURL != "https://autoriteitpersoonsgegevens.nl" || s.Contact != "" {
			t.Fatalf("defaults: %+v, %v", s, err)
		}
		in := kluis.PrivacySettings{Contact: " privacy@set.example ", AuthorityName: "Datatilsynet", AuthorityURL: "https://www.datatilsynet.dk"}
		_, err = svc.UpdatePrivacySettings(ctx, o.ID, m, in)
		kluistest.WantCode(t, err, kluis.EForbidden)
		bad := in
		bad.AuthorityURL = "http://www.datatilsynet.dk"
		_, err = svc.UpdatePrivacySettings(ctx, o.ID, mgr, bad)
		kluistest.WantCode(t, err, kluis.EInvalid)
		for range 2 {
			if _, err := svc.UpdatePrivacySettings(ctx, o.ID, mgr, in); err != nil {
				t.Fatal(err)
			}
		}
		s, err = svc.FindPrivacySettings(ctx, o.ID, m)
		if err != nil || s.Contact != "privacy@set.example" || s.AuthorityName != "Datatilsynet" {
			t.Errorf("after the change: %+v, %v", s, err)
		}
		evs := env.Events(t, o.ID, mgr)
		if n := kluistest.CountAction(evs, "privacy.update"); n != 3 { // two changes and the refusal
			t.Errorf("%d privacy.update events, want 3", n)
		}
	})
}

// R28, R34: rotating the organisation's keys re-encrypts the sealed
// outcomes too (the register is in keywork's sealedTables): afterwards no
// outcome uses a retired key version, and each still reads.
func TestPrivacyRequestOutcomeFollowsKeyRotation(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "rotdsr")
		r, err := env.PrivacyRequests.FilePrivacyRequest(ctx, o.ID, mgr, kluis.PrivacyRequestInput{Type: kluis.RequestAccess})
		if err != nil {
			t.Fatal(err)
		}
		outcome := "Answered by letter."
		if _, err := env.PrivacyRequests.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{Outcome: &outcome}); err != nil {
			t.Fatal(err)
		}
		before := env.Query(t, `SELECT outcome FROM privacy_requests`)[0][0]
		if _, err := env.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, "rotdsr"); err != nil {
			t.Fatal(err)
		}
		for range 2 {
			if _, err := env.KeyWork.Reencrypt(ctx, nil); err != nil {
				t.Fatal(err)
			}
			env.Clock.Advance(env.KeyStore.CacheTTL())
		}
		uses, err := env.KeyWork.RetiredUses(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range uses {
			if u.Org == o.ID && u.Data != 0 {
				t.Errorf("after the re-encryption %d values under retired versions, want 0", u.Data)
			}
		}
		after := env.Query(t, `SELECT outcome FROM privacy_requests`)[0][0]
		if bytes.Equal(before, after) {
			t.Errorf("the outcome's ciphertext did not change with the rotation")
		}
		mgr = env.SignedIn(t, o.ID, "boss@rotdsr.example")
		list, err := env.PrivacyRequests.FindPrivacyRequests(ctx, o.ID, mgr, false)
		if err != nil || len(list) != 1 || list[0].Outcome != outcome {
			t.Errorf("after the rotation: %+v, %v", list, err)
		}
	})
}

// R34, GDPR Art. 12(3): a manager extends a request's due date by at most
// two further months, only within the first month, with the reasons; the
// reminders start over before the new date and the person is told.
func TestPrivacyRequestExtensionMovesTheDueDateWithReasons(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := env.NewOrg(t, "ext")
		m := env.NewMember(t, o, mgr, "ann@ext.example", kluis.RoleMember)
		svc := env.PrivacyRequests
		r, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestAccess})
		if err != nil {
			t.Fatal(err)
		}
		one, two, three := 1, 2, 3
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &one})
		kluistest.WantCode(t, err, kluis.EInvalid) // no reasons
		reasons := "Many requests this month; the archive must be searched by hand."
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &three, Outcome: &reasons})
		kluistest.WantCode(t, err, kluis.EInvalid)
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, m, r.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &two, Outcome: &reasons})
		kluistest.WantCode(t, err, kluis.EForbidden)
		got, err := svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &two, Outcome: &reasons})
		if err != nil {
			t.Fatal(err)
		}
		if want := kluis.PrivacyRequestDueIn(r.ReceivedAt, 3); got.ExtendedMonths != 2 || !got.DueAt.Equal(want) {
			t.Fatalf("extended: by %d to %s, want 2 to %s", got.ExtendedMonths, got.DueAt, want)
		}
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, r.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &one})
		kluistest.WantCode(t, err, kluis.EInvalid) // never shorter

		// No reminder at the first due date's week: the new one counts.
		env.Clock.Advance(r.DueAt.Add(-7 * 24 * time.Hour).Sub(env.Clock.Now()))
		if n, err := svc.RemindPrivacyRequests(ctx); err != nil || n.Requests != 0 {
			t.Errorf("a week before the first due date: %+v, %v, want no reminder", n, err)
		}
		env.Clock.Advance(got.DueAt.Add(-7 * 24 * time.Hour).Sub(env.Clock.Now()))
		if n, err := svc.RemindPrivacyRequests(ctx); err != nil || n.Requests != 1 {
			t.Errorf("a week before the extended due date: %+v, %v, want one reminder", n, err)
		}

		// After the first month, no extension any more.
		late, err := svc.FilePrivacyRequest(ctx, o.ID, m, kluis.PrivacyRequestInput{Type: kluis.RequestErasure})
		if err != nil {
			t.Fatal(err)
		}
		env.Clock.Advance(late.DueAt.Sub(env.Clock.Now()) + time.Second)
		_, err = svc.UpdatePrivacyRequest(ctx, o.ID, mgr, late.ID, kluis.PrivacyRequestUpdate{ExtendMonths: &one, Outcome: &reasons})
		kluistest.WantCode(t, err, kluis.EInvalid)

		m = env.SignedIn(t, o.ID, "ann@ext.example")
		notices, err := env.Inbox.FindNotices(ctx, o.ID, m)
		if err != nil {
			t.Fatal(err)
		}
		if len(notices) != 1 || notices[0].Kind != kluis.NoticePrivacyRequestUpdated {
			t.Errorf("the member's notices: %+v, want one about the extension", notices)
		}
		mgr = env.SignedIn(t, o.ID, "boss@ext.example")
		for _, ev := range env.Events(t, o.ID, mgr) {
			if ev.Action == "dsr.update" && ev.Outcome == "success" && !strings.Contains(string(ev.Details), `"extended_months":2`) {
				t.Errorf("dsr.update details %s, want the extension", ev.Details)
			}
		}
	})
}
