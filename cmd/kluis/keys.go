package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"strings"
	"text/tabwriter"
	"time"

	"filippo.io/age"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/keys"
)

// cmdKeys administers the key hierarchy (R28, docs/KEYS.md): status, root key
// rotation, and the root key's backup to an age recipient.
func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageOf("keys")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("keys " + args[0])
	var rotateRoot bool
	var recipient, rotateOrg string
	switch args[0] {
	case "status":
	case "rotate":
		fs.BoolVar(&rotateRoot, "root", false, "re-wrap every key under a new root key, which replaces the root key file")
		fs.StringVar(&rotateOrg, "org", "", "start new versions of the keys of the organisation with this `SLUG` and re-encrypt its data")
	case "export-root":
		fs.StringVar(&recipient, "age-recipient", "", "the age public `KEY` (age1…) to encrypt the root key to; keep its identity offline")
	default:
		return usageOf("keys")
	}
	a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if len(pos) != 0 {
		return usageOf("keys " + args[0])
	}
	switch args[0] {
	case "status":
		return keysStatus(ctx, a, stdout)
	case "rotate":
		switch {
		case rotateRoot == (rotateOrg != ""):
			return &cliError{code: 2, msg: "say what to rotate: --root or --org SLUG", hint: "kluis keys rotate --root | kluis keys rotate --org SLUG"}
		case rotateRoot:
			return rotateRootKey(ctx, a, stdout)
		}
		return rotateOrgKey(ctx, a, rotateOrg, stdout)
	default:
		return exportRoot(a, recipient, stdout)
	}
}

func keysStatus(ctx context.Context, a *app, stdout io.Writer) error {
	st, err := a.keys.KeyStatus(ctx)
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "root key: fingerprint %s, generation %d", st.RootFingerprint, st.RootGeneration)
	if !st.RootRotatedAt.IsZero() {
		verb := "rotated"
		if st.RootGeneration == 1 {
			verb = "in use since"
		}
		fmt.Fprintf(stdout, ", %s %s", verb, st.RootRotatedAt.UTC().Format(time.RFC3339))
	}
	fmt.Fprintln(stdout)
	tw := tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "KEY\tVERSION\tSTATE\tAGE\tUSERS\tPROJECTS")
	for _, k := range st.Keys {
		fmt.Fprintf(tw, "%s\t%d\t%s\t%s\t%d\t%d\n", k.Key, k.Version, k.State, k.Age.Truncate(time.Second), k.Users, k.Projects)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	// What still uses retired versions: data rows until re-encryption has
	// finished, audit rows for good (they keep their ciphertext).
	uses, err := a.areas.KeyWork.RetiredUses(ctx)
	if err != nil {
		return err
	}
	jobs, err := a.areas.KeyWork.Reencryptions(ctx)
	if err != nil {
		return err
	}
	job := map[kluis.OrgID]kluis.Reencryption{}
	for _, j := range jobs {
		job[j.Org] = j
	}
	fmt.Fprintln(stdout)
	tw = tabwriter.NewWriter(stdout, 2, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "ORGANISATION\tRE-ENCRYPTION\tDATA ROWS UNDER RETIRED VERSIONS\tAUDIT ROWS UNDER RETIRED VERSIONS")
	for _, u := range uses {
		j, ok := job[u.Org]
		progress := "never rotated"
		switch {
		case ok && j.Finished():
			progress = "finished " + j.FinishedAt.UTC().Format(time.RFC3339) + fmt.Sprintf(" (%d rows re-encrypted)", j.Resealed)
		case ok:
			progress = fmt.Sprintf("running since %s: %s, %d rows visited in this pass", j.StartedAt.UTC().Format(time.RFC3339), j.Phase, j.Done)
		}
		fmt.Fprintf(tw, "%s\t%s\t%d\t%d\n", u.Slug, progress, u.Data, u.Audit)
	}
	return tw.Flush()
}

// rotateOrgKey starts new versions of an organisation's keys and
// re-encrypts its data, printing progress. Interrupted, the work goes on in
// kluis serve (or the next run of this command) where it stopped.
func rotateOrgKey(ctx context.Context, a *app, slug string, stdout io.Writer) error {
	kv, err := a.areas.KeyWork.RotateOrgKey(ctx, kluis.CLIActor, slug)
	if kluis.ErrorCode(err) == kluis.ENotFound {
		return &cliError{code: 1, msg: "no organisation " + slug, hint: "kluis org list shows the slugs"}
	}
	if err != nil {
		return err
	}
	fmt.Fprintf(stdout, "%s: organisation key rotated to version %d; its user and project keys have new versions too\n", slug, kv)
	last := time.Time{}
	for {
		jobs, err := a.areas.KeyWork.Reencrypt(ctx, func(j kluis.Reencryption) {
			if time.Since(last) >= time.Second || j.Finished() {
				last = time.Now()
				if !j.Finished() {
					fmt.Fprintf(stdout, "%s: re-encrypting %s, %d rows visited, %d re-encrypted\n", j.Slug, j.Phase, j.Done, j.Resealed)
				}
			}
		})
		if err != nil {
			return fmt.Errorf("re-encryption stopped (kluis serve resumes it): %w", err)
		}
		var wait time.Time
		found := false
		for _, j := range jobs {
			if j.Slug != slug {
				continue
			}
			found = true
			if j.Finished() {
				fmt.Fprintf(stdout, "%s: re-encryption finished, %d rows re-encrypted; audit rows keep the retired versions\n", slug, j.Resealed)
				return nil
			}
			wait = j.SettledAt
		}
		if !found {
			return &cliError{code: 1, msg: slug + ": the organisation was deleted during its re-encryption"}
		}
		d := max(time.Until(wait), 100*time.Millisecond)
		fmt.Fprintf(stdout, "waiting %s until every process's key cache has the new versions (KLUIS_KEY_CACHE_TTL), then checking once more\n", d.Round(time.Millisecond))
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(d):
		}
	}
}

// rotateRootKey writes the new root key beside the old one, re-wraps the key
// store under it (data is not touched), then puts it in the old one's place.
// A crash between the last two steps leaves root.new holding the key the key
// store now needs; the message says so.
func rotateRootKey(ctx context.Context, a *app, stdout io.Writer) error {
	path := a.cfg.rootKeyPath()
	next := path + ".new"
	newRoot, err := keys.GenerateRoot()
	if err != nil {
		return err
	}
	if err := keys.SaveRoot(next, newRoot); err != nil {
		if errors.Is(err, fs.ErrExist) {
			return &cliError{code: 1, msg: next + " exists: an earlier rotation did not finish",
				hint: "if the key store opens with it, move it over " + path + "; otherwise delete it and rotate again"}
		}
		return err
	}
	if err := a.keys.RotateRoot(ctx, newRoot, kluis.CLIActor.AuditName()); err != nil {
		os.Remove(next)
		return fmt.Errorf("rotate the root key: %w", err)
	}
	if err := os.Rename(next, path); err != nil {
		return &cliError{code: 1, msg: "the key store is now wrapped under the key in " + next + " but it could not replace " + path,
			hint: "move " + next + " over " + path + " before starting kluis"}
	}
	// The key store recorded the rotation with its change; into the platform
	// chain it goes now, or else at the next start of any kluis command.
	if _, err := a.areas.Core.DrainKeyEvents(ctx); err != nil {
		a.log.Warn("the root key rotation is not yet in the audit log; the next start records it", "err", err.Error())
	}
	fmt.Fprintf(stdout, "root key rotated: fingerprint %s\nback up the new root key now: kluis keys export-root --age-recipient …\n", newRoot.Fingerprint())
	return nil
}

// exportRoot writes the root key, encrypted to an age recipient, to stdout
// (R28: for the safe). Decrypt with `age -d -i KEY` and put the result at
// DATA/keys/root (mode 0600) to restore.
func exportRoot(a *app, recipient string, stdout io.Writer) error {
	if !strings.HasPrefix(recipient, "age1") {
		return &cliError{code: 2, msg: "--age-recipient must be an age public key (age1…)", hint: "make one with age-keygen and keep its identity offline"}
	}
	r, err := age.ParseX25519Recipient(recipient)
	if err != nil {
		return &cliError{code: 2, msg: "--age-recipient is not a valid age public key"}
	}
	root, err := keys.LoadRoot(a.cfg.rootKeyPath())
	if err != nil {
		return err
	}
	pem := root.MarshalPEM()
	w, err := age.Encrypt(stdout, r)
	if err != nil {
		return err
	}
	if _, err := w.Write(pem); err != nil {
		return err
	}
	return w.Close()
}
