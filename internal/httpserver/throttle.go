package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Unlocking a sign-in lock (R18, DESIGN §6): a manager for a person of the
// organisation, or the owner through the link mailed when the lock started.

// handleUnlockUser lifts a person's sign-in lock (manager).
func handleUnlockUser(throttle kluis.ThrottleService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := throttle.UnlockUser(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

type unlockRequest struct {
	Token string `json:"token"`
}

// handleUnlock lifts the lock an unlock link was mailed for.
func handleUnlock(recovery kluis.RecoveryService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		var in unlockRequest
		if err := decode(r, &in); err != nil {
			return err
		}
		st := state(r)
		if err := recovery.Unlock(r.Context(), st.org.ID, st.from, in.Token); err != nil {
			return err
		}
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}

// handleUnlockPage shows the owner's unlock form; the script moves the
// token from the link's fragment into it.
func handleUnlockPage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("unlock.title")
		return renderPage(w, r, p, http.StatusOK, "unlock")
	}
}

func handleUnlockForm(recovery kluis.RecoveryService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		form, err := formValues(r)
		if err != nil {
			return err
		}
		p.title("unlock.title")
		err = recovery.Unlock(r.Context(), p.Org.ID, state(r).from, form.Get("token"))
		switch {
		case kluis.ErrorCode(err) == kluis.ENotFound:
			p.Error = p.L.T("unlock.invalid")
			return renderPage(w, r, p, http.StatusBadRequest, "unlock")
		case err != nil:
			if p.showError(err) {
				return renderPage(w, r, p, formStatus(err), "unlock")
			}
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/login", "unlocked")
	}
}

// handleUnlockUserForm is the manager's unlock button on a person's page.
func handleUnlockUserForm(throttle kluis.ThrottleService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		if err := throttle.UnlockUser(r.Context(), st.org.ID, st.actor, userID(r)); err != nil {
			return err
		}
		return redirect(w, r, "/o/"+p.Org.Slug+"/users/"+string(userID(r)), "user_unlocked")
	}
}
