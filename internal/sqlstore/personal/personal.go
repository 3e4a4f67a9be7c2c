// Package personal is the area of a person's rights over their own data
// (R4, R5, R34): the access and portability export — everything kluis holds
// about one person as a ZIP of JSON files with a JSON Schema for each, in
// the layout of docs/PERSONAL-EXPORT.md, which travels inside the archive
// as README.md — and the erasure of one's own account.
//
// What the export holds is decided by one rule: a person's data is what
// belongs to them, and nobody else's personal value is ever in it. Sealed
// values are opened only when they are sealed under the person's own key
// (their profile, their session devices, their passkey and token names,
// their inbox, the client address of what they did); a value sealed under
// anyone else's key or the organisation's (a manager's address, the
// operator's reason) reads "[withheld]". Other people appear only by their
// random id, never by name or address. Project content (names, version
// messages, files) is included only for projects that whoever takes the
// export may view now, like every other read of project content (R7).
//
// The erasure reuses the people area's removal (a manager's delete and the
// operator's erasure on request): the row goes with its sessions, tokens,
// factors, inbox, grants and group memberships, and the person's key is
// destroyed after the commit, so that no copy made before — an old database
// file, a dump, a backup, the sealed audit details — opens again.
//
// It implements kluis.PersonalDataService.
package personal

import (
	"archive/zip"
	"compress/flate"
	"context"
	"database/sql"
	"embed"
	"errors"
	"io"
	"io/fs"
	"slices"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/accounts"
	"github.com/kluis/kluis/internal/sqlstore/orgexport"
	"github.com/kluis/kluis/internal/sqlstore/privacy"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/rights"
	"github.com/kluis/kluis/internal/sqlstore/users"
)

// Service is the personal-data area.
type Service struct {
	core     *sqlstore.Core
	users    *users.Service
	projects *projects.Service
	requests *privacy.Service
}

// New returns the personal-data area over core and the areas whose data
// and removal it uses: people, projects, and the register of data-subject
// requests.
func New(core *sqlstore.Core, u *users.Service, p *projects.Service, r *privacy.Service) *Service {
	return &Service{core: core, users: u, projects: p, requests: r}
}

var _ kluis.PersonalDataService = (*Service)(nil)

// Format names the layout of the archive; it changes when a file's schema
// changes incompatibly.
const Format = "kluis-personal-export/v1"

// Withheld stands in the export for a sealed value that is not the
// person's own (sealed under someone else's key or the organisation's).
const Withheld = "[withheld]"

// files are the archive's README.md and its JSON Schemas.
//
//go:embed readme.md schema/*.json
var files embed.FS

// Readme is the archive's README.md (docs/PERSONAL-EXPORT.md's layout).
func Readme() string {
	b, _ := files.ReadFile("readme.md")
	return string(b)
}

// Schemas returns the JSON Schemas by file name ("profile.json" → its
// schema), as the archive holds them under schema/.
func Schemas() map[string][]byte {
	out := map[string][]byte{}
	entries, _ := fs.ReadDir(files, "schema")
	for _, e := range entries {
		b, _ := files.ReadFile("schema/" + e.Name())
		out[e.Name()] = b
	}
	return out
}

// ExportMe writes the signed-in person's own export (see
// kluis.PersonalDataService). Recorded as user.export. Errors before the
// first byte: unauthenticated, reauth_required.
func (s *Service) ExportMe(ctx context.Context, org kluis.OrgID, actor kluis.Actor, w io.Writer) error {
	if !actor.IsOrgUser(org) {
		return kluis.ErrUnauthenticated
	}
	return s.export(ctx, org, actor, actor.UserID, w)
}

// ExportUser writes one person's export for a manager of their
// organisation (see kluis.PersonalDataService): a recorded read
// (user.export). Errors before the first byte: forbidden, reauth_required,
// not_found, processing_restricted (the person's processing is
// restricted: only they take their data now).
func (s *Service) ExportUser(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, w io.Writer) error {
	if !kluis.CanExportPerson(actor, org, id) {
		return s.core.Refuse(ctx, sqlstore.OrgChain(org), actor, "user.export", sqlstore.UserTarget(id))
	}
	return s.export(ctx, org, actor, id, w)
}

// export checks the fresh authentication, finds the person, records the
// export and streams the archive.
func (s *Service) export(ctx context.Context, org kluis.OrgID, actor kluis.Actor, id kluis.UserID, w io.Writer) error {
	chain := sqlstore.OrgChain(org)
	target := sqlstore.UserTarget(id)
	if !kluis.FreshlyAuthenticated(actor, s.core.Now()) {
		if err := s.core.RecordRefusal(ctx, chain, actor, "user.export", target, "failure", map[string]any{"reason": "reauth_required"}); err != nil {
			return err
		}
		return kluis.ErrReauthRequired
	}
	var u kluis.User
	var o kluis.Org
	if err := s.core.Read(ctx, func(t *sqlstore.Tx) error {
		var err error
		if u, err = t.FindUser(ctx, org, id); err != nil {
			return err
		}
		o, err = t.FindOrg(ctx, org)
		return err
	}); err != nil {
		return err
	}
	self := actor.UserID == id
	// A restricted person's data goes to nobody else (R34, GDPR Art. 18):
	// they take their own export; a manager's is refused, and recorded.
	if !self && u.Restricted() {
		if err := s.core.RecordRefusal(ctx, chain, actor, "user.export", target, "denied", map[string]any{"reason": "processing_restricted"}); err != nil {
			return err
		}
		return kluis.ErrProcessingRestricted
	}
	// Recorded before the first byte leaves, whatever the client does
	// with the stream afterwards.
	if err := s.core.Write(context.WithoutCancel(ctx), chain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, chain, actor, "user.export", target, "success", map[string]any{"self": self})
	}); err != nil {
		return err
	}
	zw := zip.NewWriter(w)
	zw.RegisterCompressor(zip.Deflate, func(w io.Writer) (io.WriteCloser, error) { return flate.NewWriter(w, flate.BestSpeed) })
	x := &exporter{s: s, org: o, actor: actor, u: u, self: self, zw: zw}
	if err := x.write(ctx); err != nil {
		return err
	}
	return zw.Close()
}

// exporter writes one archive.
type exporter struct {
	s     *Service
	org   kluis.Org
	actor kluis.Actor // who takes the export
	u     kluis.User  // whom it is about
	self  bool
	zw    *zip.Writer
	keyID *keys.KeyID // the person's key, for telling their sealed values from others'
}

func (x *exporter) write(ctx context.Context) error {
	kv, err := x.s.core.Keys().ActiveVersion(ctx, sqlstore.UserKey(x.org.ID, x.u.ID))
	switch {
	case err == nil:
		x.keyID = &kv.ID
	case !errors.Is(err, keys.ErrNoKey):
		return err
	}
	if err := orgexport.AddText(x.zw, "README.md", Readme()); err != nil {
		return err
	}
	schemas := Schemas()
	names := make([]string, 0, len(schemas))
	for n := range schemas {
		names = append(names, n)
	}
	slices.Sort(names)
	for _, n := range names {
		if err := orgexport.AddText(x.zw, "schema/"+n, string(schemas[n])); err != nil {
			return err
		}
	}
	takenBy := "manager"
	if x.self {
		takenBy = "self"
	}
	if err := orgexport.AddJSON(x.zw, "export.json", exportFile{Format: Format, ExportedAt: x.s.core.Now().UTC(), TakenBy: takenBy, Person: string(x.u.ID),
		Organisation: orgRef{ID: string(x.org.ID), Slug: x.org.Slug, Name: x.org.Name}}); err != nil {
		return err
	}
	for _, step := range []func(context.Context) error{
		x.writeProfile, x.writeSessions, x.writeFactors, x.writeTokens, x.writeNotices,
		x.writeGroups, x.writeProjects, x.writeAudit, x.writeRequests,
	} {
		if err := step(ctx); err != nil {
			return err
		}
	}
	return nil
}

type orgRef struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type exportFile struct {
	Format       string    `json:"format"`
	ExportedAt   time.Time `json:"exported_at"`
	TakenBy      string    `json:"taken_by"`
	Person       string    `json:"person"`
	Organisation orgRef    `json:"organisation"`
}

type pendingEmail struct {
	Email     string    `json:"email"`
	ExpiresAt time.Time `json:"expires_at"`
}

type profileFile struct {
	ID                 string        `json:"id"`
	Name               string        `json:"name"`
	Email              string        `json:"email"`
	Phone              string        `json:"phone"`
	Role               kluis.Role    `json:"role"`
	Status             string        `json:"status"`
	MaintenanceEmails  bool          `json:"maintenance_emails"`
	CreatedAt          time.Time     `json:"created_at"`
	LastLoginAt        *time.Time    `json:"last_login_at"`
	PendingEmailChange *pendingEmail `json:"pending_email_change"`
}

func (x *exporter) writeProfile(ctx context.Context) error {
	u := x.u
	f := profileFile{ID: string(u.ID), Name: u.Name, Email: u.Email, Phone: u.Phone, Role: u.Role, Status: string(u.Status),
		MaintenanceEmails: u.MaintenanceEmails, CreatedAt: u.CreatedAt.UTC(), LastLoginAt: timePtr(u.LastLoginAt)}
	var id string
	var sealed []byte
	var expires int64
	err := x.s.core.DB().ReadRow(ctx, `SELECT id, new_email, expires_at FROM email_changes WHERE org_id = ? AND user_id = ? AND expires_at > ? ORDER BY created_at DESC LIMIT 1`,
		x.org.ID, u.ID, sqlstore.Micros(x.s.core.Now())).Scan(&id, &sealed, &expires)
	switch {
	case err == nil:
		p, err := x.s.core.Open(ctx, keys.FieldRef{Org: string(x.org.ID), Table: "email_changes", Column: sqlstore.ColEmail, Row: id}, sealed)
		if err != nil {
			return err
		}
		f.PendingEmailChange = &pendingEmail{Email: string(p), ExpiresAt: sqlstore.FromMicros(expires).UTC()}
	case !errors.Is(err, sql.ErrNoRows):
		return err
	}
	return orgexport.AddJSON(x.zw, "profile.json", f)
}

type sessionRow struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Client     string    `json:"client"`
	Device     string    `json:"device"`
	Current    bool      `json:"current"`
}

func (x *exporter) writeSessions(ctx context.Context) error {
	subject := kluis.Actor{Realm: kluis.RealmOrg, OrgID: x.org.ID, UserID: x.u.ID}
	if x.self {
		subject.SessionID = x.actor.SessionID
	}
	list, err := accounts.ListSessions(ctx, x.s.core, kluis.OrgScope(x.org.ID), subject)
	if err != nil {
		return err
	}
	out := make([]sessionRow, 0, len(list))
	for _, si := range list {
		out = append(out, sessionRow{ID: string(si.ID), CreatedAt: si.CreatedAt.UTC(), LastSeenAt: si.LastSeenAt.UTC(), ExpiresAt: si.ExpiresAt.UTC(),
			Client: si.Client, Device: si.Device, Current: si.Current})
	}
	return orgexport.AddJSON(x.zw, "sessions.json", map[string]any{"sessions": out})
}

type factorRow struct {
	Kind        string     `json:"kind"`
	CreatedAt   time.Time  `json:"created_at"`
	ConfirmedAt *time.Time `json:"confirmed_at"`
}

type passkeyRow struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	CreatedAt  time.Time  `json:"created_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

type factorsFile struct {
	Factors       []factorRow  `json:"factors"`
	Passkeys      []passkeyRow `json:"passkeys"`
	RecoveryCodes struct {
		Total int `json:"total"`
		Left  int `json:"left"`
	} `json:"recovery_codes"`
}

// writeFactors lists the second factors without a secret: no TOTP seed, no
// SMS number (the number a code goes to is the factor's secret), no
// passkey public key or credential id, no recovery code.
func (x *exporter) writeFactors(ctx context.Context) error {
	f := factorsFile{Factors: []factorRow{}, Passkeys: []passkeyRow{}}
	type sealedPasskey struct {
		p    passkeyRow
		name []byte
	}
	var pks []sealedPasskey
	err := x.s.core.Read(ctx, func(t *sqlstore.Tx) error {
		rows, err := t.Query(ctx, `SELECT kind, created_at, confirmed_at FROM factors WHERE org_id = ? AND subject = ? ORDER BY created_at, id`, x.org.ID, x.u.ID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r factorRow
			var created int64
			var confirmed sql.NullInt64
			if err := rows.Scan(&r.Kind, &created, &confirmed); err != nil {
				rows.Close()
				return err
			}
			r.CreatedAt, r.ConfirmedAt = sqlstore.FromMicros(created).UTC(), timePtr(sqlstore.NullMicros(confirmed))
			f.Factors = append(f.Factors, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		rows, err = t.Query(ctx, `SELECT id, name, created_at, last_used_at FROM passkeys WHERE org_id = ? AND subject = ? ORDER BY created_at, id`, x.org.ID, x.u.ID)
		if err != nil {
			return err
		}
		for rows.Next() {
			var r sealedPasskey
			var created int64
			var used sql.NullInt64
			if err := rows.Scan(&r.p.ID, &r.name, &created, &used); err != nil {
				rows.Close()
				return err
			}
			r.p.CreatedAt, r.p.LastUsedAt = sqlstore.FromMicros(created).UTC(), timePtr(sqlstore.NullMicros(used))
			pks = append(pks, r)
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return err
		}
		return t.QueryRow(ctx, `SELECT COUNT(*), COUNT(*) - COUNT(used_at) FROM recovery_codes WHERE org_id = ? AND subject = ?`, x.org.ID, x.u.ID).
			Scan(&f.RecoveryCodes.Total, &f.RecoveryCodes.Left)
	})
	if err != nil {
		return err
	}
	for _, r := range pks {
		name, err := x.s.core.Open(ctx, keys.FieldRef{Org: string(x.org.ID), Table: "passkeys", Column: "name", Row: r.p.ID}, r.name)
		if err != nil {
			return err
		}
		r.p.Name = string(name)
		f.Passkeys = append(f.Passkeys, r.p)
	}
	return orgexport.AddJSON(x.zw, "factors.json", f)
}

type tokenRow struct {
	ID         string     `json:"id"`
	Name       string     `json:"name"`
	Scope      string     `json:"scope"`
	CreatedAt  time.Time  `json:"created_at"`
	ExpiresAt  time.Time  `json:"expires_at"`
	LastUsedAt *time.Time `json:"last_used_at"`
}

// writeTokens lists the personal API tokens: never the secret (only its
// hash is stored) nor the keyed hash of the last client address.
func (x *exporter) writeTokens(ctx context.Context) error {
	type sealedToken struct {
		r    tokenRow
		name []byte
	}
	var list []sealedToken
	rows, err := x.s.core.DB().Query(ctx, `SELECT id, name, scope, created_at, expires_at, last_used_at FROM api_tokens WHERE org_id = ? AND user_id = ? ORDER BY created_at, id`, x.org.ID, x.u.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r sealedToken
		var created, expires int64
		var used sql.NullInt64
		if err := rows.Scan(&r.r.ID, &r.name, &r.r.Scope, &created, &expires, &used); err != nil {
			rows.Close()
			return err
		}
		r.r.CreatedAt, r.r.ExpiresAt, r.r.LastUsedAt = sqlstore.FromMicros(created).UTC(), sqlstore.FromMicros(expires).UTC(), timePtr(sqlstore.NullMicros(used))
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	out := make([]tokenRow, 0, len(list))
	for _, r := range list {
		name, err := x.s.core.Open(ctx, keys.FieldRef{Org: string(x.org.ID), Table: "api_tokens", Column: sqlstore.ColName, Row: r.r.ID}, r.name)
		if err != nil {
			return err
		}
		r.r.Name = string(name)
		out = append(out, r.r)
	}
	return orgexport.AddJSON(x.zw, "tokens.json", map[string]any{"tokens": out})
}

type noticeRow struct {
	ID    string    `json:"id"`
	Kind  string    `json:"kind"`
	At    time.Time `json:"at"`
	Read  bool      `json:"read"`
	Title string    `json:"title"`
	Body  string    `json:"body"`
}

// namesSomeoneElse are the kinds of notice whose text names another
// person: their text is withheld from the export, their kind, time and
// title stay.
var namesSomeoneElse = map[string]bool{kluis.NoticeManagerGranted: true}

// writeNotices writes the person's inbox: the notices are sealed under
// their key and addressed to them; a text that names someone else is
// withheld.
func (x *exporter) writeNotices(ctx context.Context) error {
	type sealedNotice struct {
		r           noticeRow
		title, body []byte
	}
	var list []sealedNotice
	rows, err := x.s.core.DB().Query(ctx, `SELECT id, kind, created_at, read_at, title, body FROM notices WHERE org_id = ? AND user_id = ? ORDER BY created_at, id`, x.org.ID, x.u.ID)
	if err != nil {
		return err
	}
	for rows.Next() {
		var r sealedNotice
		var at int64
		var read sql.NullInt64
		if err := rows.Scan(&r.r.ID, &r.r.Kind, &at, &read, &r.title, &r.body); err != nil {
			rows.Close()
			return err
		}
		r.r.At, r.r.Read = sqlstore.FromMicros(at).UTC(), read.Valid
		list = append(list, r)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return err
	}
	out := make([]noticeRow, 0, len(list))
	for _, r := range list {
		if namesSomeoneElse[r.r.Kind] {
			r.r.Body, r.body = Withheld, nil
		}
		for _, f := range []struct {
			col string
			c   []byte
			out *string
		}{{"title", r.title, &r.r.Title}, {"body", r.body, &r.r.Body}} {
			if f.c == nil {
				continue
			}
			p, err := x.s.core.Open(ctx, keys.FieldRef{Org: string(x.org.ID), Table: "notices", Column: f.col, Row: r.r.ID}, f.c)
			if err != nil {
				return err
			}
			*f.out = string(p)
		}
		out = append(out, r.r)
	}
	return orgexport.AddJSON(x.zw, "notices.json", map[string]any{"notices": out})
}

type groupRow struct {
	ID   string `json:"id"`
	Name string `json:"name"`
}

// writeGroups lists the groups the person is a member of, by id and name;
// never who else is in them.
func (x *exporter) writeGroups(ctx context.Context) error {
	out := []groupRow{}
	err := x.s.core.Read(ctx, func(t *sqlstore.Tx) error {
		gs, err := rights.GroupsOf(ctx, x.s.core, t, x.org.ID)
		for _, g := range gs {
			if slices.Contains(g.Members, x.u.ID) {
				out = append(out, groupRow{ID: string(g.ID), Name: g.Name})
			}
		}
		return err
	})
	if err != nil {
		return err
	}
	return orgexport.AddJSON(x.zw, "groups.json", map[string]any{"groups": out})
}

// writeRequests writes requests.json: the data-subject requests about the
// person in the organisation's register — filed by them or by a manager on
// their behalf — with the organisation's answer (the outcome), which was
// written to them.
func (x *exporter) writeRequests(ctx context.Context) error {
	rs, err := x.s.requests.RequestsAbout(ctx, x.org.ID, x.u.ID)
	if err != nil {
		return err
	}
	type request struct {
		ID         string    `json:"id"`
		Type       string    `json:"type"`
		ReceivedAt time.Time `json:"received_at"`
		DueAt      time.Time `json:"due_at"`
		Status     string    `json:"status"`
		Outcome    *string   `json:"outcome"`
	}
	out := make([]request, 0, len(rs))
	for _, r := range rs {
		q := request{ID: string(r.ID), Type: string(r.Type), ReceivedAt: r.ReceivedAt.UTC(), DueAt: r.DueAt.UTC(), Status: string(r.Status)}
		if r.Outcome != "" {
			q.Outcome = &r.Outcome
		}
		out = append(out, q)
	}
	return orgexport.AddJSON(x.zw, "requests.json", map[string]any{"requests": out})
}

func timePtr(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	u := t.UTC()
	return &u
}
