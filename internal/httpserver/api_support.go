package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Support access by the customer's consent (R22) in the API: grants and
// requests on the organisation's side, requests and sessions on the
// operator's.

type supportUseJSON struct {
	At       time.Time `json:"at"`
	Operator string    `json:"operator"`
	Method   string    `json:"method"`
	Route    string    `json:"route"`
	Object   string    `json:"object"`
}

type supportGrantJSON struct {
	ID         string           `json:"id"`
	Scope      string           `json:"scope"`
	Right      string           `json:"right"`
	Reason     string           `json:"reason"`
	Status     string           `json:"status"`
	GrantedBy  string           `json:"granted_by,omitempty"`
	ApprovedBy string           `json:"approved_by,omitempty"`
	Request    string           `json:"request,omitempty"`
	CreatedAt  time.Time        `json:"created_at"`
	ExpiresAt  time.Time        `json:"expires_at"`
	RevokedAt  *time.Time       `json:"revoked_at,omitempty"`
	RevokedBy  string           `json:"revoked_by,omitempty"`
	Uses       []supportUseJSON `json:"uses,omitempty"`
}

func toSupportGrantJSON(g kluis.SupportGrant) supportGrantJSON {
	j := supportGrantJSON{ID: string(g.ID), Scope: string(g.Scope), Right: string(g.Right), Reason: g.Reason, Status: g.Status,
		GrantedBy: g.GrantedBy, ApprovedBy: g.ApprovedBy, Request: string(g.RequestID), CreatedAt: g.CreatedAt, ExpiresAt: g.ExpiresAt,
		RevokedBy: g.RevokedBy}
	if !g.RevokedAt.IsZero() {
		at := g.RevokedAt
		j.RevokedAt = &at
	}
	for _, u := range g.Uses {
		j.Uses = append(j.Uses, supportUseJSON{At: u.At, Operator: "support:" + string(u.Operator), Method: u.Method, Route: u.Route, Object: u.Object})
	}
	return j
}

type supportRequestJSON struct {
	ID        string     `json:"id"`
	Operator  string     `json:"operator"`
	Scope     string     `json:"scope"`
	Right     string     `json:"right"`
	Reason    string     `json:"reason"`
	At        time.Time  `json:"at"`
	Status    string     `json:"status"`
	DecidedBy string     `json:"decided_by,omitempty"`
	DecidedAt *time.Time `json:"decided_at,omitempty"`
	Grant     string     `json:"grant,omitempty"`
}

func toSupportRequestJSON(q kluis.SupportRequest) supportRequestJSON {
	j := supportRequestJSON{ID: string(q.ID), Operator: "support:" + string(q.Operator), Scope: string(q.Scope), Right: string(q.Right),
		Reason: q.Reason, At: q.At, Status: q.Status, DecidedBy: q.DecidedBy, Grant: string(q.GrantID)}
	if !q.DecidedAt.IsZero() {
		at := q.DecidedAt
		j.DecidedAt = &at
	}
	return j
}

type supportGrantAnswer struct {
	Grant supportGrantJSON `json:"grant"`
}

type supportRequestAnswer struct {
	Request supportRequestJSON `json:"request"`
}

type supportListAnswer struct {
	Grants   []supportGrantJSON   `json:"grants"`
	Requests []supportRequestJSON `json:"requests"`
}

func toSupportList(grants []kluis.SupportGrant, requests []kluis.SupportRequest) supportListAnswer {
	out := supportListAnswer{Grants: make([]supportGrantJSON, 0, len(grants)), Requests: make([]supportRequestJSON, 0, len(requests))}
	for _, g := range grants {
		out.Grants = append(out.Grants, toSupportGrantJSON(g))
	}
	for _, q := range requests {
		out.Requests = append(out.Requests, toSupportRequestJSON(q))
	}
	return out
}

type supportGrantRequest struct {
	Scope     string    `json:"scope"`
	Right     string    `json:"right"`
	Reason    string    `json:"reason"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleGrantSupport: a manager (scope org) or a project's owner (scope
// project:ID) lets support in, after a fresh authentication.
func handleGrantSupport(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in supportGrantRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		g, err := support.GrantSupport(r.Context(), st.org.ID, st.actor, kluis.SupportGrantInput{
			Scope: kluis.SupportScope(in.Scope), Right: kluis.SupportRight(in.Right), Reason: in.Reason, ExpiresAt: in.ExpiresAt})
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, supportGrantAnswer{Grant: toSupportGrantJSON(g)})
		return nil
	}
}

// handleListSupport lists the organisation's grants with every use, and
// support's requests (managers).
func handleListSupport(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		grants, requests, err := support.SupportGrants(r.Context(), st.org.ID, st.actor)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toSupportList(grants, requests))
		return nil
	}
}

func handleRevokeSupport(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := support.RevokeSupportGrant(r.Context(), st.org.ID, st.actor, kluis.SupportGrantID(r.PathValue("id"))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleApproveSupportGrant is the second manager's approval (four eyes).
func handleApproveSupportGrant(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		g, err := support.ApproveSupportGrant(r.Context(), st.org.ID, st.actor, kluis.SupportGrantID(r.PathValue("id")))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, supportGrantAnswer{Grant: toSupportGrantJSON(g)})
		return nil
	}
}

type supportApproval struct {
	ExpiresAt time.Time `json:"expires_at"`
}

func handleApproveSupportRequest(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in supportApproval
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		g, err := support.ApproveSupportRequest(r.Context(), st.org.ID, st.actor, kluis.SupportRequestID(r.PathValue("id")), in.ExpiresAt)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, supportGrantAnswer{Grant: toSupportGrantJSON(g)})
		return nil
	}
}

func handleRefuseSupportRequest(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := support.RefuseSupportRequest(r.Context(), st.org.ID, st.actor, kluis.SupportRequestID(r.PathValue("id"))); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type supportAsk struct {
	Scope  string `json:"scope"`
	Right  string `json:"right"`
	Reason string `json:"reason"`
}

// handleRequestSupport is support asking an organisation for access.
func handleRequestSupport(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in supportAsk
		if err := decode(r, &in); err != nil {
			return err
		}
		q, err := support.RequestSupport(r.Context(), state(r).actor, r.PathValue("org"), kluis.SupportScope(in.Scope), kluis.SupportRight(in.Right), in.Reason)
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusCreated, supportRequestAnswer{Request: toSupportRequestJSON(q)})
		return nil
	}
}

// handleOperatorSupportList shows support an organisation's grants and
// requests: no people, no uses.
func handleOperatorSupportList(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		grants, requests, err := support.OperatorSupportGrants(r.Context(), state(r).actor, r.PathValue("org"))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, toSupportList(grants, requests))
		return nil
	}
}

type supportSessionRequest struct {
	Grant string `json:"grant"`
}

type supportSessionAnswer struct {
	Token     string    `json:"token"`
	ExpiresAt time.Time `json:"expires_at"`
}

// handleOpenSupportSession opens a support session on an active grant.
func handleOpenSupportSession(support kluis.SupportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in supportSessionRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		sess, err := support.OpenSupportSession(r.Context(), state(r).actor, r.PathValue("org"), kluis.SupportGrantID(in.Grant))
		if err != nil {
			return err
		}
		writeJSON(w, http.StatusOK, supportSessionAnswer{Token: sess.Token, ExpiresAt: sess.ExpiresAt})
		return nil
	}
}
