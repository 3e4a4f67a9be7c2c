package sqlstore_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
)

// Acceptance tests of encryption at rest (issue 3, DESIGN §4; R15, R28, R29):
// personal values never reach the disk or a dump in the clear, a ciphertext
// moved elsewhere decrypts to nothing, and deletion destroys keys so that
// copies taken before it are unreadable.

// encClient is the client address of the requests in these tests
// (TEST-NET-1, RFC 5737).
const encClient = "192.0.2.7"

// encUser is a signed-in user of an organisation.
type encUser struct {
	actor kluis.Actor
	id    kluis.UserID
	email string // normalised
	name  string
	token string // session token
}

// encOrg creates an organisation whose first manager has accepted (with
// name) and signed in. The invitation link is taken from CreateOrg: no mail
// is delivered.
func encOrg(t *testing.T, ctx context.Context, env *kluistest.Env, slug, email, name string) (kluis.Org, encUser) {
	t.Helper()
	o, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{Slug: slug, Name: "Org " + slug, ManagerEmail: email})
	if err != nil {
		t.Fatalf("CreateOrg %s: %v", slug, err)
	}
	if _, err := env.Users.AcceptInvitation(ctx, o.ID, originOf(ctx), kluistest.Token(link), name, kluistest.Password); err != nil {
		t.Fatalf("AcceptInvitation %s: %v", slug, err)
	}
	return o, encLogin(t, ctx, env, o.ID, email, name)
}

func encLogin(t *testing.T, ctx context.Context, env *kluistest.Env, org kluis.OrgID, email, name string) encUser {
	t.Helper()
	sess, _, err := kluistest.LoginFrom(ctx, env.SignIn, org, originOf(ctx), email, kluistest.Password)
	if err != nil {
		t.Fatalf("Login %s: %v", email, err)
	}
	actor, u, err := kluistest.AuthenticateFrom(ctx, env.SignIn, originOf(ctx), sess.Token)
	if err != nil {
		t.Fatalf("Authenticate %s: %v", email, err)
	}
	if u.Email != kluis.NormalizeEmail(email) || u.Name != name {
		t.Fatalf("signed in as %q <%s>, want %q <%s>", u.Name, u.Email, name, kluis.NormalizeEmail(email))
	}
	return encUser{actor: actor, id: actor.UserID, email: u.Email, name: name, token: sess.Token}
}

// encMember invites a member, accepts through the mailed link (delivering
// every queued mail) and signs in.
func encMember(t *testing.T, ctx context.Context, env *kluistest.Env, o kluis.Org, manager encUser, email, name string) encUser {
	t.Helper()
	role := kluis.RoleMember
	u, err := env.Users.InviteUser(ctx, o.ID, manager.actor, kluis.UserInput{Email: &email, Role: &role})
	if err != nil {
		t.Fatalf("InviteUser %s: %v", email, err)
	}
	if _, err := env.Users.AcceptInvitation(ctx, o.ID, originOf(ctx), env.LastToken(t), name, kluistest.Password); err != nil {
		t.Fatalf("AcceptInvitation %s: %v", email, err)
	}
	m := encLogin(t, ctx, env, o.ID, email, name)
	if m.id != u.ID {
		t.Fatalf("signed in as %s, want %s", m.id, u.ID)
	}
	return m
}

// ---------------------------------------------------------------------------
// Scanning raw bytes for markers.

// The scanner itself finds a marker in every form it promises, wherever it
// is aligned: a scan that finds nothing means something.
func TestMarkerScanFindsEveryForm(t *testing.T) {
	const marker = "MarkerSelfTest7q"
	junk := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	for pre := 0; pre < 3; pre++ {
		for _, tt := range []struct {
			name string
			data []byte
		}{
			{"text", []byte(marker)},
			{"lower text", []byte(strings.ToLower(marker))},
			{"hex", []byte(hex.EncodeToString([]byte(marker)))},
			{"upper hex", []byte(strings.ToUpper(hex.EncodeToString([]byte(marker))))},
			{"base64", []byte(base64.StdEncoding.EncodeToString(append(append(junk(pre), marker...), junk(5)...)))},
			{"base64url", []byte(base64.URLEncoding.EncodeToString(append(append(junk(pre), marker...), junk(4)...)))},
			{"raw base64 at the end", []byte(base64.RawStdEncoding.EncodeToString(append(junk(pre+3), marker...)))},
		} {
			data := append(append(junk(100), tt.data...), junk(100)...)
			if got := kluistest.FindMarkers(map[string][]byte{"f": data}, marker); len(got) == 0 {
				t.Errorf("%s after %d bytes: not found", tt.name, pre)
			}
		}
	}
	if got := kluistest.FindMarkers(map[string][]byte{"f": junk(1 << 16)}, marker); len(got) != 0 {
		t.Errorf("found %v in random bytes", got)
	}
}

// R28 acceptance: users written with marker values in name, e-mail and phone
// (and a marker password, R15, and a client address); then the raw bytes of
// the SQLite data database, its WAL and shared memory, the key store file
// and its WAL, and on PostgreSQL a pg_dump of the data database and of the
// key store, are scanned for the markers as text, hex and base64: none
// appears anywhere. The organisation's name, stored in the clear, is found:
// the scan sees the data.
func TestMarkersAppearNowhereAtRest(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		from := kluis.Origin{Client: netip.MustParseAddr(encClient)}
		const (
			orgName        = "Control7q Clear Org"
			managerEmailIn = "MarkerMail7q@Example.ORG"
			managerEmail   = "markermail7q@example.org"
			inviteName     = "MarkerInviteName7q"
			acceptName     = "MarkerAcceptName7q"
			updatedName    = "MarkerUpdatedName7q"
			phoneIn        = "+31 6 9753 1864"
			phone          = "+31697531864"
			password       = "MarkerPass7q-Secret9"
			guestEmailIn   = "MarkerGuest7q@Example.org"
			guestEmail     = "markerguest7q@example.org"
			guestName      = "MarkerGuestName7q"
		)
		o, link, err := env.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{
			Slug: "control7q", Name: orgName, ManagerEmail: managerEmailIn, ManagerName: inviteName,
		})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := env.Users.AcceptInvitation(ctx, o.ID, from, kluistest.Token(link), acceptName, password); err != nil {
			t.Fatal(err)
		}
		// Login by e-mail goes through the blind index of the normalised address.
		sess, _, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, from, managerEmailIn, password)
		if err != nil {
			t.Fatalf("Login with the address as typed: %v", err)
		}
		manager, _, err := kluistest.AuthenticateFrom(ctx, env.SignIn, from, sess.Token)
		if err != nil {
			t.Fatal(err)
		}
		name, ph := updatedName, phoneIn
		me, err := env.Users.UpdateMe(ctx, o.ID, manager, kluis.UserInput{Name: &name, Phone: &ph})
		if err != nil {
			t.Fatal(err)
		}
		if me.Name != updatedName || me.Phone != phone || me.Email != managerEmail {
			t.Fatalf("UpdateMe returned %+v", me)
		}
		email, gname := guestEmailIn, guestName
		guest, err := env.Users.InviteUser(ctx, o.ID, manager, kluis.UserInput{Email: &email, Name: &gname})
		if err != nil {
			t.Fatal(err)
		}
		// Everything is there, and readable through the store.
		if u, err := env.Users.FindUserByID(ctx, o.ID, manager, guest.ID); err != nil || u.Email != guestEmail || u.Name != guestName {
			t.Fatalf("FindUserByID(guest) = %+v, %v", u, err)
		}
		if n, err := env.MailQueue.QueuedMail(ctx); err != nil || n != 1 {
			t.Fatalf("queued mail: %d, %v; want the guest's invitation waiting", n, err)
		}
		// R29: the list masks contact details.
		users, err := env.Users.FindUsers(ctx, o.ID, manager)
		if err != nil {
			t.Fatal(err)
		}
		for _, u := range users {
			if strings.Contains(u.Email, "markermail7q") || strings.Contains(u.Email, "markerguest7q") || strings.Contains(u.Phone, "975318") {
				t.Errorf("FindUsers shows %q / %q unmasked", u.Email, u.Phone)
			}
		}

		sources := env.StoredBytes(t)
		markers := []string{
			managerEmail, managerEmailIn, "markermail7q", inviteName, acceptName, updatedName,
			phone, "31697531864", password, guestEmail, "markerguest7q", guestName, encClient,
		}
		if found := kluistest.FindMarkers(sources, markers...); len(found) > 0 {
			t.Errorf("markers found at rest:\n  %s", strings.Join(found, "\n  "))
		}
		// Control: what is stored in the clear is seen by the scan.
		if found := kluistest.FindMarkers(sources, orgName); len(found) == 0 {
			t.Errorf("the organisation's name, stored in the clear, was not found: the scan sees nothing")
		}
		names := make([]string, 0, len(sources))
		for n := range sources {
			names = append(names, n)
		}
		sort.Strings(names)
		t.Logf("scanned %s", strings.Join(names, ", "))
	})
}

// ---------------------------------------------------------------------------
// Raw access, as someone with database access has it.

// rawOne returns the single value a query selects.
func rawOne(t *testing.T, env *kluistest.Env, query string) []byte {
	t.Helper()
	rows := env.Query(t, query)
	if len(rows) != 1 || len(rows[0]) != 1 {
		t.Fatalf("query %q: got %d rows, want one value", query, len(rows))
	}
	return rows[0][0]
}

// wantUnreadableUser checks that every store call that reads the user
// answers with an error (internal, wrapping sqlstore.ErrUnreadable) and
// never with a value, and that no answer holds any of the leaked values.
func wantUnreadableUser(t *testing.T, env *kluistest.Env, o kluis.Org, manager, victim encUser, leaked ...string) {
	t.Helper()
	ctx := context.Background()
	check := func(call string, err error, got any) {
		t.Helper()
		if err == nil {
			t.Errorf("%s: got %+v and no error, want an error", call, got)
			return
		}
		if !errors.Is(err, sqlstore.ErrUnreadable) {
			t.Errorf("%s: got error %v, want one wrapping ErrUnreadable", call, err)
		}
		if code := kluis.ErrorCode(err); code != kluis.EInternal {
			t.Errorf("%s: error code %q, want %q (a neutral internal error)", call, code, kluis.EInternal)
		}
		text := fmt.Sprintf("%v %+v", err, got)
		for _, l := range leaked {
			if strings.Contains(text, l) {
				t.Errorf("%s: the answer holds %q: %s", call, l, text)
			}
		}
	}
	u, err := env.Users.FindUserByID(ctx, o.ID, manager.actor, victim.id)
	check("FindUserByID", err, u)
	if u != (kluis.User{}) {
		t.Errorf("FindUserByID returned a user with the error: %+v", u)
	}
	a, u, err := kluistest.AuthenticateFrom(ctx, env.SignIn, originOf(ctx), victim.token)
	check("Authenticate", err, u)
	if u != (kluis.User{}) || a != (kluis.Actor{}) {
		t.Errorf("Authenticate returned %+v / %+v with the error", a, u)
	}
	// (That FindUsers returns no partial list with the error is
	// TestFindUsersGivesNoPartialListWithAnError.)
	users, err := env.Users.FindUsers(ctx, o.ID, manager.actor)
	check("FindUsers", err, nil)
	for _, u := range users {
		if u.ID == victim.id {
			t.Errorf("FindUsers listed the unreadable user as %+v", u)
		}
	}
	sess, u, err := kluistest.LoginFrom(ctx, env.SignIn, o.ID, originOf(ctx), victim.email, kluistest.Password)
	if err == nil || sess.Token != "" {
		t.Errorf("Login: got session %q and error %v, want no session and an error", sess.Token, err)
	}
	for _, l := range leaked {
		if strings.Contains(fmt.Sprintf("%v %+v", err, u), l) {
			t.Errorf("Login: the answer holds %q", l)
		}
	}
}

// wantReadable checks that a user reads as itself.
func wantReadable(t *testing.T, env *kluistest.Env, o kluis.Org, manager, u encUser) {
	t.Helper()
	got, err := env.Users.FindUserByID(context.Background(), o.ID, manager.actor, u.id)
	if err != nil || got.Email != u.email || got.Name != u.name {
		t.Errorf("FindUserByID(%s) = %q <%s>, %v; want %q <%s>", u.id, got.Name, got.Email, err, u.name, u.email)
	}
}

// R28 acceptance: a ciphertext moved by direct SQL to another row, another
// column or another organisation fails to decrypt; every call that reads it
// answers with an error, never with someone else's data. The same for a
// queued message and an audit detail.
func TestMovedCiphertextIsAnErrorNeverAnotherValue(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()

		t.Run("name into another user's row", func(t *testing.T) {
			o, mgr := encOrg(t, ctx, env, "mv-row", "boss@mv-row.example", "Boss Row")
			src := encMember(t, ctx, env, o, mgr, "alice@mv-row.example", "Alice Source7q")
			dst := encMember(t, ctx, env, o, mgr, "bob@mv-row.example", "Bob Target7q")
			if n := env.MustExec(t, fmt.Sprintf(`UPDATE users SET name = (SELECT s.name FROM users s WHERE s.id = '%s') WHERE id = '%s'`, src.id, dst.id)); n != 1 {
				t.Fatalf("moved %d rows", n)
			}
			wantUnreadableUser(t, env, o, mgr, dst, src.name, src.email)
			// The source row is untouched; removing the bad row restores the list.
			wantReadable(t, env, o, mgr, src)
			env.MustExec(t, fmt.Sprintf(`DELETE FROM users WHERE id = '%s'`, dst.id))
			if _, err := env.Users.FindUsers(ctx, o.ID, mgr.actor); err != nil {
				t.Errorf("FindUsers after the bad row is gone: %v", err)
			}
		})

		t.Run("e-mail into the name column of the same row", func(t *testing.T) {
			o, mgr := encOrg(t, ctx, env, "mv-col", "boss@mv-col.example", "Boss Col")
			victim := encMember(t, ctx, env, o, mgr, "carol7q@mv-col.example", "Carol Column")
			if n := env.MustExec(t, fmt.Sprintf(`UPDATE users SET name = email WHERE id = '%s'`, victim.id)); n != 1 {
				t.Fatalf("moved %d rows", n)
			}
			wantUnreadableUser(t, env, o, mgr, victim, victim.email)
		})

		t.Run("phone into the e-mail column of the same row", func(t *testing.T) {
			o, mgr := encOrg(t, ctx, env, "mv-col2", "boss@mv-col2.example", "Boss Col")
			victim := encMember(t, ctx, env, o, mgr, "dave@mv-col2.example", "Dave Column")
			phone := "+31611122233"
			if _, err := env.Users.UpdateMe(ctx, o.ID, victim.actor, kluis.UserInput{Phone: &phone}); err != nil {
				t.Fatal(err)
			}
			if n := env.MustExec(t, fmt.Sprintf(`UPDATE users SET email = phone WHERE id = '%s'`, victim.id)); n != 1 {
				t.Fatalf("moved %d rows", n)
			}
			wantUnreadableUser(t, env, o, mgr, victim, phone)
		})

		t.Run("a user's fields into a user of another organisation", func(t *testing.T) {
			a, mgrA := encOrg(t, ctx, env, "mv-org-a", "boss@mv-org-a.example", "Boss A")
			b, mgrB := encOrg(t, ctx, env, "mv-org-b", "boss@mv-org-b.example", "Boss B")
			victim := encMember(t, ctx, env, a, mgrA, "erin@mv-org-a.example", "Erin Victim")
			other := encMember(t, ctx, env, b, mgrB, "frank7q@mv-org-b.example", "Frank Other7q")
			phone := "+31644455566"
			if _, err := env.Users.UpdateMe(ctx, b.ID, other.actor, kluis.UserInput{Phone: &phone}); err != nil {
				t.Fatal(err)
			}
			for _, col := range []string{"name", "email", "phone"} {
				if n := env.MustExec(t, fmt.Sprintf(`UPDATE users SET %s = (SELECT s.%s FROM users s WHERE s.id = '%s') WHERE id = '%s'`,
					col, col, other.id, victim.id)); n != 1 {
					t.Fatalf("moved %d rows", n)
				}
			}
			wantUnreadableUser(t, env, a, mgrA, victim, other.name, other.email, phone)
			wantReadable(t, env, b, mgrB, other)
			// Organisation B is not affected.
			if _, err := env.Users.FindUsers(ctx, b.ID, mgrB.actor); err != nil {
				t.Errorf("FindUsers of the other organisation: %v", err)
			}
		})

		t.Run("a queued message into another message's row", func(t *testing.T) {
			o, mgr := encOrg(t, ctx, env, "mv-mail", "boss@mv-mail.example", "Boss Mail")
			env.Mail(t) // nothing else queued
			var ids []kluis.UserID
			for _, e := range []string{"gina7q@mv-mail.example", "hank@mv-mail.example"} {
				u, err := env.Users.InviteUser(ctx, o.ID, mgr.actor, kluis.UserInput{Email: &e})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, u.ID)
			}
			if n := env.MustExec(t, fmt.Sprintf(`UPDATE mail_queue SET envelope = (SELECT s.envelope FROM mail_queue s WHERE s.user_id = '%s') WHERE user_id = '%s'`, ids[0], ids[1])); n != 1 {
				t.Fatalf("moved %d rows", n)
			}
			msgs := env.Mail(t)
			gina := 0
			for _, m := range msgs {
				if strings.Contains(m, "gina7q@mv-mail.example") {
					gina++
				}
			}
			// Gina's own message goes out once; the copy in Hank's row is
			// unreadable there and is dropped, not sent a second time.
			if len(msgs) != 1 || gina != 1 {
				t.Errorf("delivered %d messages, %d of them to gina; want exactly gina's own", len(msgs), gina)
			}
			if n, err := env.MailQueue.QueuedMail(ctx); err != nil || n != 0 {
				t.Errorf("queued mail after delivery: %d, %v; want the unreadable message dropped", n, err)
			}
		})

		t.Run("an audit detail into another event", func(t *testing.T) {
			o, mgr := encOrg(t, ctx, env, "mv-audit", "boss@mv-audit.example", "Boss Audit")
			var ids []kluis.UserID
			for _, e := range []string{"ivy7q@mv-audit.example", "jack@mv-audit.example"} {
				u, err := env.Users.InviteUser(ctx, o.ID, mgr.actor, kluis.UserInput{Email: &e})
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, u.ID)
			}
			if n := env.MustExec(t, fmt.Sprintf(`UPDATE audit_events SET details = (SELECT s.details FROM audit_events s WHERE s.action = 'user.invite' AND s.target = 'user:%s')
				WHERE action = 'user.invite' AND target = 'user:%s'`, ids[0], ids[1])); n != 1 {
				t.Fatalf("moved %d rows", n)
			}
			var emitted []kluis.AuditEvent
			err := env.Audit.ExportAudit(ctx, o.ID, mgr.actor, kluis.AuditFilter{}, func(e kluis.AuditEvent) error {
				emitted = append(emitted, e)
				return nil
			})
			if err == nil || !errors.Is(err, sqlstore.ErrUnreadable) {
				t.Errorf("ExportAudit: got %v, want an error wrapping ErrUnreadable", err)
			}
			for _, e := range emitted {
				if e.Target == "user:"+string(ids[1]) || (e.Target != "user:"+string(ids[0]) && bytes.Contains(e.Details, []byte("ivy7q"))) {
					t.Errorf("ExportAudit emitted %s %s with details %s", e.Action, e.Target, e.Details)
				}
			}
			// The chain notices the move too.
			if r, err := env.Audit.VerifyOrgAudit(ctx, o.ID, mgr.actor); err != nil || r.OK {
				t.Errorf("VerifyOrgAudit after the move: %+v, %v; want broken", r, err)
			}
		})
	})
}

// A list that cannot be read whole is an error and nothing else: FindUsers
// must not hand out the users it decrypted before the unreadable one with
// its error (a caller that logs or shows the value would disclose them).
func TestFindUsersGivesNoPartialListWithAnError(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		o, mgr := encOrg(t, ctx, env, "partial", "boss@partial.example", "Boss Partial")
		env.Clock.Advance(time.Second) // list order is by creation: the broken row comes last
		victim := encMember(t, ctx, env, o, mgr, "kim@partial.example", "Kim Partial")
		env.MustExec(t, fmt.Sprintf(`UPDATE users SET name = email WHERE id = '%s'`, victim.id))
		users, err := env.Users.FindUsers(ctx, o.ID, mgr.actor)
		if err == nil || users != nil {
			t.Errorf("FindUsers = %d users %+v, error %v; want no users and an error", len(users), users, err)
		}
	})
}

// ---------------------------------------------------------------------------
// Crypto-shredding.

// sealed is a ciphertext as it was stored, with the field it belongs to.
type sealed struct {
	field keys.FieldRef
	c     []byte
}

// sealedUserFields returns the e-mail, name and phone ciphertexts of a
// user's row.
func sealedUserFields(t *testing.T, env *kluistest.Env, org kluis.OrgID, id kluis.UserID) []sealed {
	t.Helper()
	rows := env.Query(t, fmt.Sprintf(`SELECT email, name, phone FROM users WHERE id = '%s'`, id))
	if len(rows) != 1 {
		t.Fatalf("user %s: %d rows", id, len(rows))
	}
	var out []sealed
	for i, col := range []string{"email", "name", "phone"} {
		out = append(out, sealed{keys.FieldRef{Org: string(org), Table: "users", Column: col, Row: string(id)}, rows[0][i]})
	}
	return out
}

// sealedMail returns the ciphertexts of the messages queued for a user.
func sealedMail(t *testing.T, env *kluistest.Env, org kluis.OrgID, user kluis.UserID) []sealed {
	t.Helper()
	var out []sealed
	for _, r := range env.Query(t, fmt.Sprintf(`SELECT id, envelope FROM mail_queue WHERE user_id = '%s'`, user)) {
		out = append(out, sealed{keys.FieldRef{Org: string(org), Table: "mail_queue", Column: "envelope", Row: string(r[0])}, r[1]})
	}
	if len(out) == 0 {
		t.Fatalf("no mail queued for %s", user)
	}
	return out
}

// keyStoreFiles returns the SQLite key store file and its WAL, by base name.
func keyStoreFiles(t *testing.T, env *kluistest.Env) map[string][]byte {
	t.Helper()
	files := map[string][]byte{}
	for _, f := range []string{env.KeysDSN, env.KeysDSN + "-wal"} {
		b, err := os.ReadFile(f)
		if err != nil && !errors.Is(err, fs.ErrNotExist) {
			t.Fatal(err)
		}
		files[filepath.Base(f)] = b
	}
	return files
}

// openKeyStore opens the env's key store as another process would: the same
// database and root key, nothing cached.
func openKeyStore(t *testing.T, env *kluistest.Env) *keys.Store {
	t.Helper()
	ks, err := keys.OpenStore(context.Background(), env.KeysDSN, env.Root, nil, keys.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ks.Close() })
	return ks
}

// R28 acceptance (crypto-shredding): after a user is deleted, and after a
// whole organisation is deleted, ciphertexts copied before the deletion —
// the users' fields and their queued mail — opened with the current key store
// and root key give ErrKeyDestroyed, in this process and in a fresh one; what
// was not deleted still opens. On SQLite a full copy of the data database
// taken before the deletion is opened as a store: the deleted user and the
// deleted organisation's users cannot be read, login to the deleted
// organisation finds no one, its queued mail is not sent, the others read
// as before. The audit chains still verify, and the key destructions are in
// them.
func TestDeletionShredsCopiesTakenBefore(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := context.Background()
		alpha, mgrA := encOrg(t, ctx, env, "shred-a", "boss@shred-a.example", "Boss Alpha")
		victim := encMember(t, ctx, env, alpha, mgrA, "victim7q@shred-a.example", "Victim Name7q")
		survivor := encMember(t, ctx, env, alpha, mgrA, "survivor@shred-a.example", "Survivor Name")
		vPhone := "+31655566677"
		if _, err := env.Users.UpdateMe(ctx, alpha.ID, victim.actor, kluis.UserInput{Phone: &vPhone}); err != nil {
			t.Fatal(err)
		}
		beta, mgrB := encOrg(t, ctx, env, "shred-b", "boss@shred-b.example", "Boss Beta")
		betaMember := encMember(t, ctx, env, beta, mgrB, "member7q@shred-b.example", "Beta Member7q")
		gamma, mgrG := encOrg(t, ctx, env, "shred-c", "boss@shred-c.example", "Boss Gamma")
		// Invited and not accepted: their invitation mail stays queued.
		invite := func(o kluis.Org, mgr encUser, email string) kluis.User {
			u, err := env.Users.InviteUser(ctx, o.ID, mgr.actor, kluis.UserInput{Email: &email})
			if err != nil {
				t.Fatal(err)
			}
			return u
		}
		pending := invite(alpha, mgrA, "pending7q@shred-a.example")
		betaPending := invite(beta, mgrB, "pending7q@shred-b.example")
		keep := invite(alpha, mgrA, "keep@shred-a.example")

		// The copy taken before the deletion.
		var gone, kept []sealed
		gone = append(gone, sealedUserFields(t, env, alpha.ID, victim.id)...)
		gone = append(gone, sealedUserFields(t, env, alpha.ID, pending.ID)...)
		gone = append(gone, sealedMail(t, env, alpha.ID, pending.ID)...)
		gone = append(gone, sealedUserFields(t, env, beta.ID, mgrB.id)...)
		gone = append(gone, sealedUserFields(t, env, beta.ID, betaMember.id)...)
		gone = append(gone, sealedUserFields(t, env, beta.ID, betaPending.ID)...)
		gone = append(gone, sealedMail(t, env, beta.ID, betaPending.ID)...)
		kept = append(kept, sealedUserFields(t, env, alpha.ID, survivor.id)...)
		kept = append(kept, sealedUserFields(t, env, alpha.ID, mgrA.id)...)
		kept = append(kept, sealedUserFields(t, env, gamma.ID, mgrG.id)...)
		kept = append(kept, sealedMail(t, env, alpha.ID, keep.ID)...)
		// The wrapped keys as the key store held them (SQLite: scanned for below).
		var wrapped [][]byte
		copyDir := ""
		if env.Engine == sqlstore.SQLite {
			for _, q := range []string{
				fmt.Sprintf(`SELECT wrapped FROM keys WHERE kind = 'user' AND owner_id = '%s'`, victim.id),
				fmt.Sprintf(`SELECT wrapped FROM keys WHERE org_id = '%s' AND wrapped IS NOT NULL`, beta.ID),
			} {
				for _, r := range kluistest.QueryRows(t, "sqlite", "file:"+env.KeysDSN+"?_busy_timeout=10000", q) {
					wrapped = append(wrapped, r[0])
				}
			}
			if len(wrapped) < 5 { // the victim's key; beta's organisation, index and three user keys
				t.Fatalf("found %d wrapped keys to watch, want at least 5", len(wrapped))
			}
			// Control: before the deletion the scan below finds them.
			files := keyStoreFiles(t, env)
			for i, w := range wrapped {
				if !bytes.Contains(files[filepath.Base(env.KeysDSN)], w) && !bytes.Contains(files[filepath.Base(env.KeysDSN)+"-wal"], w) {
					t.Fatalf("wrapped key %d is not in the key store's files before the deletion: the scan would prove nothing", i)
				}
			}
			copyDir = t.TempDir()
			env.MustExec(t, "VACUUM INTO '"+filepath.Join(copyDir, "kluis.db")+"'")
		}

		for _, id := range []kluis.UserID{victim.id, pending.ID} {
			if err := env.Users.DeleteUser(ctx, alpha.ID, mgrA.actor, id); err != nil {
				t.Fatalf("DeleteUser: %v", err)
			}
		}
		if err := env.Orgs.DeleteOrg(ctx, kluis.CLIActor, "shred-b"); err != nil {
			t.Fatalf("DeleteOrg: %v", err)
		}
		if n, err := env.Core.Shred(ctx); err != nil || n != 0 {
			t.Fatalf("Shred: %d pending, %v; want every key destroyed", n, err)
		}

		// SQLite: the destroyed keys' wrapped bytes are gone from the key
		// store file and its WAL, not just marked (secure_delete).
		if env.Engine == sqlstore.SQLite {
			files := keyStoreFiles(t, env)
			for i, w := range wrapped {
				for name, b := range files {
					if bytes.Contains(b, w) || len(w) >= 64 && (bytes.Contains(b, w[:32]) || bytes.Contains(b, w[len(w)-32:])) {
						t.Errorf("%s still holds the wrapped bytes of destroyed key %d", name, i)
					}
				}
			}
		}

		fresh := openKeyStore(t, env)
		for name, ks := range map[string]*keys.Store{"this process": env.KeyStore, "a fresh key store": fresh} {
			for _, s := range gone {
				if p, err := ks.Open(ctx, s.field, s.c); !errors.Is(err, keys.ErrKeyDestroyed) {
					t.Errorf("%s: Open %s.%s of %s copied before the deletion: got %q, %v; want ErrKeyDestroyed",
						name, s.field.Table, s.field.Column, s.field.Row, p, err)
				}
			}
			for _, s := range kept {
				if _, err := ks.Open(ctx, s.field, s.c); err != nil {
					t.Errorf("%s: Open %s.%s of %s, not deleted: %v", name, s.field.Table, s.field.Column, s.field.Row, err)
				}
			}
		}
		if p, err := env.KeyStore.Open(ctx, kept[0].field, kept[0].c); err != nil || string(p) != survivor.email {
			t.Errorf("the survivor's e-mail opens as %q, %v; want %q", p, err, survivor.email)
		}

		// The live store: gone is gone, the rest unchanged.
		if _, err := env.Users.FindUserByID(ctx, alpha.ID, mgrA.actor, victim.id); kluis.ErrorCode(err) != kluis.ENotFound {
			t.Errorf("FindUserByID(deleted user): %v, want not_found", err)
		}
		if _, _, err := kluistest.AuthenticateFrom(ctx, env.SignIn, originOf(ctx), victim.token); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Errorf("Authenticate(deleted user's session): %v, want unauthenticated", err)
		}
		wantReadable(t, env, alpha, mgrA, survivor)
		wantReadable(t, env, gamma, mgrG, mgrG)

		// The audit chains still verify, the deleted organisation's included,
		// and the key destructions are recorded (R28: a log of key use).
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		chains := map[string]bool{}
		for _, r := range results {
			chains[r.Chain] = true
			if !r.OK {
				t.Errorf("chain %s: %+v, want intact", r.Chain, r)
			}
		}
		for _, c := range []string{audit.PlatformChain, sqlstore.OrgChain(alpha.ID), sqlstore.OrgChain(beta.ID), sqlstore.OrgChain(gamma.ID)} {
			if !chains[c] {
				t.Errorf("VerifyChains did not check %s", c)
			}
		}
		destroyed := map[string]int{}
		for _, e := range encExport(t, env, alpha, mgrA) {
			if e.Action == "key.destroyed" {
				destroyed[e.Target]++
				if e.Actor != mgrA.actor.AuditName() {
					t.Errorf("key.destroyed recorded as %q, want the deleting manager %q", e.Actor, mgrA.actor.AuditName())
				}
			}
		}
		if len(destroyed) != 2 {
			t.Errorf("alpha's chain records %d destroyed keys (%v), want the two deleted users'", len(destroyed), destroyed)
		}
		var orgKinds []string
		for _, r := range env.Query(t, `SELECT details FROM audit_events WHERE chain = 'platform' AND action = 'key.destroyed'`) {
			var d struct{ Kind, Org string }
			if err := json.Unmarshal(r[0], &d); err != nil {
				t.Fatal(err)
			}
			if d.Org == string(beta.ID) {
				orgKinds = append(orgKinds, d.Kind)
			}
		}
		sort.Strings(orgKinds)
		if strings.Join(orgKinds, ",") != "index,org" {
			t.Errorf("the platform chain records the destruction of beta's keys %v, want [index org]", orgKinds)
		}

		if copyDir == "" {
			return
		}
		// SQLite: the copy of the data database, opened with the current
		// key store and root key.
		cp := openCopy(t, env, copyDir)
		if _, err := cp.Users.FindUserByID(ctx, alpha.ID, mgrA.actor, victim.id); !errors.Is(err, keys.ErrKeyDestroyed) {
			t.Errorf("copy: FindUserByID(deleted user): %v, want ErrKeyDestroyed", err)
		}
		if u, err := cp.Users.FindUserByID(ctx, alpha.ID, mgrA.actor, survivor.id); err != nil || u.Name != survivor.name || u.Email != survivor.email {
			t.Errorf("copy: FindUserByID(survivor) = %+v, %v", u, err)
		}
		if u, err := cp.Users.FindUserByID(ctx, gamma.ID, mgrG.actor, mgrG.id); err != nil || u.Email != mgrG.email {
			t.Errorf("copy: FindUserByID(gamma's manager) = %+v, %v", u, err)
		}
		for _, id := range []kluis.UserID{mgrB.id, betaMember.id, betaPending.ID} {
			if u, err := cp.Users.FindUserByID(ctx, beta.ID, mgrB.actor, id); !errors.Is(err, keys.ErrKeyDestroyed) {
				t.Errorf("copy: FindUserByID(user of the deleted organisation) = %+v, %v; want ErrKeyDestroyed", u, err)
			}
		}
		if users, err := cp.Users.FindUsers(ctx, beta.ID, mgrB.actor); err == nil {
			t.Errorf("copy: FindUsers(deleted organisation) = %+v, want an error", users)
		}
		if _, _, err := kluistest.Login(ctx, cp.SignIn, beta.ID, betaMember.email, kluistest.Password); kluis.ErrorCode(err) != kluis.EUnauthenticated {
			t.Errorf("copy: Login to the deleted organisation: %v, want unauthenticated (its blind index key is gone)", err)
		}
		if _, _, err := kluistest.Login(ctx, cp.SignIn, alpha.ID, victim.email, kluistest.Password); err == nil {
			t.Errorf("copy: the deleted user logs in")
		}
		// The audit details of the copy: the deleted user's address is erased,
		// the survivor's is there.
		invites := map[string]string{}
		for _, e := range copyExport(t, cp, alpha, mgrA) {
			if e.Action == "user.invite" {
				var d struct{ Email string }
				json.Unmarshal(e.Details, &d)
				invites[e.Target] = d.Email
			}
		}
		if got := invites["user:"+string(victim.id)]; got != sqlstore.Erased {
			t.Errorf("copy: the deleted user's invitation shows e-mail %q, want %q", got, sqlstore.Erased)
		}
		if got := invites["user:"+string(survivor.id)]; got != survivor.email {
			t.Errorf("copy: the survivor's invitation shows e-mail %q, want %q", got, survivor.email)
		}
		// The queued mail of the copy: the deleted users' messages cannot be
		// sent; the kept one can.
		due, err := cp.MailQueue.ClaimDue(ctx, time.Now(), 100, time.Minute)
		if err != nil {
			t.Fatal(err)
		}
		if len(due) != 1 || len(due[0].To) != 1 || due[0].To[0] != "keep@shred-a.example" {
			var to [][]string
			for _, q := range due {
				to = append(to, q.To)
			}
			t.Errorf("copy: mail due to %v, want only keep@shred-a.example's", to)
		}
	})
}

// openCopy opens a copied SQLite data database as a store with the env's
// key store.
func openCopy(t *testing.T, env *kluistest.Env, dir string) *areas.Areas {
	t.Helper()
	ctx := context.Background()
	db, err := sqlstore.Open(ctx, dir, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	if err := db.CheckMigrated(ctx); err != nil {
		t.Fatal(err)
	}
	w, err := audit.OpenWitness(filepath.Join(dir, "audit", "witness.log"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { w.Close() })
	h, err := password.NewHasher(kluistest.FastArgon2, 0)
	if err != nil {
		t.Fatal(err)
	}
	core, err := sqlstore.New(db, sqlstore.Options{Keys: env.KeyStore})
	if err != nil {
		t.Fatal(err)
	}
	return areas.New(core, areas.Config{Hasher: h, Signer: env.Signer, Witness: w})
}

func encExport(t *testing.T, env *kluistest.Env, o kluis.Org, mgr encUser) []kluis.AuditEvent {
	t.Helper()
	return copyExport(t, env.Areas, o, mgr)
}

func copyExport(t *testing.T, st *areas.Areas, o kluis.Org, mgr encUser) []kluis.AuditEvent {
	t.Helper()
	var out []kluis.AuditEvent
	if err := st.Audit.ExportAudit(context.Background(), o.ID, mgr.actor, kluis.AuditFilter{}, func(e kluis.AuditEvent) error {
		out = append(out, e)
		return nil
	}); err != nil {
		t.Fatalf("ExportAudit: %v", err)
	}
	return out
}

// R28, R29: the e-mail address in a user.invite event is sealed under the
// invitee's key: the export shows it until the user is deleted, and
// "[erased]" after; lists never show it. The client address of a request is
// recorded sealed under the organisation key: the export shows it, lists
// do not, and it is nowhere in the stored bytes. The deleted invitee's
// queued mail is gone with them.
func TestErasedUserInAuditAndClientAddress(t *testing.T) {
	kluistest.ForEngines(t, func(t *testing.T, env *kluistest.Env) {
		ctx := withClient(context.Background(), netip.MustParseAddr(encClient))
		o, mgr := encOrg(t, ctx, env, "erase", "boss@erase.example", "Boss Erase")
		env.Mail(t)
		const guestEmail = "erased7q@erase.example"
		email := guestEmail
		guest, err := env.Users.InviteUser(ctx, o.ID, mgr.actor, kluis.UserInput{Email: &email})
		if err != nil {
			t.Fatal(err)
		}
		inviteOf := func(evs []kluis.AuditEvent) (kluis.AuditEvent, map[string]any) {
			t.Helper()
			for _, e := range evs {
				if e.Action == "user.invite" && e.Target == "user:"+string(guest.ID) {
					var d map[string]any
					if err := json.Unmarshal(e.Details, &d); err != nil {
						t.Fatalf("details %s: %v", e.Details, err)
					}
					return e, d
				}
			}
			t.Fatalf("no user.invite event for the guest")
			return kluis.AuditEvent{}, nil
		}

		e, d := inviteOf(encExport(t, env, o, mgr))
		if d["email"] != guestEmail || d["role"] != "member" {
			t.Errorf("export before the deletion: details %v, want the guest's address and role", d)
		}
		if e.Client != encClient {
			t.Errorf("export: client %q, want %q", e.Client, encClient)
		}
		listed, _, err := env.Audit.FindAuditEvents(ctx, o.ID, mgr.actor, kluis.AuditFilter{Limit: kluis.MaxAuditPage})
		if err != nil {
			t.Fatal(err)
		}
		e, d = inviteOf(listed)
		if d["email"] != kluis.Hidden || e.Client != "" {
			t.Errorf("list: email %v and client %q, want %q and none (R29)", d["email"], e.Client, kluis.Hidden)
		}
		queued, err := env.MailQueue.QueuedMail(ctx)
		if err != nil || queued != 1 {
			t.Fatalf("queued mail: %d, %v; want the guest's invitation", queued, err)
		}

		if err := env.Users.DeleteUser(ctx, o.ID, mgr.actor, guest.ID); err != nil {
			t.Fatal(err)
		}
		if n, err := env.MailQueue.QueuedMail(ctx); err != nil || n != 0 {
			t.Errorf("queued mail after the deletion: %d, %v; want none", n, err)
		}
		for _, m := range env.Mail(t) {
			if strings.Contains(m, guestEmail) {
				t.Errorf("mail to the deleted user was sent")
			}
		}
		evs := encExport(t, env, o, mgr)
		e, d = inviteOf(evs)
		if d["email"] != sqlstore.Erased || d["role"] != "member" {
			t.Errorf("export after the deletion: details %v, want email %q", d, sqlstore.Erased)
		}
		if e.Client != encClient {
			t.Errorf("export after the deletion: client %q, want %q (the organisation key lives)", e.Client, encClient)
		}
		for _, e := range evs {
			if bytes.Contains(e.Details, []byte("erased7q")) {
				t.Errorf("export after the deletion: %s %s holds the address: %s", e.Action, e.Target, e.Details)
			}
			if e.Action == "user.delete" && e.Client != encClient {
				t.Errorf("user.delete: client %q, want %q", e.Client, encClient)
			}
		}
		results, err := env.Audit.VerifyChains(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, r := range results {
			if !r.OK {
				t.Errorf("chain %s: %+v, want intact", r.Chain, r)
			}
		}

		if found := kluistest.FindMarkers(env.StoredBytes(t), encClient, guestEmail, "erased7q"); len(found) > 0 {
			t.Errorf("found at rest:\n  %s", strings.Join(found, "\n  "))
		}
	})
}
