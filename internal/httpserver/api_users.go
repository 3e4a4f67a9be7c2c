package httpserver

import (
	"encoding/json"
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// handleGetMe answers the signed-in user from the identity authentication
// found, decrypted now: a user reading their own data is not recorded
// (DESIGN §3).
func handleGetMe() handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		u, err := state(r).person(r.Context())
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toUserJSON(u))
		return nil
	}
}

type updateMeRequest struct {
	Name              *string `json:"name"`
	Phone             *string `json:"phone"`
	MaintenanceEmails *bool   `json:"maintenance_emails"`
}

func handleUpdateMe(accounts kluis.AccountService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in updateMeRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		u, err := accounts.UpdateMe(r.Context(), st.org.ID, st.actor, kluis.UserInput{Name: in.Name, Phone: in.Phone, MaintenanceEmails: in.MaintenanceEmails})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toUserJSON(u))
		return nil
	}
}

type changePasswordRequest struct {
	CurrentPassword string `json:"current_password"`
	NewPassword     string `json:"new_password"`
}

func handleChangePassword(signIn kluis.SignInService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in changePasswordRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := signIn.ChangePassword(r.Context(), st.realm.Scope, st.actor, in.CurrentPassword, in.NewPassword); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type usersAnswer struct {
	Users []managedUserJSON `json:"users"`
}

func handleListUsers(users kluis.UserService, factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := users.FindUsers(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		methods, err := factors.FindFactorMethods(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		out := usersAnswer{Users: make([]managedUserJSON, 0, len(list))}
		for _, u := range list {
			out.Users = append(out.Users, toManagedUserJSON(u, methods))
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

type inviteRequest struct {
	Email string      `json:"email"`
	Name  string      `json:"name"`
	Role  *kluis.Role `json:"role"`
}

func handleInviteUser(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in inviteRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		u, err := users.InviteUser(r.Context(), st.org.ID, st.actor, kluis.UserInput{Email: &in.Email, Name: &in.Name, Role: in.Role})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, userAnswer{User: toUserJSON(u)})
		return nil
	}
}

func userID(r *http.Request) kluis.UserID { return kluis.UserID(r.PathValue("id")) }

func handleGetUser(users kluis.UserService, factors kluis.FactorService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		u, err := users.FindUserByID(r.Context(), st.org.ID, st.actor, userID(r))
		if err != nil {
			return err
		}
		methods, err := factors.FindFactorMethods(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toManagedUserJSON(u, methods))
		return nil
	}
}

type updateUserRequest struct {
	Name     *string     `json:"name"`
	Role     *kluis.Role `json:"role"`
	Disabled *bool       `json:"disabled"`
}

func handleUpdateUser(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in updateUserRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		u, err := users.UpdateUser(r.Context(), st.org.ID, st.actor, userID(r), kluis.UserInput{Name: in.Name, Role: in.Role, Disabled: in.Disabled})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toUserJSON(u))
		return nil
	}
}

func handleDeleteUser(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := users.DeleteUser(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleResendInvitation(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := users.ResendInvitation(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleRevokeInvitation(users kluis.UserService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := users.RevokeInvitation(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

func handleGetPolicy(policies kluis.PolicyService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		p, err := policies.FindPolicy(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toPolicyJSON(p))
		return nil
	}
}

// deref is the value behind p, or its zero value when p is nil.
func deref[T any](p *T) T {
	var v T
	if p != nil {
		v = *p
	}
	return v
}

type policyJSON struct {
	PasswordMinLength    *int  `json:"password_min_length"`
	PasswordRequireDigit *bool `json:"password_require_digit"`
	PasswordRequireUpper *bool `json:"password_require_upper"`
	SessionIdleMinutes   *int  `json:"session_idle_minutes"`
	SessionMaxHours      *int  `json:"session_max_hours"`
	// Added with account security; left out of a PUT, they keep their value.
	MFA              *string `json:"mfa"`
	LockoutThreshold *int    `json:"lockout_threshold"`
	// Added with projects; left out of a PUT, they keep their value.
	ProjectAccess *string `json:"project_access"`
	TrashDays     *int    `json:"trash_days"`
	// Added with support access; left out of a PUT, it keeps its value.
	SupportApprovals *int `json:"support_approvals"`
	// Added with issue 13 (R8): null is no cap; left out of a PUT, it
	// keeps its value.
	MaxManagers optionalCap `json:"max_managers"`
	// Added with privacy rights (retention, R25 R35); left out of a PUT,
	// they keep their value.
	InactiveUserDays   *int `json:"inactive_user_days"`
	AuditRetentionDays *int `json:"audit_retention_days"`
}

// optionalCap is a number that may be null, and may be left out: a PUT
// tells "no cap" (null) from "unchanged" (absent).
type optionalCap struct {
	set bool
	n   *int
}

func (c optionalCap) MarshalJSON() ([]byte, error) { return json.Marshal(c.n) }

func (c *optionalCap) UnmarshalJSON(b []byte) error {
	c.set = true
	return json.Unmarshal(b, &c.n)
}

// policyCap is the service's form of max_managers: nil keeps, 0 removes.
func (c optionalCap) policyCap() *int {
	switch {
	case !c.set:
		return nil
	case c.n == nil:
		return new(int)
	case *c.n == 0:
		return new(-1) // 0 is not a cap: refused as out of range
	}
	return c.n
}

func toPolicyJSON(p kluis.Policy) policyJSON {
	return policyJSON{&p.PasswordMinLength, &p.PasswordRequireDigit, &p.PasswordRequireUpper, &p.SessionIdleMinutes, &p.SessionMaxHours, &p.MFA, &p.LockoutThreshold, &p.ProjectAccess, &p.TrashDays,
		&p.SupportApprovals, optionalCap{set: true, n: p.MaxManagers}, &p.InactiveUserDays, &p.AuditRetentionDays}
}

// handleUpdatePolicy replaces the policy: PUT takes every field, so a
// forgotten one is an error rather than a silent reset.
func handleUpdatePolicy(policies kluis.PolicyService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in policyJSON
		if err := decode(r, &in); err != nil {
			return err
		}
		missing := map[string]string{}
		if in.PasswordMinLength == nil {
			missing["password_min_length"] = "is required"
		}
		if in.PasswordRequireDigit == nil {
			missing["password_require_digit"] = "is required"
		}
		if in.PasswordRequireUpper == nil {
			missing["password_require_upper"] = "is required"
		}
		if in.SessionIdleMinutes == nil {
			missing["session_idle_minutes"] = "is required"
		}
		if in.SessionMaxHours == nil {
			missing["session_max_hours"] = "is required"
		}
		if len(missing) > 0 {
			return kluis.Invalid(missing)
		}
		st := state(r)
		p, err := policies.UpdatePolicy(r.Context(), st.org.ID, st.actor, kluis.Policy{
			PasswordMinLength: *in.PasswordMinLength, PasswordRequireDigit: *in.PasswordRequireDigit,
			PasswordRequireUpper: *in.PasswordRequireUpper, SessionIdleMinutes: *in.SessionIdleMinutes, SessionMaxHours: *in.SessionMaxHours,
			MFA: deref(in.MFA), LockoutThreshold: deref(in.LockoutThreshold),
			ProjectAccess: deref(in.ProjectAccess), TrashDays: deref(in.TrashDays),
			SupportApprovals: deref(in.SupportApprovals),
			MaxManagers:      in.MaxManagers.policyCap(),
			InactiveUserDays: deref(in.InactiveUserDays), AuditRetentionDays: deref(in.AuditRetentionDays),
		})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toPolicyJSON(p))
		return nil
	}
}

type sessionJSON struct {
	ID         string    `json:"id"`
	CreatedAt  time.Time `json:"created_at"`
	LastSeenAt time.Time `json:"last_seen_at"`
	ExpiresAt  time.Time `json:"expires_at"`
	Client     string    `json:"client"`
	Device     string    `json:"device"`
	Current    bool      `json:"current"`
}

type sessionsAnswer struct {
	Sessions []sessionJSON `json:"sessions"`
}

// handleListSessions lists the caller's live sessions (R4, R14).
func handleListSessions(sessions kluis.SessionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		list, err := sessions.FindSessions(r.Context(), st.realm.Scope, st.actor)
		if err != nil {
			return err
		}
		out := sessionsAnswer{Sessions: make([]sessionJSON, 0, len(list))}
		for _, s := range list {
			out.Sessions = append(out.Sessions, sessionJSON{string(s.ID), s.CreatedAt, s.LastSeenAt, s.ExpiresAt, s.Client, s.Device, s.Current})
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}

// handleEndSession ends one of the caller's sessions.
func handleEndSession(sessions kluis.SessionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		id := kluis.SessionID(r.PathValue("id"))
		if err := sessions.EndSession(r.Context(), st.realm.Scope, st.actor, id); err != nil {
			return err
		}
		if id == st.actor.SessionID {
			http.SetCookie(w, clearCookie(st.realm.sessionCookie))
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleEndOtherSessions ends every session of the caller but this one.
func handleEndOtherSessions(sessions kluis.SessionService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if _, err := sessions.EndOtherSessions(r.Context(), st.realm.Scope, st.actor); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
