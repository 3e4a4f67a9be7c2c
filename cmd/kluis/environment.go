package main

import (
	"context"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"runtime/debug"
	"strings"

	"github.com/kluis/kluis"
)

// environmentFile is the label an anonymised copy leaves in its data folder
// (kluis export --anonymize --out DIR writes DIR/environment): the
// environment it is for, one name on one line.
const environmentFile = "environment"

// resolveEnvironment decides what kluis serve runs as (R48): asked (the
// --environment flag or KLUIS_ENVIRONMENT; "" for neither) when given,
// else the data folder's label, else production. A folder labelled
// anything but production is never served as production: an anonymised
// copy must not pass for the real thing, nor be mistaken for it.
func resolveEnvironment(dataDir, asked string) (kluis.Environment, error) {
	var label kluis.Environment
	b, err := os.ReadFile(filepath.Join(dataDir, environmentFile))
	switch {
	case errors.Is(err, fs.ErrNotExist):
	case err != nil:
		return "", fmt.Errorf("read the data folder's environment label: %w", err)
	default:
		if label, err = kluis.ParseEnvironment(string(b)); err != nil {
			return "", &cliError{code: 1, msg: "the data folder's file " + environmentFile + " names no environment: " + err.Error(),
				hint: "it holds one of production, acceptance, test, development"}
		}
	}
	if strings.TrimSpace(asked) == "" {
		if label == "" {
			return kluis.Production, nil
		}
		return label, nil
	}
	env, err := kluis.ParseEnvironment(asked)
	if err != nil {
		return "", &cliError{code: 2, msg: "--environment: " + err.Error(), hint: usageHint}
	}
	if env == kluis.Production && label != "" && label != kluis.Production {
		return "", &cliError{code: 1,
			msg:  fmt.Sprintf("the data folder is labelled %s (an anonymised copy): it cannot be served as production", label),
			hint: fmt.Sprintf("start it with --environment %s, or serve production from its own data folder", label)}
	}
	return env, nil
}

// jobPanic turns a scheduled job's panic into a crash report (R38) and the
// run's error. The error names the report, never the panic: a run's detail
// is shown to every operator role and audited in the platform chain, and a
// panic's message may hold personal data.
func (s *scheduler) jobPanic(ctx context.Context, name string, v any) error {
	stack := debug.Stack()
	s.log.Error("panic in a scheduled job", "job", name)
	if s.crashes == nil {
		return errors.New("panic (no crash reports here)")
	}
	id, err := s.crashes.RecordCrash(context.WithoutCancel(ctx), kluis.CrashInput{Route: "job:" + name, Panic: v, Stack: stack})
	if err != nil {
		return fmt.Errorf("panic (the crash report could not be stored: %w)", err)
	}
	return fmt.Errorf("panic: see crash report %s", id)
}
