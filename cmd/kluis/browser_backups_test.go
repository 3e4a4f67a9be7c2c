package main

import (
	"net/http"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/sqlstore"
)

// The backup pages in Chromium (R30 R31 R32 R42, docs/UI.md, Backups): the
// operator finds the record in the navigation, in English and in Dutch,
// and what the backup holds for an organisation on its page; a member sees
// when the newest complete backup finished, in Dutch and their own time
// zone, and a manager also what each backup holds.

// TestBrowserBackupPages runs kluis serve with a backup target, as an
// operator would: its scheduler makes the first backup at start (and skips
// the drill: nothing to rehearse yet); once the organisation has its
// people, the operator makes a backup and a drill from the command line.
func TestBrowserBackupPages(t *testing.T) {
	t.Parallel()
	operatorKey, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	vault := filepath.Join(t.TempDir(), "vault-amsterdam")
	s := startBrowserSiteEnv(t, map[string]string{
		"KLUIS_BACKUP_TARGETS":    "file://" + vault + "?location=NL",
		"KLUIS_BACKUP_RECIPIENTS": operatorKey.Recipient().String(),
	})
	waitFor(t, patience, "the backup kluis serve makes at start", func() bool {
		return strings.Count(mustCLI(t, s.env, "", "backup", "list", "--data", s.dir).stdout, "\n") == 1
	})
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	out := strings.Split(strings.TrimSpace(mustCLI(t, s.env, "", "backup", "run", "--data", s.dir).stdout), "\n")
	bk := kluis.Backup{ID: out[len(out)-1]}
	finished := queryStrings(t, sqlstore.SQLite, s.dir, "", `SELECT finished_at FROM backups WHERE id = '`+bk.ID+`'`)
	if len(finished) != 1 {
		t.Fatalf("backup %q is not recorded", bk.ID)
	}
	micros, err := strconv.ParseInt(finished[0], 10, 64)
	if err != nil {
		t.Fatal(err)
	}
	bk.FinishedAt = time.UnixMicro(micros)
	if r := mustCLI(t, s.env, "", "backup", "drill", "--data", s.dir); !strings.Contains(r.stdout, bk.ID) {
		t.Fatalf("the drill did not rehearse the newest backup %s:\n%s", bk.ID, r)
	}
	b := startBrowser(t)

	// The operator finds Backups in the navigation: the backup, its target
	// with the declared location, the drill.
	op := b.newPerson("the operator", s.base, "en")
	signInOperator(t, op)
	op.open("/operator")
	op.clickLink("nav.nav", "Backups")
	if got := op.path(); got != "/operator/backups" {
		t.Fatalf("the navigation's Backups leads to %s", got)
	}
	row := op.text(`table#backups tr[data-backup="` + bk.ID + `"]`)
	for _, want := range []string{"full", "complete", "NL", "stored", "file://" + vault} {
		if !strings.Contains(row, want) {
			t.Errorf("the backup's row reads %q, want %q in it", row, want)
		}
	}
	if got := op.text(`table#drills tr[data-outcome="ok"]`); !strings.Contains(got, bk.ID) || !strings.Contains(got, "restored and checked") {
		t.Errorf("the drill's row reads %q, want the backup %s restored and checked", got, bk.ID)
	}
	op.checkPage("operator-backups")

	// In Dutch.
	if resp := op.click(`form#lang button[value="nl"]`); resp.Status != http.StatusOK || op.path() != "/operator/backups" {
		t.Fatalf("switch to Dutch: got %d at %s", resp.Status, op.path())
	}
	if got := op.text("h1"); got != "Back-ups en hersteltests" {
		t.Errorf("the Dutch heading reads %q", got)
	}
	if got := op.text(`table#backups tr[data-backup="` + bk.ID + `"]`); !strings.Contains(got, "compleet") || !strings.Contains(got, "opgeslagen") {
		t.Errorf("the Dutch row reads %q", got)
	}
	op.checkPage("operator-backups-nl")

	// What the backup holds for the organisation, from its page: counts.
	op.open("/operator/orgs/" + slug)
	op.click("#holdings-link")
	if got := op.path(); got != "/operator/orgs/"+slug+"/backups" {
		t.Fatalf("the holdings link leads to %s", got)
	}
	held := op.text(`table#holdings tr[data-backup="` + bk.ID + `"]`)
	if strings.Contains(held, browserMemName) || strings.Contains(held, browserMemEmail) {
		t.Errorf("the holdings row reads %q, want counts only", held)
	}
	if got := op.text(`table#holdings tr[data-backup="` + bk.ID + `"] td:nth-child(2)`); got != "2" {
		t.Errorf("the backup holds %q people of the organisation, want 2", got)
	}
	op.checkPage("operator-holdings-nl")

	// The member, in Dutch and in Amsterdam: when the newest complete
	// backup finished and when it was last rehearsed, in their time zone;
	// the retention; nothing of the target but the location it declares,
	// and no holdings.
	mem := b.newPerson("the member", s.base, "nl")
	mem.setTimeZone("Europe/Amsterdam")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.clickLink("nav.nav", "Back-ups")
	if got := mem.path(); got != "/o/"+slug+"/backups" {
		t.Fatalf("the navigation's Back-ups leads to %s", got)
	}
	if got := evaluate[bool](mem, `document.querySelector("#last-drill time") !== null`); !got {
		t.Errorf("the last restore test reads %q, want when it was", mem.text("#last-drill"))
	}
	if got := mem.text("#backup-max-age"); got != "730 dagen, daarna automatisch verwijderd" {
		t.Errorf("the retention reads %q", got)
	}
	if got := mem.text("#backup-locations"); got != "NL" {
		t.Errorf("the locations read %q, want the declared NL", got)
	}
	main := mem.text("main")
	if strings.Contains(main, vault) || strings.Contains(main, "file://") || strings.Contains(main, bk.ID) {
		t.Errorf("the member's page shows the target or the backup's id: %q", main)
	}
	if evaluate[bool](mem, `document.querySelector("#holdings") !== null`) {
		t.Errorf("the member's page shows what the backups hold; only managers see that")
	}
	checkTimesShownIn(t, mem, "Europe/Amsterdam", dutchMonths)
	if got := evaluate[string](mem, `document.querySelector("#last-backup time").dateTime`); got != bk.FinishedAt.UTC().Format("2006-01-02T15:04:05Z") {
		t.Errorf("the newest complete backup is %q, want %s", got, bk.FinishedAt.UTC())
	}
	mem.checkPage("backups-nl")

	// The manager, in English: also what each backup holds.
	mgr := b.newPerson("the manager", s.base, "en")
	signIn(mgr, slug, browserMgrEmail, browserMgrPass)
	mgr.clickLink("nav.nav", "Backups")
	if got := mgr.text(`table#holdings tr[data-backup="` + bk.ID + `"] td:nth-child(2)`); got != "2" {
		t.Errorf("the manager's holdings row counts %q people, want 2", got)
	}
	mgr.checkPage("backups")
}
