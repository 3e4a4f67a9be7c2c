package main

import (
	"context"
	"io"
	"net/http"
	"path/filepath"
	"strings"
	"testing"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/backups"
)

// The backup pages in Chromium (R30 R31 R32 R42, docs/UI.md, Backups): the
// operator finds the record in the navigation, in English and in Dutch,
// and what the backup holds for an organisation on its page; a member sees
// when the newest complete backup finished, in Dutch and their own time
// zone, and a manager also what each backup holds.

// seedBackupInProcess makes one backup of the site's data folder to the
// folder dir (declared as in the Netherlands), in this process while the
// site's kluis serve keeps running, with the backup engine over the
// store's areas as a kluis command opens them.
func (s *browserSite) seedBackupInProcess(dir string) kluis.Backup {
	t := s.t
	t.Helper()
	ctx := context.Background()
	c, err := newConfig(func(k string) string { return s.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = s.dir
	a, err := open(ctx, c, false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	defer a.close()
	signer, err := a.signer(ctx)
	if err != nil {
		t.Fatal(err)
	}
	operatorKey, err := age.GenerateX25519Identity()
	if err != nil {
		t.Fatal(err)
	}
	drill, err := backup.LoadOrCreateDrillIdentity(filepath.Join(s.dir, "keys", "backup-drill.key"))
	if err != nil {
		t.Fatal(err)
	}
	target, err := backup.OpenDir(dir, "NL")
	if err != nil {
		t.Fatal(err)
	}
	blobs, err := areas.ContentStore(a.db, s.dir)
	if err != nil {
		t.Fatal(err)
	}
	engine := backups.New(a.areas.Core, backups.Options{
		Targets: []backup.Target{target}, Recipients: []age.Recipient{operatorKey.Recipient()}, Drill: drill,
		Blobs: blobs, Witness: a.witness, CheckpointKey: signer.PublicKey(),
		KeyFiles: map[string]string{"root": filepath.Join(s.dir, "keys", "root"), "audit-signing.key": filepath.Join(s.dir, "keys", "audit-signing.key")},
		TmpDir:   filepath.Join(s.dir, "tmp"),
	})
	b, err := engine.Run(ctx, kluis.CLIActor)
	if err != nil || b.Status != kluis.BackupOK {
		t.Fatalf("the backup: %+v, %v", b, err)
	}
	return b
}

func TestBrowserBackupPages(t *testing.T) {
	t.Parallel()
	s := startBrowserSite(t)
	const slug = "acme"
	s.createOrgWithManager(slug)
	s.addMember(slug, browserMemEmail, browserMemName, browserMemPass)
	vault := filepath.Join(t.TempDir(), "vault-amsterdam")
	bk := s.seedBackupInProcess(vault)
	b := startBrowser(t)

	// The operator finds Backups in the navigation: the backup, its target
	// with the declared location, no drill yet.
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
	op.mustExist("#no-drills")
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
	// backup finished, in their time zone; no drill yet; the retention;
	// nothing of the target but what it declares (this site's kluis serve
	// declares no target, so neither does the page) and no holdings.
	mem := b.newPerson("the member", s.base, "nl")
	mem.setTimeZone("Europe/Amsterdam")
	signIn(mem, slug, browserMemEmail, browserMemPass)
	mem.clickLink("nav.nav", "Back-ups")
	if got := mem.path(); got != "/o/"+slug+"/backups" {
		t.Fatalf("the navigation's Back-ups leads to %s", got)
	}
	if got := mem.text("#last-drill"); got != "nog niet getest" {
		t.Errorf("the last restore test reads %q", got)
	}
	if got := mem.text("#backup-max-age"); got != "730 dagen, daarna automatisch verwijderd" {
		t.Errorf("the retention reads %q", got)
	}
	if got := mem.text("#backup-locations"); got != "Op dit platform is geen back-uplocatie ingesteld." {
		t.Errorf("the locations read %q", got)
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
