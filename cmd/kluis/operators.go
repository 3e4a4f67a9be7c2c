package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kluis/kluis"
)

// cmdOperatorAccount recovers operator accounts (issue 5 item 8): a new
// password (read from standard input, never a flag), disabling and enabling
// an operator, and removing a lost second factor. Each ends the operator's
// sessions and is recorded in the platform chain; only the command line may
// do it (kluis.CanManageOperators).
func cmdOperatorAccount(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	sub := args[0]
	if _, ok := findDoc("operator " + sub); !ok {
		return usageError("unknown operator command %q", sub)
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("operator " + sub)
	email := fs.String("email", "", "the operator's e-mail `ADDRESS`")
	pwStdin := false
	if sub == "reset-password" {
		fs.BoolVar(&pwStdin, "password-stdin", false, "read the new password from the first line of standard input (required: passwords never come from flags)")
	}
	pos, err := parseFlags(fs, args[1:])
	if err != nil {
		return err
	}
	if len(pos) > 0 || *email == "" {
		return usageOf("operator " + sub)
	}
	pw := ""
	if sub == "reset-password" {
		if !pwStdin {
			return &cliError{code: 2, msg: "the password is read from standard input", hint: "add --password-stdin and pipe the new password in"}
		}
		if pw, err = readSecretLine(stdin); err != nil {
			return err
		}
	}
	a, _, err := prepare(ctx, c, fs, nil, false, stderr)
	if err != nil {
		return err
	}
	var msg string
	switch sub {
	case "reset-password":
		err = a.areas.Operators.ResetOperatorPassword(ctx, kluis.CLIActor, *email, pw)
		msg = "operator password reset; their sessions ended and their sign-in lock is lifted"
	case "reset-factors":
		err = a.areas.Operators.ResetOperatorFactors(ctx, kluis.CLIActor, *email)
		msg = "operator second factor removed; their sessions ended, and their next sign-in sets up a new one"
	case "disable", "enable":
		var ended, left int
		ended, left, err = a.areas.Operators.SetOperatorDisabled(ctx, kluis.CLIActor, *email, sub == "disable")
		msg = "operator enabled"
		if sub == "disable" {
			msg = fmt.Sprintf("operator disabled, %d sessions ended", ended)
			if left == 0 {
				msg += "\nno operator account is enabled now: only the command line acts for the operator (kluis operator enable)"
			}
		}
	}
	if err != nil {
		a.close()
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return &cliError{code: 1, msg: "no operator with that e-mail address"}
		}
		return clientError(err)
	}
	fmt.Fprintln(stdout, msg)
	return a.finish(ctx)
}

// cmdLogins stops or resumes the logins of the whole instance (R19): every
// organisation, also ones created while stopped. Stopping ends every session
// and API token of every organisation at once; operators can still sign in.
// Each organisation's own switch (kluis org logins) is kept and applies
// again after a resume.
func cmdLogins(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("logins")
	stop := fs.Bool("stop", false, "stop every sign-in to every organisation and end every session")
	resume := fs.Bool("resume", false, "let people sign in again")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if *stop == *resume || len(pos) != 0 {
		a.close()
		return usageOf("logins")
	}
	ended, err := a.areas.Orgs.SetInstanceLogins(ctx, kluis.CLIActor, *resume)
	if err != nil {
		a.close()
		return clientError(err)
	}
	if *stop {
		fmt.Fprintf(stdout, "logins of every organisation stopped, %d sessions ended\n", ended)
	} else {
		fmt.Fprintln(stdout, "logins resumed (organisations stopped on their own stay stopped)")
	}
	return a.finish(ctx)
}
