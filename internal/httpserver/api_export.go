package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// The organisation's own export (R9, docs/EXPORT.md): one ZIP of everything
// it holds, streamed to a manager who authenticated freshly. The API route
// and the page's button call the same service method.

// exportName is the download's file name: the slug and the day (UTC).
func exportName(slug string) string {
	return slug + "-export-" + time.Now().UTC().Format("2006-01-02") + ".zip"
}

// writeOrgExport streams the export; an error before its first byte is
// returned (the caller answers it in its own way), one after it can only
// cut the download short.
func writeOrgExport(w http.ResponseWriter, r *http.Request, export kluis.ExportService) error {
	st := state(r)
	http.NewResponseController(w).SetWriteDeadline(time.Now().Add(transferTime))
	zw := &lazyHeader{w: w, name: exportName(st.org.Slug)}
	if err := export.ExportOrg(r.Context(), st.org.ID, st.actor, zw); err != nil {
		if !zw.started {
			return err
		}
		st.log.Error("organisation export cut short", "err", err.Error())
		panic(http.ErrAbortHandler)
	}
	return nil
}

// handleExportOrg is GET /api/v1/orgs/{org}/export.
func handleExportOrg(export kluis.ExportService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		return writeOrgExport(w, r, export)
	}
}

// handleExportOrgForm is the page's export button (POST /o/{org}/export):
// without a fresh sign-in it leads to the reauth page first.
func handleExportOrgForm(export kluis.ExportService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		err := writeOrgExport(w, r, export)
		if kluis.ErrorCode(err) == kluis.EReauthRequired {
			return redirect(w, r, state(r).realm.Account+"/reauth", "reauth_first")
		}
		return err
	}
}
