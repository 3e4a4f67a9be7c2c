package main

import (
	"context"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/kluis/kluis"
)

// cmdJobs prints the open alerts and the recent runs of the scheduled work
// (DESIGN §9), one line each, tab-separated: what the operator looks at
// when mail says something needs attention.
func cmdJobs(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("jobs")
	name := fs.String("job", "", "only the runs of the job with this `NAME` (audit_verify, project_purge, …)")
	limit := fs.Int("limit", 20, "at most `N` runs, 1 to 1000")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if len(pos) > 0 {
		return usageOf("jobs")
	}
	if *limit < 1 || *limit > 1000 {
		return usageError("--limit must be 1 to 1000")
	}
	alerts, err := a.areas.Jobs.OpenAlerts(ctx, kluis.CLIActor)
	if err != nil {
		return clientError(err)
	}
	runs, err := a.areas.Jobs.FindJobRuns(ctx, kluis.CLIActor, *name, *limit)
	if err != nil {
		return clientError(err)
	}
	for _, al := range alerts {
		fmt.Fprintf(stdout, "alert\t%s\t%s\t%s\traised %d\t%s\t%s\n", al.At.Format(time.RFC3339), al.Kind, al.Subject, al.Raised, al.ID, singleLine(al.Detail))
	}
	for _, r := range runs {
		took := "running"
		if !r.FinishedAt.IsZero() {
			took = r.FinishedAt.Sub(r.StartedAt).Round(time.Millisecond).String()
		}
		fmt.Fprintf(stdout, "run\t%s\t%s\t%s\t%s\t%s\t%s\t%s\n", r.StartedAt.Format(time.RFC3339), r.Job, r.Outcome, took, r.Holder, r.ID, singleLine(r.Detail))
	}
	return nil
}

// singleLine keeps a detail on its line.
func singleLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// cmdAlert resolves an open alert (kluis alert resolve ID), recorded in
// the platform chain.
func cmdAlert(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || args[0] != "resolve" {
		return usageOf("alert")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("alert resolve")
	a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		a.close()
		return usageOf("alert resolve")
	}
	if err := a.areas.Jobs.ResolveAlert(ctx, kluis.CLIActor, pos[0]); err != nil {
		a.close()
		if kluis.ErrorCode(err) == kluis.ENotFound {
			return &cliError{code: 1, msg: "no open alert " + pos[0], hint: "run 'kluis jobs' for the open alerts and their ids"}
		}
		return clientError(err)
	}
	fmt.Fprintf(stdout, "%s: resolved\n", pos[0])
	return a.finish(ctx)
}
