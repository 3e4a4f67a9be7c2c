package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// backupOverviewJSON is the answer of GET /api/v1/orgs/{org}/backups: where
// the organisation's data is backed up and when (R31 R32 R42). Locations
// are the declared locations, one per configured target in order, "" for a
// target that declares none; never a target's address.
type backupOverviewJSON struct {
	Locations  []string   `json:"locations"`
	LastBackup *time.Time `json:"last_backup"`
	LastDrill  *time.Time `json:"last_drill"`
	MaxAgeDays int        `json:"max_age_days"`
}

// handleBackupOverview answers every person of the organisation what its
// backup page shows: declared locations, when the newest complete backup
// finished and the newest good restore drill ran, and how long backups are
// kept.
func handleBackupOverview(backups kluis.BackupService) handlerFunc {
	return func(w http.ResponseWriter, r *http.Request) error {
		st := state(r)
		o, err := backups.Overview(r.Context(), st.actor, st.org.ID)
		if err != nil {
			return err
		}
		out := backupOverviewJSON{Locations: []string{}, MaxAgeDays: o.MaxAgeDays}
		out.Locations = append(out.Locations, o.Locations...)
		if !o.LastBackup.IsZero() {
			t := o.LastBackup.UTC()
			out.LastBackup = &t
		}
		if !o.LastDrill.IsZero() {
			t := o.LastDrill.UTC()
			out.LastDrill = &t
		}
		writeJSON(w, http.StatusOK, out)
		return nil
	}
}
