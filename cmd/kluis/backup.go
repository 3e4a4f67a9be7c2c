package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"filippo.io/age"
	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore/backups"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
)

// newBackupConfig reads the backups' settings (docs/OPERATIONS.md, Backups).
func newBackupConfig(env func(string) string) (backupConfig, error) {
	b := backupConfig{
		Targets:       env("KLUIS_BACKUP_TARGETS"),
		Recipients:    env("KLUIS_BACKUP_RECIPIENTS"),
		DrillIdentity: env("KLUIS_BACKUP_DRILL_IDENTITY"),
		Target: backup.TargetConfig{
			SFTPHostKey: env("KLUIS_BACKUP_SFTP_HOSTKEY"),
			SFTPKeyFile: env("KLUIS_BACKUP_SFTP_KEY_FILE"),
			S3AccessKey: env("KLUIS_BACKUP_S3_ACCESS_KEY"),
			S3SecretKey: env("KLUIS_BACKUP_S3_SECRET_KEY"),
		},
		Hour:       2,
		KeysMaxAge: backup.KeysMaxAge,
	}
	if v := env("KLUIS_BACKUP_SCHEDULE"); v != "" {
		h, m, ok := strings.Cut(v, ":")
		hh, err1 := strconv.Atoi(h)
		mm, err2 := strconv.Atoi(m)
		if !ok || err1 != nil || err2 != nil || hh < 0 || hh > 23 || mm < 0 || mm > 59 || len(m) != 2 {
			return b, &cliError{code: 2, msg: "KLUIS_BACKUP_SCHEDULE must be a time of day HH:MM (UTC), e.g. 02:00"}
		}
		b.Hour, b.Minute = hh, mm
	}
	maxAge, err := backup.ParseMaxAge(env("KLUIS_BACKUP_MAX_AGE"))
	if err != nil {
		return b, &cliError{code: 2, msg: "KLUIS_BACKUP_MAX_AGE: " + strings.TrimPrefix(err.Error(), "backup: ")}
	}
	b.Retention = backup.DefaultRetention
	b.Retention.MaxAge = maxAge
	if v := env("KLUIS_BACKUP_RETENTION"); v != "" {
		if b.Retention, err = backup.ParseRetention(v, maxAge); err != nil {
			return b, &cliError{code: 2, msg: "KLUIS_BACKUP_RETENTION: " + strings.TrimPrefix(err.Error(), "backup: ")}
		}
	}
	if v := env("KLUIS_BACKUP_KEYS_MAX_AGE"); v != "" {
		d, err := backup.ParseMaxAge(v)
		if err != nil || d > maxAge {
			return b, &cliError{code: 2, msg: "KLUIS_BACKUP_KEYS_MAX_AGE must be days like 30d, at most KLUIS_BACKUP_MAX_AGE"}
		}
		b.KeysMaxAge = d
	}
	if _, err := backup.ParseRecipients(b.Recipients); err != nil {
		return b, &cliError{code: 2, msg: "KLUIS_BACKUP_RECIPIENTS: " + strings.TrimPrefix(err.Error(), "backup: ")}
	}
	return b, nil
}

// backupOptions opens what the backup engine needs: targets, recipients,
// the drill key (made on first use in DATA/keys unless
// KLUIS_BACKUP_DRILL_IDENTITY names one) and the key files. Without
// targets the engine only reads its record.
func (a *app) backupOptions() (backups.Options, error) {
	c := a.cfg
	o := backups.Options{
		Retention: c.Backup.Retention, KeysMaxAge: c.Backup.KeysMaxAge, Log: a.log, Hour: c.Backup.Hour, Minute: c.Backup.Minute,
		TmpDir: filepath.Join(c.DataDir, "tmp", "backup"),
		KeyFiles: map[string]string{
			"root":              c.rootKeyPath(),
			"audit-signing.key": filepath.Join(c.DataDir, "keys", "audit-signing.key"),
		},
	}
	if c.Backup.Targets == "" {
		return o, nil
	}
	var err error
	if o.Targets, err = backup.OpenTargets(c.Backup.Targets, c.Backup.Target); err != nil {
		return o, &cliError{code: 2, msg: "KLUIS_BACKUP_TARGETS: " + strings.TrimPrefix(err.Error(), "backup: ")}
	}
	if o.Recipients, err = backup.ParseRecipients(c.Backup.Recipients); err != nil || len(o.Recipients) == 0 {
		return o, &cliError{code: 2, msg: "KLUIS_BACKUP_TARGETS is set but KLUIS_BACKUP_RECIPIENTS names no age public key",
			hint: "make a key pair with age-keygen on a machine of your own, keep the identity offline, and set its public key"}
	}
	if o.Drill, err = a.drillIdentity(); err != nil {
		return o, err
	}
	return o, nil
}

func (a *app) drillIdentity() (*age.X25519Identity, error) {
	path := a.cfg.Backup.DrillIdentity
	if path == "" {
		path = filepath.Join(a.cfg.DataDir, "keys", "backup-drill.key")
	}
	id, err := backup.LoadOrCreateDrillIdentity(path)
	if err != nil {
		return nil, &cliError{code: 2, msg: "KLUIS_BACKUP_DRILL_IDENTITY: " + strings.TrimPrefix(err.Error(), "backup: ")}
	}
	return id, nil
}

// cmdBackup is the operator's work on backups.
func cmdBackup(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageOf("backup")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "run":
		return cmdBackupRun(ctx, c, args[1:], stdout, stderr)
	case "list":
		return cmdBackupList(ctx, c, args[1:], stdout, stderr)
	case "verify":
		return cmdBackupVerify(ctx, c, args[1:], stdout, stderr)
	case "delete":
		return cmdBackupDelete(ctx, c, args[1:], stdout, stderr)
	case "restore":
		return cmdBackupRestore(ctx, c, args[1:], stdout, stderr)
	case "drill":
		return cmdBackupDrill(ctx, c, args[1:], stdout, stderr)
	}
	return usageError("unknown backup command %q", args[0])
}

// needTargets refuses a backup command on an instance without targets.
func needTargets(c *config) error {
	if c.Backup.Targets == "" {
		return &cliError{code: 2, msg: "no backup targets: set KLUIS_BACKUP_TARGETS and KLUIS_BACKUP_RECIPIENTS (docs/OPERATIONS.md, Backups)"}
	}
	return nil
}

func cmdBackupRun(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup run")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		a.close()
		return usageOf("backup run")
	}
	if err := needTargets(c); err != nil {
		a.close()
		return err
	}
	b, runErr := a.areas.Backups.Run(ctx, kluis.CLIActor)
	for _, cp := range b.Copies {
		line := fmt.Sprintf("%s\t%s\t%s\t%d bytes", cp.Target, orDash(cp.Location), cp.Status, cp.Bytes)
		if cp.Error != "" {
			line += "\t" + cp.Error
		}
		fmt.Fprintln(stdout, line)
	}
	if b.ID != "" {
		fmt.Fprintln(stdout, b.ID)
	}
	if err := a.finish(ctx); err != nil {
		return err
	}
	if runErr != nil {
		return &cliError{code: 1, msg: runErr.Error()}
	}
	return nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func cmdBackupList(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup list")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if len(pos) != 0 {
		return usageOf("backup list")
	}
	list, err := a.areas.Backups.Backups(ctx, kluis.CLIActor, 0)
	if err != nil {
		return err
	}
	for _, b := range list {
		var targets []string
		for _, cp := range b.Copies {
			targets = append(targets, cp.Target+"="+cp.Status)
		}
		verified := "never verified"
		if !b.VerifiedAt.IsZero() {
			verified = b.Verified + " " + b.VerifiedAt.UTC().Format(time.RFC3339)
		}
		fmt.Fprintf(stdout, "%s\t%s\t%s\t%s\t%d\t%s\t%s\n", b.ID, b.StartedAt.UTC().Format(time.RFC3339), orDash(b.Kind), b.Status, b.Size,
			orDash(strings.Join(targets, ",")), verified)
	}
	return nil
}

func cmdBackupVerify(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup verify")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		a.close()
		return usageOf("backup verify")
	}
	if err := needTargets(c); err != nil {
		a.close()
		return err
	}
	v, err := a.areas.Backups.Verify(ctx, kluis.CLIActor, pos[0])
	if err != nil {
		a.close()
		if errors.Is(err, backups.ErrUnknownBackup) {
			return &cliError{code: 2, msg: "not_found: no target holds backup " + pos[0]}
		}
		return &cliError{code: 2, msg: "the backup could not be verified: " + err.Error()}
	}
	for _, t := range a.areas.Backups.Targets() {
		fmt.Fprintf(stdout, "%s\t%s\n", t.Name(), v.Targets[t.Name()])
	}
	if err := a.finish(ctx); err != nil {
		return err
	}
	if v.Damaged {
		return &cliError{code: 1, msg: "backup " + v.ID + " is damaged"}
	}
	fmt.Fprintf(stdout, "%s intact: %d objects checked\n", v.ID, v.Objects)
	return nil
}

func cmdBackupDelete(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup delete")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		a.close()
		return usageOf("backup delete")
	}
	if err := needTargets(c); err != nil {
		a.close()
		return err
	}
	if err := a.areas.Backups.Delete(ctx, kluis.CLIActor, pos[0]); err != nil {
		a.close()
		if errors.Is(err, backups.ErrUnknownBackup) {
			return &cliError{code: 1, msg: "not_found: no target holds backup " + pos[0]}
		}
		return err
	}
	fmt.Fprintf(stdout, "%s deleted from every target\n", pos[0])
	return a.finish(ctx)
}

// cmdBackupRestore restores a whole instance into an empty place (it does
// not open the configured instance: after a disaster there is none), or one
// organisation into this instance.
func cmdBackupRestore(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup restore")
	identity := fs.String("identity", "", "the age identity `FILE` that opens the backup (the operator's offline key)")
	into := fs.String("into", "", "restore the whole instance into this empty or missing data `FOLDER`")
	intoDB := fs.String("into-db", "", "and its data into this empty PostgreSQL database (`DSN`, without a password: use a pgpass file)")
	slug := fs.String("org", "", "restore one organisation (`SLUG`) into this instance")
	yes := fs.Bool("yes", false, "confirm that the organisation's data is replaced by the backup's")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *identity == "" || (*into == "") == (*slug == "") || (*intoDB != "" && *into == "") {
		return usageOf("backup restore")
	}
	if err := checkDSN(*intoDB != "", *intoDB); err != nil {
		return err
	}
	if err := needTargets(c); err != nil {
		return err
	}
	if err := backup.CheckID(pos[0]); err != nil {
		return &cliError{code: 2, msg: "not_found: " + pos[0] + " is not a backup id"}
	}
	ids, err := backup.LoadIdentities(*identity)
	if err != nil {
		return &cliError{code: 2, msg: strings.TrimPrefix(err.Error(), "backup: ")}
	}
	targets, err := backup.OpenTargets(c.Backup.Targets, c.Backup.Target)
	if err != nil {
		return &cliError{code: 2, msg: "KLUIS_BACKUP_TARGETS: " + strings.TrimPrefix(err.Error(), "backup: ")}
	}
	defer func() {
		for _, t := range targets {
			t.Close()
		}
	}()
	if *slug != "" {
		return restoreOrg(ctx, c, targets, ids, pos[0], *slug, *yes, stdout, stderr)
	}
	// With KLUIS_CONTENT_STORE set, the chunks go to that bucket, which the
	// restored instance will use.
	dest := backups.Into{DataDir: *into, DSN: *intoDB}
	if b, err := c.Content.bucket(); err != nil {
		return err
	} else if b != nil {
		dest.Blobs = content.NewS3(b)
	}
	var rep backups.Restored
	var from backup.Target
	var errs []string
	for _, t := range targets {
		rep, err = backups.RestoreInstance(ctx, t, ids, pos[0], dest)
		if err == nil {
			from = t
			break
		}
		if !errors.Is(err, backup.ErrNotExist) {
			return &cliError{code: 1, msg: "restore from " + t.Name() + " failed: " + err.Error(),
				hint: "the folder may hold a partial restore: empty it before trying again"}
		}
		errs = append(errs, t.Name()+": "+err.Error())
	}
	if from == nil {
		return &cliError{code: 2, msg: "not_found: no target holds backup " + pos[0] + " (" + strings.Join(errs, "; ") + ")"}
	}
	// Open the restored instance, record the restore in its platform chain
	// and check every chain.
	rc := *c
	rc.DataDir, rc.DB, rc.KeysDB, rc.RootKeyFile = *into, *intoDB, "", ""
	rc.Backup = backupConfig{Retention: c.Backup.Retention, KeysMaxAge: c.Backup.KeysMaxAge}
	a, err := open(ctx, &rc, false, stderr)
	if err != nil {
		return err
	}
	details := map[string]any{"from": from.Name(), "keys": rep.KeysID, "chunks": rep.Chunks,
		"erased_users": rep.ErasedUsers, "erased_projects": rep.ErasedProjects}
	if err := a.areas.Backups.RecordRestore(ctx, kluis.CLIActor, pos[0], details); err != nil {
		a.close()
		return err
	}
	results, err := a.areas.Audit.VerifyChains(ctx)
	if err != nil {
		a.close()
		return err
	}
	broken := 0
	for _, r := range results {
		if !r.OK {
			broken++
			fmt.Fprintf(stdout, "chain %s broken at %d: %s\n", r.Chain, r.FirstBrokenSeq, r.Problem)
		}
	}
	fmt.Fprintf(stdout, "restored backup %s from %s into %s: %d organisations, %d chunks; %d people and %d projects erased since stay erased; %d audit chains verified\n",
		pos[0], from.Name(), *into, len(rep.Manifest.Orgs), rep.Chunks, rep.ErasedUsers, rep.ErasedProjects, len(results)-broken)
	if err := a.finish(ctx); err != nil {
		return err
	}
	if broken > 0 {
		return &cliError{code: 1, msg: fmt.Sprintf("%d audit chains do not verify after the restore", broken)}
	}
	fmt.Fprintln(stdout, "everyone signs in again: sessions are not restored")
	return nil
}

// restoreOrg restores one organisation into this instance (R32): its
// data becomes the backup's, its audit chain is kept and records
// org.restore, people erased since stay erased.
func restoreOrg(ctx context.Context, c *config, targets []backup.Target, ids []age.Identity, id, slug string, yes bool, stdout, stderr io.Writer) error {
	if !yes {
		return &cliError{code: 2, msg: "restoring " + slug + " replaces its people, projects and files with the backup's",
			hint: "run again with --yes to confirm; its audit log is kept and records the restore"}
	}
	a, err := open(ctx, c, false, stderr)
	if err != nil {
		return err
	}
	rep, err := a.areas.Backups.RestoreOrgFromTargets(ctx, kluis.CLIActor, ids, id, slug)
	if err != nil {
		a.close()
		if errors.Is(err, backups.ErrUnknownBackup) {
			return &cliError{code: 2, msg: "not_found: no target holds backup " + id}
		}
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return &cliError{code: 1, msg: "not_found: " + err.Error()}
		}
		return &cliError{code: 1, msg: "restoring " + slug + " failed, nothing changed: " + err.Error()}
	}
	fmt.Fprint(stdout, rep.String())
	return a.finish(ctx)
}

// cmdBackupDrill restores the newest backup (or --oldest, the oldest
// retained) into a scratch folder, checks it and records the result.
func cmdBackupDrill(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("backup drill")
	identity := fs.String("identity", "", "the age identity `FILE` to open the backup with; default the drill key")
	oldest := fs.Bool("oldest", false, "drill the oldest retained backup instead of the newest")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		a.close()
		return usageOf("backup drill")
	}
	if err := needTargets(c); err != nil {
		a.close()
		return err
	}
	var ids []age.Identity
	if *identity != "" {
		if ids, err = backup.LoadIdentities(*identity); err != nil {
			a.close()
			return &cliError{code: 2, msg: strings.TrimPrefix(err.Error(), "backup: ")}
		}
	}
	d, err := a.drill(ctx, kluis.CLIActor, ids, *oldest)
	if err != nil {
		a.close()
		return err
	}
	fmt.Fprintf(stdout, "drill of %s: %s in %s — %s\n", d.BackupID, d.Outcome, d.Duration.Round(time.Millisecond), d.Detail)
	if err := a.finish(ctx); err != nil {
		return err
	}
	if d.Outcome != "ok" {
		return &cliError{code: 1, msg: "the restore drill failed"}
	}
	return nil
}

// drill restores a backup into a scratch folder under DATA/tmp, checks it
// (row counts and chunk checksums against the manifest, every audit chain
// and checkpoint, a key for every organisation) and records the result
// (R32). A drill that cannot find a backup is recorded as failed too.
func (a *app) drill(ctx context.Context, actor kluis.Actor, ids []age.Identity, oldest bool) (kluis.BackupDrill, error) {
	eng := a.areas.Backups
	if len(ids) == 0 {
		d, err := a.drillIdentity()
		if err != nil {
			return kluis.BackupDrill{}, err
		}
		ids = []age.Identity{d}
	}
	start := time.Now()
	d := kluis.BackupDrill{At: a.areas.Core.Now()}
	fail := func(format string, args ...any) (kluis.BackupDrill, error) {
		d.Outcome, d.Detail, d.Duration = "failed", fmt.Sprintf(format, args...), time.Since(start)
		return d, eng.RecordDrill(ctx, actor, &d)
	}
	t, id, err := eng.DrillCandidate(ctx, oldest)
	if err != nil {
		return fail("no backup to drill: %v", err)
	}
	d.BackupID = id
	scratch, err := os.MkdirTemp(filepath.Join(a.cfg.DataDir, "tmp"), "drill-")
	if err != nil {
		if err = os.MkdirAll(filepath.Join(a.cfg.DataDir, "tmp"), 0o700); err == nil {
			scratch, err = os.MkdirTemp(filepath.Join(a.cfg.DataDir, "tmp"), "drill-")
		}
		if err != nil {
			return d, err
		}
	}
	defer os.RemoveAll(scratch)
	into := filepath.Join(scratch, "data")
	rep, err := backups.RestoreInstance(ctx, t, ids, id, backups.Into{DataDir: into})
	if err != nil {
		return fail("restore from %s failed: %v", t.Name(), err)
	}
	rc := *a.cfg
	rc.DataDir, rc.DB, rc.KeysDB, rc.RootKeyFile = into, "", "", ""
	rc.Backup = backupConfig{Retention: a.cfg.Backup.Retention, KeysMaxAge: a.cfg.Backup.KeysMaxAge}
	r, err := open(ctx, &rc, false, io.Discard)
	if err != nil {
		return fail("the restored instance does not open: %v", err)
	}
	defer r.close()
	results, err := r.areas.Audit.VerifyChains(ctx)
	if err != nil {
		return fail("the audit chains could not be checked: %v", err)
	}
	for _, res := range results {
		if !res.OK {
			return fail("audit chain %s broken at %d: %s", res.Chain, res.FirstBrokenSeq, res.Problem)
		}
	}
	for _, o := range rep.Manifest.Orgs {
		live, err := r.keys.HasLiveKey(ctx, keys.OrgKey(o.Org))
		if err != nil {
			return fail("the keys of organisation %s could not be read: %v", o.Org, err)
		}
		if !live {
			return fail("organisation %s has no live key in the restored key store", o.Org)
		}
	}
	rows := int64(0)
	for _, n := range rep.Tables {
		rows += n
	}
	d.Outcome, d.Duration = "ok", time.Since(start)
	d.Detail = fmt.Sprintf("%d tables, %d rows, %d chunks checked; %d audit chains verified; keys of %d organisations present",
		len(rep.Tables), rows, rep.Chunks, len(results), len(rep.Manifest.Orgs))
	return d, eng.RecordDrill(ctx, actor, &d)
}

// backupJobs are the scheduled backup work of kluis serve, when targets are
// configured (DESIGN §9): the daily backup at KLUIS_BACKUP_SCHEDULE followed
// by expiry, an hourly check that the newest good backup is at most 26
// hours old, a weekly restore drill of the newest backup and a monthly one
// of the oldest retained backup.
func (a *app) backupJobs() []job {
	if len(a.areas.Backups.Targets()) == 0 {
		return nil
	}
	b := a.cfg.Backup
	return []job{
		{name: "backup", schedule: jobs.DailyAt(b.Hour, b.Minute), lease: 2 * time.Hour, run: a.backupJob},
		{name: "backup_watch", schedule: jobs.Every(time.Hour), lease: 5 * time.Minute, run: a.backupWatchJob},
		{name: "backup_drill", schedule: jobs.Every(7 * 24 * time.Hour), lease: 2 * time.Hour, run: a.drillJob(false)},
		{name: "backup_drill_oldest", schedule: jobs.Every(30 * 24 * time.Hour), lease: 2 * time.Hour, run: a.drillJob(true)},
	}
}

// maxBackupAge is how old the newest good backup may be before the
// operator is alerted: a day and some slack (R30: at most a day lost).
const maxBackupAge = 26 * time.Hour

// backupJob makes the daily backup and then expires what retention no
// longer keeps. A target that did not get the backup raises backup_failed
// naming it; a target that got it settles that alert.
func (a *app) backupJob(ctx context.Context) (string, error) {
	eng := a.areas.Backups
	b, runErr := eng.Run(ctx, kluis.SystemActor)
	for _, cp := range b.Copies {
		if cp.Status == "ok" {
			if _, err := a.areas.Jobs.SettleAlert(ctx, kluis.AlertBackupFailed, cp.Target); err != nil {
				return "", err
			}
			continue
		}
		if _, _, err := a.areas.Jobs.RaiseAlert(ctx, kluis.AlertBackupFailed, cp.Target, "backup "+b.ID+" did not reach this target: "+cp.Error); err != nil {
			return "", err
		}
	}
	if runErr != nil {
		if len(b.Copies) == 0 {
			if _, _, err := a.areas.Jobs.RaiseAlert(ctx, kluis.AlertBackupFailed, "backup", runErr.Error()); err != nil {
				return "", err
			}
		}
		return "", runErr
	}
	if _, err := a.areas.Jobs.SettleAlert(ctx, kluis.AlertBackupFailed, "backup"); err != nil {
		return "", err
	}
	if _, err := a.areas.Jobs.SettleAlert(ctx, kluis.AlertBackupStale, "backup"); err != nil {
		return "", err
	}
	expired, err := eng.Expire(ctx)
	if err != nil {
		return "", fmt.Errorf("backup %s made; expiry failed: %w", b.ID, err)
	}
	return fmt.Sprintf("backup %s (%s, %d bytes, %d targets); %d expired", b.ID, b.Kind, b.Size, len(b.Copies), len(expired)), nil
}

// backupWatchJob alerts when the newest good backup is older than
// maxBackupAge (or there is none a day after backups were configured).
func (a *app) backupWatchJob(ctx context.Context) (string, error) {
	newest, err := a.areas.Backups.NewestGood(ctx)
	if err != nil {
		return "", err
	}
	now := a.areas.Core.Now()
	if !newest.IsZero() && now.Sub(newest) <= maxBackupAge {
		_, err := a.areas.Jobs.SettleAlert(ctx, kluis.AlertBackupStale, "backup")
		return "the newest good backup finished " + now.Sub(newest).Round(time.Minute).String() + " ago", err
	}
	if newest.IsZero() {
		// The first backup comes at the next scheduled time: give it a day.
		first, err := a.areas.Backups.FirstAttempt(ctx)
		if err != nil {
			return "", err
		}
		if first.IsZero() || now.Sub(first) <= maxBackupAge {
			return "no backup yet", nil
		}
	}
	detail := "no good backup in the last 26 hours"
	if _, _, err := a.areas.Jobs.RaiseAlert(ctx, kluis.AlertBackupStale, "backup", detail); err != nil {
		return "", err
	}
	a.log.Error("backups are stale", "newest_good", newest)
	return detail, nil
}

// drillJob is the scheduled restore drill; a failed drill raises
// drill_failed, a good one settles it.
func (a *app) drillJob(oldest bool) func(ctx context.Context) (string, error) {
	return func(ctx context.Context) (string, error) {
		// Before the first complete backup there is nothing to rehearse: at
		// the first start the drills would otherwise race the first backup
		// and raise drill_failed. The first drill comes a period later.
		if newest, err := a.areas.Backups.NewestGood(ctx); err != nil {
			return "", err
		} else if newest.IsZero() {
			return "no complete backup to drill yet", nil
		}
		d, err := a.drill(ctx, kluis.SystemActor, nil, oldest)
		if err != nil {
			return "", err
		}
		subject := "newest backup"
		if oldest {
			subject = "oldest backup"
		}
		if d.Outcome != "ok" {
			if _, _, err := a.areas.Jobs.RaiseAlert(ctx, kluis.AlertDrillFailed, subject, d.Detail); err != nil {
				return "", err
			}
			return "", errors.New("the drill of " + d.BackupID + " failed: " + d.Detail)
		}
		_, err = a.areas.Jobs.SettleAlert(ctx, kluis.AlertDrillFailed, subject)
		return fmt.Sprintf("drill of %s ok in %s", d.BackupID, d.Duration.Round(time.Millisecond)), err
	}
}
