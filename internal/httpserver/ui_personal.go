package httpserver

import (
	"net/http"

	"github.com/kluis/kluis"
)

// Pages of a person's rights over their own data (R4, R5, R34): "Download
// my data" and "Delete my account" under My account, and "Export this
// person's data" on a manager's page of one person. Each needs a fresh
// authentication: without one, the button leads to the re-authentication
// page first.

// handleExportMeForm is the account page's "Download my data" button
// (POST /o/{org}/account/export).
func handleExportMeForm(personal kluis.PersonalDataService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		err := writePersonalExport(w, r, personal, "")
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, state(r).realm.Account+"/reauth", "reauth_first")
		}
		return err
	}
}

// handleExportUserForm is the person page's "Export this person's data"
// button (POST /o/{org}/users/{id}/export).
func handleExportUserForm(personal kluis.PersonalDataService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		err := writePersonalExport(w, r, personal, userID(r))
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, state(r).realm.Account+"/reauth", "reauth_first")
		}
		return err
	}
}

// handleEraseMePage shows what deleting one's account removes and what
// stays, and the button that does it (GET /o/{org}/account/delete).
func handleEraseMePage() pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		p.title("account_delete.title")
		return renderPage(w, r, p, http.StatusOK, "account_delete")
	}
}

// handleEraseMeForm deletes the signed-in person's account (POST
// /o/{org}/account/delete): afterwards the browser is signed out and
// lands on the sign-in page with a notice; a refusal (the last manager,
// the only owner of a project) is shown on the page.
func handleEraseMeForm(personal kluis.PersonalDataService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		err := personal.EraseMe(r.Context(), st.org.ID, st.actor)
		switch {
		case kluis.ErrorCode(err) == kluis.EReauthRequired:
			return redirect(w, r, st.realm.Account+"/reauth", "reauth_first")
		case err != nil:
			if kluis.ErrorCode(err) != kluis.EConflict || !p.showError(err) {
				return err
			}
			p.title("account_delete.title")
			return renderPage(w, r, p, http.StatusConflict, "account_delete")
		}
		http.SetCookie(w, clearCookie(st.realm.sessionCookie))
		return redirect(w, r, st.realm.Base+"/login", "account_deleted")
	}
}
