package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// A person's rights over their own data (R4, R5, R34;
// docs/PERSONAL-EXPORT.md): their export, a manager's export of one of
// their people, and the erasure of one's own account. The API routes and
// the pages' buttons call the same service methods.

// personalExportName is the download's file name: the organisation's slug
// and the day (UTC), never a name, address or id of the person.
func personalExportName(slug string) string {
	return slug + "-personal-export-" + time.Now().UTC().Format("2006-01-02") + ".zip"
}

// writePersonalExport streams one person's export (id "" for the caller's
// own); an error before its first byte is returned, one after it can only
// cut the download short.
func writePersonalExport(w http.ResponseWriter, r *http.Request, personal kluis.PersonalDataService, id kluis.UserID) error {
	st := state(r)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
	zw := &lazyHeader{w: w, name: personalExportName(st.org.Slug)}
	var err error
	if id == "" {
		err = personal.ExportMe(r.Context(), st.org.ID, st.actor, zw)
	} else {
		err = personal.ExportUser(r.Context(), st.org.ID, st.actor, id, zw)
	}
	if err != nil {
		if !zw.started {
			return err
		}
		st.log.Error("personal export cut short", "err", err.Error())
		panic(http.ErrAbortHandler)
	}
	return nil
}

// handleExportMe is GET /api/v1/orgs/{org}/me/export.
func handleExportMe(personal kluis.PersonalDataService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return writePersonalExport(w, r, personal, "")
	}
}

// handleExportUser is GET /api/v1/orgs/{org}/users/{id}/export.
func handleExportUser(personal kluis.PersonalDataService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		id := userID(r)
		if id == "" {
			return kluis.ErrNotFound
		}
		return writePersonalExport(w, r, personal, id)
	}
}

// handleEraseMe is DELETE /api/v1/orgs/{org}/me: 204, and the session
// cookie (if any) is cleared with the session it named.
func handleEraseMe(personal kluis.PersonalDataService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		if err := personal.EraseMe(r.Context(), st.org.ID, st.actor); err != nil {
			return err
		}
		http.SetCookie(w, clearCookie(st.realm.sessionCookie))
		w.WriteHeader(http.StatusNoContent)
		return nil
	}
}
