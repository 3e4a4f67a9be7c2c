package httpserver

import (
	"net/http"
	"time"

	"github.com/kluis/kluis"
)

// Pages of backups (R30 R31 R32 R42): the operator's record of backups and
// restore drills, what the retained backups hold for one organisation, and
// the organisation's own page — where its data is backed up, when the
// newest good backup and restore drill were, how long backups are kept.
// Customers see declared locations only, never a target's URL or an error
// (docs/UI.md, Backups).

// operatorBackupLimit is how many backups and drills the operator's page
// lists, newest first.
const operatorBackupLimit = 50

// operatorBackupsPage is what the operator's backups page shows.
type operatorBackupsPage struct {
	Backups []kluis.Backup
	Drills  []kluis.BackupDrill
	// LastGood is the newest backup every target holds; Verified the most
	// recently verified backup; LastDrill the newest drill. Nil: none.
	LastGood  *kluis.Backup
	Verified  *kluis.Backup
	LastDrill *kluis.BackupDrill
	Limit     int
	// Schedule is the next run and the retention; Alerts the open alerts
	// about backups and drills.
	Schedule kluis.BackupSchedule
	Alerts   []kluis.Alert
}

// backupAlertKinds are the alerts the backup page shows.
var backupAlertKinds = map[string]bool{kluis.AlertBackupFailed: true, kluis.AlertBackupStale: true, kluis.AlertDrillFailed: true}

// handleOperatorBackupsPage shows every operator the backups (time, kind,
// status, size, each target with its declared location, status and error,
// the last verification) and the restore drills. Read-only.
func handleOperatorBackupsPage(backups kluis.BackupService, jobs kluis.JobService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		list, err := backups.Backups(r.Context(), st.actor, operatorBackupLimit)
		if err != nil {
			return err
		}
		drills, err := backups.Drills(r.Context(), st.actor, operatorBackupLimit)
		if err != nil {
			return err
		}
		data := operatorBackupsPage{Backups: list, Drills: drills, Limit: operatorBackupLimit}
		if data.Schedule, err = backups.Schedule(r.Context(), st.actor); err != nil {
			return err
		}
		alerts, err := jobs.OpenAlerts(r.Context(), st.actor)
		if err != nil {
			return err
		}
		for _, a := range alerts {
			if backupAlertKinds[a.Kind] {
				data.Alerts = append(data.Alerts, a)
			}
		}
		for i := range list {
			b := &list[i]
			if data.LastGood == nil && b.Status == kluis.BackupOK {
				data.LastGood = b
			}
			if !b.VerifiedAt.IsZero() && (data.Verified == nil || b.VerifiedAt.After(data.Verified.VerifiedAt)) {
				data.Verified = b
			}
		}
		if len(drills) > 0 {
			data.LastDrill = &drills[0]
		}
		p.title("operator_backups.title")
		p.Wide = true
		p.Data = data
		return renderPage(w, r, p, http.StatusOK, "operator_backups")
	}
}

// holdingsPage is a table of what the retained backups hold for one
// organisation (R31): counts, never the data.
type holdingsPage struct {
	Org      kluis.Org
	Holdings []kluis.BackupHolding
}

// handleOperatorHoldingsPage shows an operator admin what each retained
// backup holds for one organisation (R31); the service refuses other
// roles.
func handleOperatorHoldingsPage(orgs kluis.OrgService, backups kluis.BackupService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		org, err := orgs.FindOrgBySlug(r.Context(), r.PathValue("org"))
		if err != nil {
			return err
		}
		list, err := backups.Holdings(r.Context(), state(r).actor, org.ID)
		if err != nil {
			return err
		}
		p.title("operator_holdings.title", org.Name)
		p.Data = holdingsPage{Org: org, Holdings: list}
		return renderPage(w, r, p, http.StatusOK, "operator_holdings")
	}
}

// orgBackupsPage is what an organisation's people see of backups.
type orgBackupsPage struct {
	// Locations are the declared locations, each once, in configuration
	// order; Undeclared says a target declares none.
	Locations  []string
	Undeclared bool
	Targets    int
	LastBackup time.Time
	LastDrill  time.Time
	MaxAgeDays int
	// Holdings is for managers (R31); ShowHoldings says they may see it.
	ShowHoldings bool
	Holdings     []kluis.BackupHolding
}

// handleOrgBackupsPage shows every person of the organisation where its
// data is backed up (declared locations only, R42), when the newest good
// backup finished and the newest good restore drill ran, and how long
// backups are kept (R31); managers also see what each backup holds.
func handleOrgBackupsPage(backups kluis.BackupService) pageFunc {
	return func(w http.ResponseWriter, r *http.Request, p *pageData) error {
		st := state(r)
		o, err := backups.Overview(r.Context(), st.actor, st.org.ID)
		if err != nil {
			return err
		}
		data := orgBackupsPage{Targets: len(o.Locations), LastBackup: o.LastBackup, LastDrill: o.LastDrill, MaxAgeDays: o.MaxAgeDays}
		seen := map[string]bool{}
		for _, l := range o.Locations {
			switch {
			case l == "":
				data.Undeclared = true
			case !seen[l]:
				seen[l] = true
				data.Locations = append(data.Locations, l)
			}
		}
		if kluis.CanSeeBackupHoldings(st.actor, st.org.ID) {
			data.ShowHoldings = true
			if data.Holdings, err = backups.Holdings(r.Context(), st.actor, st.org.ID); err != nil {
				return err
			}
		}
		p.title("org_backups.title")
		p.Data = data
		return renderPage(w, r, p, http.StatusOK, "org_backups")
	}
}

// Duration is a drill's duration as people read it: under a second, 42
// seconds, 3 minutes 5 seconds.
func (l local) Duration(d time.Duration) string {
	switch {
	case d < time.Second:
		return l.T("duration.under_second")
	case d < time.Minute:
		return l.T("duration.seconds", int(d/time.Second))
	}
	return l.T("duration.minutes", int(d/time.Minute), int(d%time.Minute/time.Second))
}

// Tone is the tag class of a backup's, copy's, verification's or drill's
// status: "ok" for good, "bad" for failed, partial or damaged, "" else.
func (l local) Tone(status string) string {
	switch status {
	case kluis.BackupOK, "intact":
		return "ok"
	case kluis.BackupFailed, kluis.BackupPartial, "damaged":
		return "bad"
	}
	return ""
}
