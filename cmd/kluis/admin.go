package main

import (
	"archive/zip"
	"bufio"
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"strings"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/sqlstore"
)

// flagSet reports whether a flag was given on the command line.
func flagSet(fs *flag.FlagSet, name string) bool {
	found := false
	fs.Visit(func(f *flag.Flag) {
		if f.Name == name {
			found = true
		}
	})
	return found
}

// prepare parses a command's flags, checks the DSN rule and opens the app.
func prepare(ctx context.Context, c *config, fs *flag.FlagSet, args []string, migrate bool, stderr io.Writer) (*app, []string, error) {
	pos, err := parseFlags(fs, args)
	if err != nil {
		return nil, nil, err
	}
	if err := checkDSN(flagSet(fs, "db"), c.DB); err != nil {
		return nil, nil, err
	}
	if err := checkDSN(flagSet(fs, "keys-db"), c.KeysDB); err != nil {
		return nil, nil, err
	}
	a, err := open(ctx, c, migrate, stderr)
	return a, pos, err
}

// clientError turns a *kluis.Error into a message for the terminal.
func clientError(err error) error {
	var ke *kluis.Error
	if !errors.As(err, &ke) {
		return err
	}
	msg := ke.Message
	if len(ke.Fields) > 0 {
		var parts []string
		for f, p := range ke.Fields {
			parts = append(parts, f+" "+p)
		}
		msg += ": " + strings.Join(parts, "; ")
	}
	return &cliError{code: 1, msg: msg}
}

func cmdOperator(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) > 0 && args[0] != "create" {
		return cmdOperatorAccount(ctx, args, getenv, stdin, stdout, stderr)
	}
	if len(args) == 0 {
		return usageOf("operator")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("operator create")
	email := fs.String("email", "", "the operator's e-mail `ADDRESS`, with which they sign in")
	name := fs.String("name", "", "the operator's `NAME`")
	role := fs.String("role", "admin", "the operator's `ROLE`: admin (organisations, licences, operators), support (asks customers for access) or security (blocks, alarms, the platform chain)")
	pwStdin := fs.Bool("password-stdin", false, "read the password from the first line of standard input (required: passwords never come from flags)")
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 || *email == "" {
		return usageOf("operator create")
	}
	if !*pwStdin {
		return &cliError{code: 2, msg: "the password is read from standard input", hint: "add --password-stdin and pipe the password in"}
	}
	pw, err := readSecretLine(stdin)
	if err != nil {
		return err
	}
	a, _, err := prepare(ctx, c, fs, nil, false, stderr)
	if err != nil {
		return err
	}
	op, err := a.areas.Operators.CreateOperator(ctx, kluis.CLIActor, *email, *name, pw, kluis.OperatorRole(*role))
	if err != nil {
		a.close()
		return clientError(err)
	}
	fmt.Fprintf(stdout, "operator %s created\n", op.ID)
	return a.finish(ctx)
}

// readSecretLine reads one line; the trailing newline (and a CR before it)
// is not part of the secret.
func readSecretLine(r io.Reader) (string, error) {
	line, err := bufio.NewReader(io.LimitReader(r, 4096)).ReadString('\n')
	if err != nil && !errors.Is(err, io.EOF) {
		return "", fmt.Errorf("read password: %w", err)
	}
	line = strings.TrimSuffix(strings.TrimSuffix(line, "\n"), "\r")
	if line == "" {
		return "", &cliError{code: 2, msg: "no password on standard input"}
	}
	return line, nil
}

func cmdOrg(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageOf("org")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "create":
		fs := c.flags("org create")
		name := fs.String("name", "", "the organisation's `NAME`")
		managerEmail := fs.String("manager-email", "", "the e-mail `ADDRESS` of the first manager, who is invited")
		managerName := fs.String("manager-name", "", "the first manager's `NAME` (optional: they choose it when they accept)")
		lang := fs.String("language", "en", "the `LANGUAGE` of the organisation's mail: en or nl")
		fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the `URL` the invitation link starts with; default the one serve recorded, else http://127.0.0.1:8080 (or KLUIS_PUBLIC_URL)")
		a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
		if err != nil {
			return err
		}
		if len(pos) != 1 || *name == "" || *managerEmail == "" {
			a.close()
			return usageOf("org create")
		}
		org, link, err := a.areas.Orgs.CreateOrg(ctx, kluis.CLIActor, kluis.NewOrg{
			Slug: pos[0], Name: *name, Language: *lang, ManagerEmail: *managerEmail, ManagerName: *managerName,
		})
		if err != nil {
			a.close()
			return clientError(err)
		}
		fmt.Fprintln(stdout, link)
		fmt.Fprintf(stderr, "organisation %s created (%s); the invitation was mailed to the manager\n", org.Slug, org.ID)
		return a.finish(ctx)
	case "delete":
		fs := c.flags("org delete")
		confirm := fs.Bool("confirm", false, "confirm that the organisation, its people and its data are deleted for good")
		a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
		if err != nil {
			return err
		}
		if len(pos) != 1 {
			a.close()
			return usageOf("org delete")
		}
		if !*confirm {
			a.close()
			return &cliError{code: 2, msg: "deleting an organisation cannot be undone", hint: "add --confirm to delete " + pos[0]}
		}
		if err := a.areas.Orgs.DeleteOrg(ctx, kluis.CLIActor, pos[0]); err != nil {
			a.close()
			if kluis.ErrorCode(err) == kluis.ENotFound {
				return &cliError{code: 1, msg: "no organisation " + pos[0]}
			}
			return clientError(err)
		}
		fmt.Fprintf(stdout, "organisation %s deleted\n", pos[0])
		return a.finish(ctx)
	case "list":
		fs := c.flags("org list")
		a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
		if err != nil {
			return err
		}
		defer a.close()
		if len(pos) != 0 {
			return usageOf("org list")
		}
		orgs, err := a.areas.Orgs.FindOrgs(ctx, kluis.CLIActor)
		if err != nil {
			return clientError(err)
		}
		for _, o := range orgs {
			fmt.Fprintf(stdout, "%s\t%s\t%s\n", o.Slug, o.ID, o.Name)
		}
		return nil
	case "logins":
		return cmdOrgLogins(ctx, c, args[1:], stdout, stderr)
	case "reset-factors":
		return cmdOrgResetFactors(ctx, c, args[1:], stdout, stderr)
	}
	return usageError("unknown org command %q", args[0])
}

// cmdAudit verifies the audit chains: exit 0 intact, 1 broken (naming the
// chain and first broken sequence), 2 when it could not check.
func cmdAudit(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "verify" {
		return usageOf("audit verify")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("audit verify")
	slug := fs.String("org", "", "check only the chain of the organisation with this `SLUG`")
	export := fs.String("export", "", "check the audit log of an organisation's export `FILE` (a ZIP) instead, from the file alone")
	if pos, err := parseFlags(fs, args[1:]); err != nil || *export != "" {
		if err != nil {
			return err
		}
		if len(pos) != 0 || *slug != "" {
			return usageOf("audit verify")
		}
		return verifyExportFile(*export, stdout)
	}
	a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
	if hr := (*helpRequest)(nil); errors.As(err, &hr) {
		return err
	}
	if err != nil {
		// Exit 2 whatever the cause, keeping the hint (run migrate, …).
		ce := &cliError{code: 2, msg: "could not check: " + err.Error()}
		var inner *cliError
		if errors.As(err, &inner) {
			ce.hint = inner.hint
		}
		return ce
	}
	defer a.close()
	if len(pos) != 0 {
		return usageOf("audit verify")
	}
	var chains []string
	if *slug != "" {
		org, err := a.areas.Orgs.FindOrgBySlug(ctx, *slug)
		if err != nil {
			return &cliError{code: 2, msg: "could not check: no organisation " + *slug}
		}
		chains = []string{sqlstore.OrgChain(org.ID)}
	}
	results, err := a.areas.Audit.VerifyChains(ctx, chains...)
	if err != nil {
		return &cliError{code: 2, msg: "could not check: " + err.Error()}
	}
	broken := 0
	for _, r := range results {
		if r.OK {
			fmt.Fprintf(stdout, "%s: ok, %d events\n", r.Chain, r.Checked)
			continue
		}
		broken++
		fmt.Fprintf(stdout, "%s: BROKEN at sequence %d: %s\n", r.Chain, r.FirstBrokenSeq, r.Problem)
	}
	if broken > 0 {
		first := results[0]
		for _, r := range results {
			if !r.OK {
				first = r
				break
			}
		}
		return &cliError{code: 1, msg: fmt.Sprintf("audit chain %s is broken at sequence %d (%s)", first.Chain, first.FirstBrokenSeq, first.Problem)}
	}
	return nil
}

// verifyExportFile checks the audit log inside an organisation's export
// (R9, docs/EXPORT.md) with nothing but the archive: no database, no keys.
// Exit 0 intact, 1 broken, 2 when the file cannot be read as an export.
func verifyExportFile(path string, stdout io.Writer) error {
	zr, err := zip.OpenReader(path)
	if err != nil {
		return &cliError{code: 2, msg: "could not check: " + err.Error()}
	}
	defer zr.Close()
	r, err := audit.VerifyExport(&zr.Reader)
	if err != nil {
		return &cliError{code: 2, msg: "could not check: " + err.Error()}
	}
	if !r.OK {
		fmt.Fprintf(stdout, "%s: BROKEN at sequence %d: %s\n", r.Chain, r.FirstBrokenSeq, r.Problem)
		return &cliError{code: 1, msg: fmt.Sprintf("the export's audit chain %s is broken at sequence %d (%s)", r.Chain, r.FirstBrokenSeq, r.Problem)}
	}
	fmt.Fprintf(stdout, "%s: ok, %d events, checkpoints verified\n", r.Chain, r.Checked)
	return nil
}

func cmdMigrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("migrate")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usageError("migrate takes no arguments")
	}
	if err := checkDSN(flagSet(fs, "db"), c.DB); err != nil {
		return err
	}
	db, err := sqlstore.Open(ctx, c.DataDir, c.DB)
	if err != nil {
		return err
	}
	defer db.Close()
	n, err := db.Migrate(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%d migrations applied; the %s database is up to date\n", n, db.Engine)
	return nil
}

// cmdOrgLogins stops or resumes every login of one organisation, or of all
// of them (R19): the operator's switch for an incident. Stopping ends every
// session of the organisation.
func cmdOrgLogins(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("org logins")
	stop := fs.Bool("stop", false, "stop every sign-in and end every session")
	resume := fs.Bool("resume", false, "let people sign in again")
	all := fs.Bool("all", false, "every organisation of the instance instead of the one named")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if *stop == *resume || (len(pos) == 1) == *all || len(pos) > 1 {
		return usageOf("org logins")
	}
	var orgs []kluis.Org
	if *all {
		if orgs, err = a.areas.Orgs.FindOrgs(ctx, kluis.CLIActor); err != nil {
			return clientError(err)
		}
	} else {
		o, err := a.areas.Orgs.FindOrgBySlug(ctx, pos[0])
		if err != nil {
			if kluis.ErrorCode(err) == kluis.ENotFound {
				return &cliError{code: 1, msg: "no organisation " + pos[0]}
			}
			return clientError(err)
		}
		orgs = []kluis.Org{o}
	}
	for _, o := range orgs {
		ended, err := a.areas.Orgs.SetLogins(ctx, o.ID, kluis.CLIActor, *resume)
		if err != nil {
			return clientError(err)
		}
		if *stop {
			fmt.Fprintf(stdout, "%s: logins stopped, %d sessions ended\n", o.Slug, ended)
		} else {
			fmt.Fprintf(stdout, "%s: logins resumed\n", o.Slug)
		}
	}
	return nil
}
