package main

import (
	"context"
	"errors"
	"fmt"
	"io"

	"github.com/kluis/kluis"
)

// cmdOrgResetFactors is the operator's recovery of a manager who lost every
// second factor while no other manager can reset them (R17): the manager is
// found by e-mail address, their factors and sessions go, and they are told
// by mail. It is recorded in the organisation's own audit chain, where its
// managers see it. Nothing about the person is printed.
func cmdOrgResetFactors(ctx context.Context, c *config, args []string, stdout, stderr io.Writer) error {
	fs := c.flags("org reset-factors")
	email := fs.String("user-email", "", "the e-mail `ADDRESS` of the manager whose second factors are removed")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 || *email == "" {
		a.close()
		return usageOf("org reset-factors")
	}
	o, err := a.areas.Orgs.FindOrgBySlug(ctx, pos[0])
	if err != nil {
		a.close()
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return &cliError{code: 1, msg: "no organisation " + pos[0]}
		}
		return clientError(err)
	}
	if err := a.areas.Factors.ResetManagerFactorsByCLI(ctx, o.ID, kluis.CLIActor, *email); err != nil {
		a.close()
		switch kluis.ErrorCode(err) {
		case kluis.ENotFound:
			return &cliError{code: 1, msg: "no manager with that address and a second factor in " + o.Slug}
		case kluis.EConflict:
			var ke *kluis.Error
			errors.As(err, &ke)
			return &cliError{code: 1, msg: ke.Message + " (" + o.Slug + ")", hint: "a manager of the organisation resets second factors on the person's page"}
		}
		return clientError(err)
	}
	fmt.Fprintf(stdout, "%s: second factors reset; the manager was told by mail and signed out\n", o.Slug)
	return a.finish(ctx)
}
