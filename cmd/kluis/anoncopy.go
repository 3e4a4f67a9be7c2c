package main

// kluis export --anonymize --out FOLDER: an anonymised copy of the instance
// for acceptance, testing and development (R39, R48; docs/OPERATIONS.md,
// "An anonymised copy"). The copy is a new instance in an empty or missing
// data folder with the embedded database: new root key, key store, audit
// signing key and chains; internal/anoncopy says what is faked, copied and
// dropped. The folder is labelled with its environment in FOLDER/environment,
// never production. The source changes in one way only: its platform chain
// records the export (instance.export_anonymised).

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/anoncopy"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

func cmdExport(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fl := c.flags("export")
	anonymize := fl.Bool("anonymize", false, "required: write an anonymised copy of the instance (fake personal values, stand-in file contents, no credentials)")
	out := fl.String("out", "", "the data `FOLDER` of the copy: empty or missing; the copy uses the embedded database there")
	env := fl.String("environment", "test", "the copy's environment, written to FOLDER/environment: acceptance, test or development (never production)")
	pos, err := parseFlags(fl, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *out == "" {
		return usageOf("export")
	}
	if !*anonymize {
		// Data leaves an instance for other uses only anonymised (R39).
		return &cliError{code: 2, msg: "an export of the instance is always anonymised: give --anonymize",
			hint: "an organisation's own export is GET /api/v1/orgs/{org}/export; a copy of everything is a backup"}
	}
	if !isCopyEnvironment(*env) {
		return &cliError{code: 2, msg: fmt.Sprintf("--environment %q is refused: an anonymised copy is acceptance, test or development, never production", *env)}
	}
	if err := checkDSN(flagSet(fl, "db"), c.DB); err != nil {
		return err
	}
	if err := checkDSN(flagSet(fl, "keys-db"), c.KeysDB); err != nil {
		return err
	}
	dir, err := filepath.Abs(*out)
	if err != nil {
		return err
	}
	if srcDir, err := filepath.Abs(c.DataDir); err == nil {
		if rel, err := filepath.Rel(srcDir, dir); err == nil && rel != ".." && !strings.HasPrefix(rel, ".."+string(filepath.Separator)) {
			return &cliError{code: 2, msg: "the copy's folder " + dir + " is inside the source's data folder",
				hint: "name a folder outside " + srcDir + " with --out"}
		}
	}
	if err := checkCopyFolder(dir); err != nil {
		return err
	}
	src, err := open(ctx, c, false, stderr)
	if err != nil {
		return err
	}
	if err := anoncopy.CheckTables(ctx, src.areas.Core); err != nil {
		src.close()
		return err
	}
	existed := true
	if _, err := os.Stat(dir); errors.Is(err, fs.ErrNotExist) {
		existed = false
	}
	rep, err := writeCopy(ctx, c, src, dir, *env, stderr)
	outcome := "success"
	if err != nil {
		outcome = "failure"
		// Leave nothing half-made behind: the folder was empty or missing.
		if existed {
			entries, _ := os.ReadDir(dir)
			for _, e := range entries {
				os.RemoveAll(filepath.Join(dir, e.Name()))
			}
		} else {
			os.RemoveAll(dir)
		}
	}
	// The record is written even when the export was interrupted.
	ctx = context.WithoutCancel(ctx)
	details := map[string]any{"environment": *env, "orgs": rep.Orgs, "users": rep.Users, "projects": rep.Projects, "files": rep.Files}
	if aerr := src.areas.Core.Write(ctx, audit.PlatformChain, func(t *sqlstore.Tx) error {
		return t.Append(ctx, audit.PlatformChain, kluis.CLIActor, "instance.export_anonymised", "", outcome, details)
	}); aerr != nil {
		return errors.Join(err, aerr, src.close())
	}
	// Checkpoint the record; unlike other commands, deliver no mail: the
	// source is left as it was but for the record of the export.
	_, cerr := src.areas.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true)
	if err = errors.Join(err, cerr, src.close()); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "anonymised copy written to %s (environment %s): %d organisations, %d people, %d groups, %d projects, %d files, %d versions\n",
		dir, *env, rep.Orgs, rep.Users, rep.Groups, rep.Projects, rep.Files, rep.Versions)
	for _, m := range rep.Managers {
		fmt.Fprintf(stdout, "organisation %s: manager %s (%s)\n", m.Slug, m.Email, m.Status)
	}
	fmt.Fprintf(stdout, "nobody can sign in yet: create an operator with 'kluis operator create --data %s', and people set a password with a password-reset link (docs/OPERATIONS.md)\n", dir)
	return nil
}

// isCopyEnvironment: a copy may be labelled with any environment but
// production.
func isCopyEnvironment(env string) bool {
	e, err := kluis.ParseEnvironment(env)
	return err == nil && e != kluis.Production && string(e) == env
}

// checkCopyFolder refuses a folder labelled production and one that holds
// anything at all (an instance, or anything else a copy could mix with).
func checkCopyFolder(dir string) error {
	if label, err := os.ReadFile(filepath.Join(dir, environmentFile)); err == nil {
		if strings.EqualFold(strings.TrimSpace(string(label)), "production") {
			return &cliError{code: 2, msg: "the folder " + dir + " is labelled production: an anonymised copy is never written there"}
		}
	}
	entries, err := os.ReadDir(dir)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return &cliError{code: 2, msg: "cannot read the folder " + dir}
	}
	if len(entries) > 0 {
		return &cliError{code: 2, msg: "the folder " + dir + " is not empty: an anonymised copy goes into an empty or missing folder",
			hint: "name a new folder with --out"}
	}
	return nil
}

// writeCopy makes the new instance in dir and copies src into it.
func writeCopy(ctx context.Context, c *config, src *app, dir, env string, stderr io.Writer) (anoncopy.Report, error) {
	var rep anoncopy.Report
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return rep, err
	}
	// The label first: the copy is never without it.
	if err := os.WriteFile(filepath.Join(dir, environmentFile), []byte(env+"\n"), 0o600); err != nil {
		return rep, err
	}
	tc := &config{
		DataDir: dir, Addr: c.Addr, Argon2: c.Argon2, LogLevel: c.LogLevel,
		DigestEvery: c.DigestEvery, JobTick: c.JobTick, MaxBodyBytes: c.MaxBodyBytes, MaxFileBytes: c.MaxFileBytes,
	}
	db, err := sqlstore.Open(ctx, dir, "")
	if err != nil {
		return rep, fmt.Errorf("the copy's database: %w", err)
	}
	if _, err := db.Migrate(ctx); err != nil {
		db.Close()
		return rep, err
	}
	dst := &app{cfg: tc, db: db, log: src.log, metrics: src.metrics}
	// The copy's platform chain starts with instance.anonymised_copy:
	// written with a bare core before the instance makes its platform key.
	if dst.keys, err = dst.openKeys(ctx); err != nil {
		db.Close()
		return rep, err
	}
	bare, err := sqlstore.New(db, sqlstore.Options{Keys: dst.keys, Log: src.log})
	if err == nil {
		err = anoncopy.StartPlatformChain(ctx, bare, env)
	}
	err = errors.Join(err, dst.keys.Close())
	dst.keys = nil
	if err == nil {
		err = dst.init(ctx)
	}
	if err != nil {
		dst.close()
		return rep, err
	}
	rep, err = anoncopy.Copy(ctx,
		anoncopy.Side{Core: src.areas.Core, Projects: src.areas.Projects},
		anoncopy.Side{Core: dst.areas.Core, Projects: dst.areas.Projects}, env)
	if err != nil {
		dst.close()
		return rep, err
	}
	// The copy's chains must verify before it is handed over.
	results, err := dst.areas.Audit.VerifyChains(ctx)
	if err == nil {
		for _, r := range results {
			if !r.OK {
				err = fmt.Errorf("the copy's audit chain %s does not verify at %d: %s", r.Chain, r.FirstBrokenSeq, r.Problem)
				break
			}
		}
	}
	if err != nil {
		dst.close()
		return rep, err
	}
	return rep, dst.finish(ctx)
}
