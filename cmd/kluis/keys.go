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

	"github.com/kluis/kluis/internal/keys"
)

// cmdKeys administers the key hierarchy (DESIGN §4, R28): status, root key
// rotation, and the root key's backup to an age recipient.
func cmdKeys(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	const usage = "usage: kluis keys status | rotate --root | export-root --age-recipient AGE1…"
	if len(args) == 0 {
		return usageError(usage)
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("keys "+args[0], stderr)
	var rotateRoot bool
	var recipient string
	switch args[0] {
	case "status":
	case "rotate":
		fs.BoolVar(&rotateRoot, "root", false, "re-wrap every organisation key under a new root key")
	case "export-root":
		fs.StringVar(&recipient, "age-recipient", "", "age public key (age1…) to encrypt the root key to")
	default:
		return usageError(usage)
	}
	a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	if len(pos) != 0 {
		return usageError(usage)
	}
	switch args[0] {
	case "status":
		return keysStatus(ctx, a.keys, stdout)
	case "rotate":
		if !rotateRoot {
			return &cliError{code: 2, msg: "say what to rotate", hint: "kluis keys rotate --root (organisation keys: --org comes with field encryption)"}
		}
		return rotateRootKey(ctx, a, stdout)
	default:
		return exportRoot(a, recipient, stdout)
	}
}

func keysStatus(ctx context.Context, store *keys.Store, stdout io.Writer) error {
	st, err := store.KeyStatus(ctx)
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
	return tw.Flush()
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
	if err := a.keys.RotateRoot(ctx, newRoot); err != nil {
		os.Remove(next)
		return fmt.Errorf("rotate the root key: %w", err)
	}
	if err := os.Rename(next, path); err != nil {
		return &cliError{code: 1, msg: "the key store is now wrapped under the key in " + next + " but it could not replace " + path,
			hint: "move " + next + " over " + path + " before starting kluis"}
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
