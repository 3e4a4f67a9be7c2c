package httpserver

import (
	"encoding/hex"
	"encoding/json"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/kluis/kluis"
)

type orgJSON struct {
	ID   string `json:"id"`
	Slug string `json:"slug"`
	Name string `json:"name"`
}

type createOrgRequest struct {
	Slug     string `json:"slug"`
	Name     string `json:"name"`
	Language string `json:"language"`
	Manager  struct {
		Email string `json:"email"`
		Name  string `json:"name"`
	} `json:"manager"`
}

type orgAnswer struct {
	Org orgJSON `json:"org"`
}

// handleCreateOrg creates an organisation and mails its first manager an
// invitation. The link is not in the answer: it reaches the manager only.
func handleCreateOrg(orgs kluis.OrgService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in createOrgRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		org, _, err := orgs.CreateOrg(r.Context(), state(r).actor, kluis.NewOrg{
			Slug: in.Slug, Name: in.Name, Language: in.Language, ManagerEmail: in.Manager.Email, ManagerName: in.Manager.Name,
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, orgAnswer{Org: orgJSON{ID: string(org.ID), Slug: org.Slug, Name: org.Name}})
		return nil
	}
}

type orgsAnswer struct {
	Orgs []orgJSON `json:"orgs"`
}

func handleListOrgs(orgs kluis.OrgService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		list, err := orgs.FindOrgs(r.Context(), state(r).actor)
		if err != nil {
			return err
		}
		out := orgsAnswer{Orgs: make([]orgJSON, 0, len(list))}
		for _, o := range list {
			out.Orgs = append(out.Orgs, orgJSON{ID: string(o.ID), Slug: o.Slug, Name: o.Name})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

func handleDeleteOrg(orgs kluis.OrgService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		if err := orgs.DeleteOrg(r.Context(), state(r).actor, r.PathValue("org")); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type auditEventJSON struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Actor   string          `json:"actor"`
	Action  string          `json:"action"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Details json.RawMessage `json:"details"`
	Client  string          `json:"client,omitempty"` // exports only
	Hash    string          `json:"hash"`
}

func toAuditJSON(e kluis.AuditEvent) auditEventJSON {
	d := e.Details
	if !json.Valid(d) {
		d = json.RawMessage(`{}`)
	}
	return auditEventJSON{Seq: e.Seq, At: e.At, Actor: e.Actor, Action: e.Action, Target: e.Target, Outcome: e.Outcome, Details: d, Client: e.Client, Hash: hex.EncodeToString(e.Hash[:])}
}

type auditPage struct {
	Events []auditEventJSON `json:"events"`
	Next   *int64           `json:"next"`
}

// auditFilter reads the query of the audit routes; bad values are
// invalid_input naming the parameter.
func auditFilter(r *http.Request) (kluis.AuditFilter, error) {
	q := r.URL.Query()
	var f kluis.AuditFilter
	bad := map[string]string{}
	num := func(name string, dst *int64, lo, hi int64) {
		if v := q.Get(name); v != "" {
			n, err := strconv.ParseInt(v, 10, 64)
			if err != nil || n < lo || n > hi {
				bad[name] = "must be a whole number from " + strconv.FormatInt(lo, 10) + " to " + strconv.FormatInt(hi, 10)
				return
			}
			*dst = n
		}
	}
	var limit int64
	num("after", &f.After, 0, 1<<62)
	num("limit", &limit, 1, kluis.MaxAuditPage)
	f.Limit = int(limit)
	tm := func(name string, dst *time.Time) {
		if v := q.Get(name); v != "" {
			t, err := time.Parse(time.RFC3339Nano, v)
			if err != nil {
				bad[name] = "must be an RFC 3339 time"
				return
			}
			*dst = t
		}
	}
	tm("since", &f.Since)
	tm("until", &f.Until)
	f.Action, f.Actor = q.Get("action"), q.Get("actor")
	checkFilterText(bad, "action", f.Action)
	checkFilterText(bad, "actor", f.Actor)
	if len(bad) > 0 {
		return f, kluis.Invalid(bad)
	}
	return f, nil
}

// checkFilterText checks an action or actor filter: short printable text.
// Anything else matches no event, and a NUL or invalid UTF-8 would make
// PostgreSQL fail the query.
func checkFilterText(bad map[string]string, name, v string) {
	switch {
	case len(v) > 100:
		bad[name] = "is too long"
	case !utf8.ValidString(v) || strings.ContainsFunc(v, unicode.IsControl):
		bad[name] = "must be printable text"
	}
}

func handleListAudit(auditLog kluis.AuditService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := auditFilter(r)
		if err != nil {
			return err
		}
		st := state(r)
		events, next, err := auditLog.FindAuditEvents(r.Context(), st.org.ID, st.actor, f)
		if err != nil {
			return err
		}
		page := auditPage{Events: make([]auditEventJSON, 0, len(events))}
		for _, e := range events {
			page.Events = append(page.Events, toAuditJSON(e))
		}
		if next > 0 {
			page.Next = &next
		}
		writeJSON(w, http.StatusOK, page)
		return nil
	}
}

// handleExportAudit streams the filtered log as JSON lines (R25).
func handleExportAudit(auditLog kluis.AuditService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		f, err := auditFilter(r)
		if err != nil {
			return err
		}
		st := state(r)
		enc := json.NewEncoder(w)
		started := false
		err = auditLog.ExportAudit(r.Context(), st.org.ID, st.actor, f, func(e kluis.AuditEvent) error {
			if !started {
				w.Header().Set("Content-Type", "application/x-ndjson")
				w.Header().Set("Content-Disposition", `attachment; filename="audit.jsonl"`)
				started = true
			}
			return enc.Encode(toAuditJSON(e))
		})
		if err != nil && started {
			// The answer has begun: the error can only be logged.
			st.log.Error("audit export interrupted", "err", err.Error())
			return nil
		}
		if err == nil && !started {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
		}
		return err
	}
}

type verifyAnswer struct {
	OK             bool   `json:"ok"`
	Checked        int64  `json:"checked"`
	FirstBrokenSeq *int64 `json:"first_broken_seq"`
	Problem        string `json:"problem,omitempty"`
}

func handleVerifyAudit(auditLog kluis.AuditService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		res, err := auditLog.VerifyOrgAudit(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := verifyAnswer{OK: res.OK, Checked: res.Checked, Problem: res.Problem}
		if !res.OK {
			out.FirstBrokenSeq = &res.FirstBrokenSeq
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// decodeEnabled reads the body of a logins switch: {"enabled":…},
// required.
func decodeEnabled(r *http.Request) (bool, error) {
	var in struct {
		Enabled *bool `json:"enabled"`
	}
	if err := decode(r, &in); err != nil {
		return false, err
	}
	if in.Enabled == nil {
		return false, kluis.Invalid(map[string]string{"enabled": "is required"})
	}
	return *in.Enabled, nil
}

type loginsJSON struct {
	Enabled       *bool `json:"enabled"`
	SessionsEnded *int  `json:"sessions_ended,omitempty"`
}

// handleGetLogins tells whether the organisation's logins are open (R19).
func handleGetLogins(logins kluis.LoginsService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		stopped, err := logins.LoginsStopped(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		enabled := !stopped
		writeJSON(w, http.StatusOK, loginsJSON{Enabled: &enabled})
		return nil
	}
}

// handleSetLogins stops ({enabled:false}: every session but the caller's
// ends) or resumes the organisation's logins (R19). Managers only.
func handleSetLogins(logins kluis.LoginsService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		enabled, err := decodeEnabled(r)
		if err != nil {
			return err
		}
		st := state(r)
		ended, err := logins.SetLogins(r.Context(), st.org.ID, st.actor, enabled)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, loginsJSON{Enabled: &enabled, SessionsEnded: &ended})
		return nil
	}
}
