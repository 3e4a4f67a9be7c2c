package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kluis/kluis"
)

// cmdUser is the operator's work on one person of an organisation.
func cmdUser(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageOf("user")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	switch args[0] {
	case "delete":
		return cmdUserDelete(ctx, c, args[1:], stdout, stderr)
	}
	return usageError("unknown user command %q", args[0])
}

// cmdUserDelete erases one person when their organisation asks (R5): the
// same erasure as a manager's delete, their key destroyed, recorded in the
// organisation's chain as the command line's with the reason, and told to
// its managers in their inbox. Nothing about the person is printed: not
// the address, not the name.
func cmdUserDelete(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("user delete")
	slug := fs.String("org", "", "the `SLUG` of the organisation that asked")
	email := fs.String("email", "", "the e-mail `ADDRESS` of the person to erase")
	reason := fs.String("reason", "", "the organisation's request, in a `TEXT` kept (sealed) in its audit log")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *slug == "" || *email == "" || *reason == "" {
		a.close()
		return usageOf("user delete")
	}
	o, err := a.areas.Orgs.FindOrgBySlug(ctx, *slug)
	if err != nil {
		a.close()
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return &cliError{code: 1, msg: "not_found: no organisation " + *slug}
		}
		return clientError(err)
	}
	if err := a.areas.Users.EraseOnRequest(ctx, kluis.CLIActor, o.ID, *email, *reason); err != nil {
		a.close()
		switch kluis.ErrorCode(err) {
		case kluis.ENotFound:
			return &cliError{code: 1, msg: "not_found: no person with that address in " + o.Slug}
		case kluis.EConflict:
			var ke *kluis.Error
			errors.As(err, &ke)
			return &cliError{code: 1, msg: "conflict: " + ke.Message + " (" + o.Slug + ")",
				hint: "the organisation makes someone else manager first"}
		}
		return clientError(err)
	}
	fmt.Fprintf(stdout, "%s: the person is erased and their key destroyed; the managers were told\n", o.Slug)
	return a.finish(ctx)
}
