package main

import (
	"context"
	"fmt"
	"io"

	"github.com/kluis/kluis"
)

// cmdAnnounce sends a maintenance announcement (issue 15, R3, R40, R45):
// the title from a flag, the text from standard input (it is long and may
// span lines). It reaches only people who opted in to maintenance mail and
// are not restricted; the mails go out before the command ends. It prints
// how many people it reached, never who.
func cmdAnnounce(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("announce")
	title := fs.String("title", "", "the announcement's `TITLE` (at most 200 characters)")
	bodyStdin := fs.Bool("body-stdin", false, "read the announcement's text from standard input (at most 5000 characters)")
	a, pos, err := prepare(ctx, c, fs, args, false, stderr)
	if err != nil {
		return err
	}
	if len(pos) != 0 || *title == "" || !*bodyStdin {
		a.close()
		return usageOf("announce")
	}
	body, err := io.ReadAll(io.LimitReader(stdin, 4*kluis.MaxAnnouncementBody+1))
	if err != nil {
		a.close()
		return fmt.Errorf("read the text: %w", err)
	}
	n, err := a.areas.Announcements.SendAnnouncement(ctx, kluis.CLIActor, kluis.Announcement{Title: *title, Body: string(body)})
	if err != nil {
		a.close()
		return clientError(err)
	}
	fmt.Fprintf(stdout, "sent to %d people\n", n)
	return a.finish(ctx)
}
