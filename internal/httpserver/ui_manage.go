package httpserver

import (
	"encoding/json"
	"errors"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
)

// Pages for managers. Rights are the services': a member who types one of
// these addresses gets the service's refusal, shown as a page.

type usersPage struct {
	Users  []kluis.User
	Admins adminsView
}

// adminsView is how many administrators there are (R8), for the page.
type adminsView struct {
	Managers, Cap            int // Cap 0: none
	Admin, Support, Security int
}

func showUsers(w http.ResponseWriter, r *http.Request, p *pageData, users kluis.UserService, status int) error {
	st := state(r)
	list, err := users.FindUsers(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	a, err := users.CountAdministrators(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	admins := adminsView{Managers: a.Managers, Admin: a.Operators[kluis.OperatorAdmin], Support: a.Operators[kluis.OperatorSupport], Security: a.Operators[kluis.OperatorSecurity]}
	if a.MaxManagers != nil {
		admins.Cap = *a.MaxManagers
	}
	p.title("users.title")
	p.Data = usersPage{Users: list, Admins: admins}
	return renderPage(w, r, p, status, "users")
}

func handleUsersPage(users kluis.UserService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.Form.Set("role", string(kluis.RoleMember))
		return showUsers(w, r, p, users, http.StatusOK)
	}
}

func handleInviteUserForm(users kluis.UserService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		email, name, role := form.Get("email"), form.Get("name"), kluis.Role(form.Get("role"))
		if _, err := users.InviteUser(r.Context(), st.org.ID, st.actor, kluis.UserInput{Email: &email, Name: &name, Role: &role}); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showUsers(w, r, p, users, errorStatus(kluis.ErrorCode(err)))
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users", "invited")
	}
}

type userPage struct {
	User        kluis.User
	LockedUntil time.Time // sign-ins from unknown browsers locked until (R18)
	Factors     []string  // the methods of their second factors (R17)
}

// userView is what the page of one person reads: the person (a recorded
// read), their sign-in lock and their second factors.
type userView struct {
	users    kluis.UserService
	throttle kluis.ThrottleService
	factors  kluis.FactorService
}

// show renders one person, unmasked: FindUserByID records the read.
func (v userView) show(w http.ResponseWriter, r *http.Request, p *pageData, status int, name string) error {
	st := state(r)
	u, err := v.users.FindUserByID(r.Context(), st.org.ID, st.actor, userID(r))
	if err != nil {
		return err
	}
	if status == http.StatusOK {
		p.Form.Set("name", u.Name)
		p.Form.Set("role", string(u.Role))
		if u.Status == kluis.StatusDisabled {
			p.Form.Set("disabled", "on")
		}
	}
	p.title("user.title", u.Name)
	if name == "user_delete" {
		p.title("user_delete.title", u.Name)
	}
	locked, err := v.throttle.UserLocked(r.Context(), st.org.ID, st.actor, u.ID)
	if err != nil {
		return err
	}
	methods, err := v.factors.FindFactorMethods(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	p.Data = userPage{User: u, LockedUntil: locked, Factors: methods[u.ID]}
	return renderPage(w, r, p, status, name)
}

func handleUserPage(v userView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK, "user")
	}
}

func handleUpdateUserForm(v userView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		name, role, disabled := form.Get("name"), kluis.Role(form.Get("role")), form.Get("disabled") == "on"
		if _, err := v.users.UpdateUser(r.Context(), st.org.ID, st.actor, userID(r), kluis.UserInput{Name: &name, Role: &role, Disabled: &disabled}); err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return v.show(w, r, p, errorStatus(kluis.ErrorCode(err)), "user")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users/"+string(userID(r)), "saved")
	}
}

// handleInvitationForm re-sends or revokes an invitation.
func handleInvitationForm(v userView, revoke bool) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		do, notice := v.users.ResendInvitation, "invitation_resent"
		if revoke {
			do, notice = v.users.RevokeInvitation, "invitation_revoked"
		}
		if err := do(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			if !p.showError(err) {
				return err
			}
			return v.show(w, r, p, http.StatusConflict, "user")
		}
		if revoke {
			return redirect(w, r, "/o/"+p.Org.Slug+"/users", notice)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users/"+string(userID(r)), notice)
	}
}

func handleDeleteUserPage(v userView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		return v.show(w, r, p, http.StatusOK, "user_delete")
	}
}

func handleDeleteUserForm(v userView) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := v.users.DeleteUser(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			if !p.showError(err) {
				return err
			}
			return v.show(w, r, p, http.StatusConflict, "user_delete")
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users", "deleted")
	}
}

var policyFields = []string{"password_min_length", "password_require_digit", "password_require_upper", "session_idle_minutes", "session_max_hours", "mfa", "lockout_threshold", "inactive_user_days", "audit_retention_days"}

func handlePolicyPage(policies kluis.PolicyService, logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		pol, err := policies.FindPolicy(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		p.Form.Set("password_min_length", strconv.Itoa(pol.PasswordMinLength))
		p.Form.Set("session_idle_minutes", strconv.Itoa(pol.SessionIdleMinutes))
		p.Form.Set("session_max_hours", strconv.Itoa(pol.SessionMaxHours))
		p.Form.Set("mfa", pol.MFA)
		p.Form.Set("lockout_threshold", strconv.Itoa(pol.LockoutThreshold))
		p.Form.Set("inactive_user_days", strconv.Itoa(pol.InactiveUserDays))
		p.Form.Set("audit_retention_days", strconv.Itoa(pol.AuditRetentionDays))
		if pol.MaxManagers != nil {
			p.Form.Set("max_managers", strconv.Itoa(*pol.MaxManagers))
		}
		if pol.PasswordRequireDigit {
			p.Form.Set("password_require_digit", "on")
		}
		if pol.PasswordRequireUpper {
			p.Form.Set("password_require_upper", "on")
		}
		return showPolicy(w, r, p, logins, http.StatusOK)
	}
}

type policyPage struct {
	LoginsStopped bool
}

// showPolicy renders the policy page with the state of the logins switch.
func showPolicy(w http.ResponseWriter, r *http.Request, p *pageData, logins kluis.LoginsService, status int) error {
	st := state(r)
	stopped, err := logins.LoginsStopped(r.Context(), st.org.ID, st.actor)
	if err != nil {
		return err
	}
	p.title("policy.title")
	p.Data = policyPage{LoginsStopped: stopped}
	return renderPage(w, r, p, status, "policy")
}

// handleLoginsForm is the managers' switch that stops every sign-in of the
// organisation at once, ending every other session, or resumes them (R19).
func handleLoginsForm(logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		enabled, err := loginsSwitch(r)
		if err != nil {
			return err
		}
		st := state(r)
		_, err = logins.SetLogins(r.Context(), st.org.ID, st.actor, enabled)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		notice := "logins_stopped"
		if enabled {
			notice = "logins_resumed"
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/policy", notice)
	}
}

func handlePolicyForm(policies kluis.PolicyService, logins kluis.LoginsService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		st := state(r)
		bad := map[string]string{}
		num := func(name string) int {
			n, err := strconv.Atoi(strings.TrimSpace(form.Get(name)))
			if err != nil {
				bad[name] = "must be a whole number"
			}
			return n
		}
		pol := kluis.Policy{
			PasswordMinLength: num("password_min_length"), SessionIdleMinutes: num("session_idle_minutes"), SessionMaxHours: num("session_max_hours"),
			PasswordRequireDigit: form.Get("password_require_digit") == "on", PasswordRequireUpper: form.Get("password_require_upper") == "on",
			MFA: form.Get("mfa"), LockoutThreshold: num("lockout_threshold"),
			InactiveUserDays: num("inactive_user_days"), AuditRetentionDays: num("audit_retention_days"),
		}
		// max_managers (R8): empty removes the cap (0 to the service).
		maxManagers := 0
		if strings.TrimSpace(form.Get("max_managers")) != "" {
			if maxManagers = num("max_managers"); maxManagers == 0 {
				maxManagers = -1 // refused by the service: 0 is not a cap
			}
		}
		pol.MaxManagers = &maxManagers
		// Retention (R25 R35): 0 keeps the value in the service, so a number
		// that could not be read is sent as -1, which it refuses.
		for name, v := range map[string]*int{"inactive_user_days": &pol.InactiveUserDays, "audit_retention_days": &pol.AuditRetentionDays} {
			if _, ok := bad[name]; ok || *v == 0 {
				*v = -1
			}
		}
		if pol.MFA == "" {
			bad["mfa"] = "must be off, optional or required"
			pol.MFA = "?" // refused by the service like any other wrong value
		}
		// The service is asked even when a number could not be read: it
		// decides (and records) a refusal first, and a number that could
		// not be read is 0, which no policy accepts.
		_, err = policies.UpdatePolicy(r.Context(), st.org.ID, st.actor, pol)
		var ke *kluis.Error
		if errors.As(err, &ke) && ke.Code == kluis.EInvalid && len(bad) > 0 {
			fields := map[string]string{}
			for k, v := range ke.Fields {
				fields[k] = v
			}
			for k, v := range bad {
				fields[k] = v
			}
			err = kluis.Invalid(fields)
		}
		if err != nil {
			if !p.showError(err) {
				return err
			}
			p.Form = form
			return showPolicy(w, r, p, logins, http.StatusBadRequest)
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/policy", "saved")
	}
}

// auditActions are the actions the audit page offers as a filter; prefixes
// end in ".".
var auditActions = []string{
	"auth.", "auth.login", "auth.login_password", "auth.login_failed", "auth.reauth", "auth.logout", "auth.session_end", "auth.password_reset_request", "auth.password_reset",
	"user.", "user.invite", "user.invitation_accept", "user.invitation_resend", "user.invitation_revoke",
	"user.update", "user.disable", "user.enable", "user.password_change", "user.delete", "user.read", "user.list",
	"user.restrict", "user.lift_restriction",
	"mfa.", "policy.update", "org.logins_stop", "org.logins_resume", "audit.export", "org.export", "key.",
	"project.", "file.", "file.read", "version.", "grant.", "group.", "access.denied", "licence.update",
}

// auditRow is one event as the page shows it.
type auditRow struct {
	kluis.AuditEvent
	What    string // the action in words
	Who     string
	Whom    string
	Details string
}

type auditView struct {
	Rows      []auditRow
	Next      string // link to the next page, or ""
	ExportURL string
	People    []option
	Actions   []option
}

// datetimeLocal is the format of <input type="datetime-local">.
const datetimeLocal = "2006-01-02T15:04"

// auditPageFilter reads the page's filter: times are in the person's time
// zone; the API's export takes them as RFC 3339.
func auditPageFilter(q url.Values, p *pageData) (kluis.AuditFilter, error) {
	f := kluis.AuditFilter{Limit: 50, Newest: true, Action: q.Get("action"), Actor: q.Get("actor")}
	bad := map[string]string{}
	if v := q.Get("before"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 0 {
			bad["before"] = "must be a whole number"
		}
		f.Before = n
	}
	tm := func(name string, dst *time.Time) {
		if v := q.Get(name); v != "" {
			t, err := time.ParseInLocation(datetimeLocal, v, p.L.loc)
			if err != nil {
				bad[name] = "must be a date and time"
				return
			}
			*dst = t
		}
	}
	tm("since", &f.Since)
	tm("until", &f.Until)
	checkFilterText(bad, "action", f.Action)
	checkFilterText(bad, "actor", f.Actor)
	if len(bad) > 0 {
		return f, kluis.Invalid(bad)
	}
	return f, nil
}

func handleAuditPage(auditLog kluis.AuditService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		q := r.URL.Query()
		for _, name := range []string{"action", "actor", "since", "until"} {
			p.Form.Set(name, q.Get(name))
		}
		p.title("audit.title")
		p.Wide = true
		people, err := auditLog.FindAuditPeople(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		data := auditView{}
		data.People = append(data.People, option{Value: "", Label: p.L.T("audit.anyone")})
		for id, name := range people {
			data.People = append(data.People, option{Value: "user:" + string(id), Label: name, Selected: q.Get("actor") == "user:"+string(id)})
		}
		slices.SortFunc(data.People[1:], func(a, b option) int { return strings.Compare(strings.ToLower(a.Label), strings.ToLower(b.Label)) })
		for _, a := range []string{"cli", "system", "anonymous"} {
			data.People = append(data.People, option{Value: a, Label: p.L.T("audit.actor." + a), Selected: q.Get("actor") == a})
		}
		data.Actions = append(data.Actions, option{Value: "", Label: p.L.T("audit.any_action")})
		for _, a := range auditActions {
			data.Actions = append(data.Actions, option{Value: a, Label: actionLabel(p, a), Selected: q.Get("action") == a})
		}
		p.Data = &data
		f, err := auditPageFilter(q, p)
		if err != nil {
			if !p.showError(err) {
				return err
			}
			return renderPage(w, r, p, http.StatusBadRequest, "audit")
		}
		events, next, err := auditLog.FindAuditEvents(r.Context(), st.org.ID, st.actor, f)
		if err != nil {
			return err
		}
		name := func(ref string) string {
			if id, ok := strings.CutPrefix(ref, "user:"); ok {
				if n, ok := people[kluis.UserID(id)]; ok {
					return n
				}
				return p.L.T("person.deleted_ref", kluis.DeletedPersonRef(kluis.UserID(id)))
			}
			if ref == "" {
				return ""
			}
			if _, ok := strings.CutPrefix(ref, "operator:"); ok {
				return p.L.T("audit.actor.operator")
			}
			if i18n.Has("audit.actor." + ref) {
				return p.L.T("audit.actor." + ref)
			}
			return ref
		}
		for _, e := range events {
			row := auditRow{AuditEvent: e, What: actionLabel(p, e.Action), Who: name(e.Actor), Whom: name(e.Target)}
			if len(e.Details) > 0 && string(e.Details) != "{}" && string(e.Details) != "null" {
				var d map[string]any
				if json.Unmarshal(e.Details, &d) == nil {
					keys := make([]string, 0, len(d))
					for k := range d {
						keys = append(keys, k)
					}
					slices.Sort(keys)
					var parts []string
					for _, k := range keys {
						b, _ := json.Marshal(d[k])
						parts = append(parts, k+": "+strings.Trim(string(b), `"`))
					}
					row.Details = strings.Join(parts, ", ")
				}
			}
			data.Rows = append(data.Rows, row)
		}
		api := url.Values{}
		for _, name := range []string{"action", "actor"} {
			if v := q.Get(name); v != "" {
				api.Set(name, v)
			}
		}
		if !f.Since.IsZero() {
			api.Set("since", f.Since.UTC().Format(time.RFC3339))
		}
		if !f.Until.IsZero() {
			api.Set("until", f.Until.UTC().Format(time.RFC3339))
		}
		data.ExportURL = "/api/v1/orgs/" + p.Org.Slug + "/audit/export"
		if len(api) > 0 {
			data.ExportURL += "?" + api.Encode()
		}
		if next > 0 {
			nq := url.Values{}
			for k, v := range q {
				nq[k] = v
			}
			nq.Set("before", strconv.FormatInt(next, 10))
			data.Next = "/o/" + p.Org.Slug + "/audit?" + nq.Encode()
		}
		return renderPage(w, r, p, http.StatusOK, "audit")
	}
}

func actionLabel(p *pageData, action string) string {
	if i18n.Has("action." + action) {
		return p.L.T("action." + action)
	}
	return action
}

type verifyPage struct {
	Result kluis.ChainCheck
}

func handleAuditVerifyPage(auditLog kluis.AuditService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		res, err := auditLog.VerifyOrgAudit(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		p.title("audit_verify.title")
		p.Data = verifyPage{Result: res}
		return renderPage(w, r, p, http.StatusOK, "audit_verify")
	}
}

// handleResetFactorsForm is the user page's reset of a person's second
// factors (R17); it needs a fresh authentication.
func handleResetFactorsForm(factors kluis.FactorService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		id := userID(r)
		err := factors.ResetFactors(r.Context(), st.realm.Scope, st.actor, string(id))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		}
		if err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users/"+string(id), "factors_reset")
	}
}
