package main

import (
	"context"
	"flag"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// groups returns every command group and stand-alone command, once each,
// in the order of the command table.
func groups() []string {
	var out []string
	for _, d := range commands {
		g, _, _ := strings.Cut(d.words, " ")
		if !slices.Contains(out, g) {
			out = append(out, g)
		}
	}
	return out
}

// oneLine collapses runs of white space, so that a sentence the help
// wrapped over lines can be found.
func oneLine(s string) string { return strings.Join(strings.Fields(s), " ") }

// Help asked for is not an error: kluis help, --help and -h print the usage
// of every command, of a group of commands, or of one command to stdout,
// and exit 0, without running anything (a serve --help starts no server).
func TestHelpAskedForIsNotAnError(t *testing.T) {
	t.Parallel()
	var cases [][]string
	for _, g := range append(groups(), "") {
		words := strings.Fields(g)
		cases = append(cases, append(words[:len(words):len(words)], "--help"), append(words[:len(words):len(words)], "-h"), append([]string{"help"}, words...))
	}
	for _, d := range commands {
		words := strings.Fields(d.words)
		cases = append(cases, append(words[:len(words):len(words)], "--help"), append([]string{"help"}, words...))
	}
	cases = append(cases,
		[]string{"org", "create", "acme", "--name", "Acme", "--help"},
		[]string{"serve", "--addr", "127.0.0.1:0", "-help"},
		[]string{"--help", "org"},
	)
	dir := t.TempDir()
	for _, args := range cases {
		t.Run(strings.Join(args, " "), func(t *testing.T) {
			r := cli(t, testEnv("KLUIS_DATA", dir), "", args...)
			if r.code != 0 || r.stderr != "" {
				t.Fatalf("got %s, want exit 0 and nothing on stderr", r)
			}
			words := ""
			for _, a := range args {
				if a != "help" && !strings.HasPrefix(a, "-") && !slices.Contains([]string{"acme", "Acme", "127.0.0.1:0"}, a) {
					words = strings.TrimSpace(words + " " + a)
				}
			}
			for _, d := range commands {
				inScope := words == "" || words == "help" || d.words == words || strings.HasPrefix(d.words, words+" ")
				if got := strings.Contains(r.stdout, "  "+synopsis(d)+"\n"); got != inScope {
					t.Errorf("the help shows %q: %v, want %v\n%s", synopsis(d), got, inScope, r.stdout)
				}
			}
		})
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 0 {
		t.Errorf("help created %d entries in the data folder, want nothing", len(entries))
	}
}

// Every flag a command defines is in the help: its name in the command's
// line of kluis help (the flags every command takes in their own list),
// and its name, value and sentence in the help of the command and of its
// group. The command table names only real commands.
func TestEveryFlagIsInTheHelp(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	all := cli(t, testEnv(), "", "help").stdout
	common, _, _ := strings.Cut(all[strings.Index(all, "Every command but version and help also takes:"):], "\n\n")
	for _, d := range commands {
		t.Run(d.words, func(t *testing.T) {
			fs := commandFlags(ctx, d.words)
			if d.words == "version" || d.words == "help" {
				if fs != nil {
					t.Fatalf("%s has flags, want none", d.words)
				}
				return
			}
			if fs == nil {
				t.Fatalf("kluis %s --help gave no flag set: the command table names a command that does not parse its flags first", d.words)
			}
			group, _, _ := strings.Cut(d.words, " ")
			own := cli(t, testEnv(), "", append(strings.Fields(d.words), "--help")...).stdout
			groupHelp := cli(t, testEnv(), "", group, "--help").stdout
			fs.VisitAll(func(f *flag.Flag) {
				value, text := flag.UnquoteUsage(f)
				if text == "" {
					t.Errorf("--%s has no sentence", f.Name)
				}
				entry := "--" + f.Name
				if value != "" {
					entry += " " + value
				}
				if slices.Contains(commonFlags, f.Name) {
					if !strings.Contains(common, "  "+entry+"\n") || !strings.Contains(oneLine(common), oneLine(text)) {
						t.Errorf("kluis help does not list %s with %q among the flags every command takes:\n%s", entry, text, common)
					}
				} else if !regexp.MustCompile(`(^|[ |\[])--` + regexp.QuoteMeta(f.Name) + `\b`).MatchString(d.synopsis) {
					t.Errorf("the synopsis %q leaves out --%s", synopsis(d), f.Name)
				}
				for name, help := range map[string]string{"kluis " + d.words + " --help": own, "kluis " + group + " --help": groupHelp} {
					if !strings.Contains(help, " "+entry+"\n") || !strings.Contains(oneLine(help), oneLine(text)) {
						t.Errorf("%s does not list %s with %q:\n%s", name, entry, text, help)
					}
				}
			})
			// And the synopsis names no flag the command does not have.
			for _, m := range regexp.MustCompile(`--([a-z-]+)`).FindAllStringSubmatch(d.synopsis, -1) {
				if fs.Lookup(m[1]) == nil {
					t.Errorf("the synopsis %q names --%s, which the command does not define", synopsis(d), m[1])
				}
			}
		})
	}
}

// No help text names a requirement id (R26 and the like): those are the
// project's bookkeeping, not the user's.
func TestHelpNamesNoRequirementIDs(t *testing.T) {
	t.Parallel()
	requirementID := regexp.MustCompile(`\bR[0-9]{1,2}\b`)
	texts := []string{cli(t, testEnv(), "", "help").stdout}
	for _, g := range groups() {
		texts = append(texts, cli(t, testEnv(), "", g, "--help").stdout)
	}
	for _, d := range commands {
		texts = append(texts, cli(t, testEnv(), "", append(strings.Fields(d.words), "--help")...).stdout)
	}
	for _, text := range texts {
		if m := requirementID.FindString(text); m != "" {
			t.Errorf("a help text names %s:\n%s", m, text)
		}
	}
}

// kluis --version is kluis version.
func TestVersionFlag(t *testing.T) {
	t.Parallel()
	want := cli(t, testEnv(), "", "version")
	for _, arg := range []string{"--version", "-version"} {
		if got := cli(t, testEnv(), "", arg); got != want || got.code != 0 || got.stdout != "kluis "+version+"\n" {
			t.Errorf("kluis %s: got %s, want %s", arg, got, want)
		}
	}
}

// A group without a command, an unknown command and a wrong flag are usage
// errors: exit 2, the contract's "kluis: message" and a hint naming the help
// that applies, nothing on stdout.
func TestUsageErrorsPointAtTheHelp(t *testing.T) {
	t.Parallel()
	dir := t.TempDir()
	tests := []struct {
		args     []string
		wantHint string
	}{
		{[]string{"org"}, "kluis org --help"},
		{[]string{"keys"}, "kluis keys --help"},
		{[]string{"org", "frobnicate"}, "kluis org --help"},
		{[]string{"frobnicate"}, "kluis help"},
		{[]string{"help", "frobnicate"}, "kluis help"},
		{[]string{"org", "list", "--frobnicate", "--data", dir}, "kluis org list --help"},
		{[]string{"throttle", "list", "--address", "192.0.2.1", "--data", dir}, "kluis throttle list --help"},
		{[]string{"serve", "extra", "--data", dir}, "kluis serve --help"},
	}
	for _, tt := range tests {
		t.Run(strings.Join(tt.args, " "), func(t *testing.T) {
			r := cli(t, testEnv(), "", tt.args...)
			if r.code != 2 || r.stdout != "" {
				t.Fatalf("got %s, want exit 2 and nothing on stdout", r)
			}
			checkErrorShape(t, r.stderr)
			if !strings.Contains(r.stderr, "\nhint: ") || !strings.Contains(r.stderr, "'"+tt.wantHint) {
				t.Errorf("stderr is %q, want a hint to run '%s'", r.stderr, tt.wantHint)
			}
		})
	}
}
