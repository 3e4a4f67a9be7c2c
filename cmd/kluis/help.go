package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"slices"
	"strings"
)

// commandDoc describes one command of the command line for its help. The
// flags are not written here: the help lists those of the command's own
// flag set, so it cannot leave one out.
type commandDoc struct {
	words    string // the command's words after "kluis": "org create"
	synopsis string // its arguments and own flags: "SLUG --name NAME …"
	about    string // what it does, in a sentence or two
}

// commands is every command kluis has, in the order the help shows them.
// run refuses a command that is not here, so a new command is documented
// or it does not run; the tests check that every flag a command defines
// is in its synopsis and its help.
var commands = []commandDoc{
	{"serve", "[--addr HOST:PORT] [--public-url URL] [--metrics-addr HOST:PORT] [--security-email ADDRESS] [--environment NAME]",
		"Runs the server: the API, the web pages, mail and text-message delivery, audit checkpoints, key work and the scheduled jobs (kluis jobs lists them). " +
			"Migrates the database first. With the embedded database one server runs per data folder; with PostgreSQL, any number."},
	{"migrate", "",
		"Brings the database up to date and exits (serve does this at every start)."},
	{"operator create", "--email ADDRESS [--name NAME] [--role admin|support|security] --password-stdin",
		"Creates an operator account of a role (admin by default): admin keeps organisations, licences and operators; support sees " +
			"an organisation's data only through its managers' grant; security keeps address blocks, alarms and the platform's log. " +
			"The first one bootstraps the instance. Its first sign-in sets up an authenticator app."},
	{"operator reset-password", "--email ADDRESS --password-stdin",
		"Gives an operator a new password, ends their sessions and lifts their sign-in lock."},
	{"operator disable", "--email ADDRESS",
		"Disables an operator account and ends its sessions."},
	{"operator enable", "--email ADDRESS",
		"Enables a disabled operator account."},
	{"operator reset-factors", "--email ADDRESS",
		"Removes an operator's lost second factor and ends their sessions; their next sign-in sets up a new one."},
	{"org create", "SLUG --name NAME --manager-email ADDRESS [--manager-name NAME] [--language en|nl] [--public-url URL]",
		"Creates an organisation and invites its first manager: prints the invitation link and mails it."},
	{"org delete", "SLUG --confirm",
		"Deletes an organisation on its request, with its people and data, and destroys its keys. It cannot be undone."},
	{"org list", "",
		"Lists the organisations: slug, id and name."},
	{"org logins", "SLUG|--all --stop|--resume",
		"Stops every sign-in to an organisation, or to all of them, and ends their sessions; or lets people sign in again."},
	{"org reset-factors", "SLUG --user-email ADDRESS",
		"Removes the second factors of a manager who lost them while no other manager can reset them; the manager is told by mail."},
	{"user delete", "--org SLUG --email ADDRESS --reason TEXT",
		"Erases one person when their organisation asks: the same erasure as a manager's, their key destroyed, " +
			"recorded in the organisation's audit log with the reason; its managers find a notice in their inbox. The last manager cannot be erased (exit 1, conflict)."},
	{"announce", "--title TITLE --body-stdin",
		"Sends a maintenance announcement, its text read from standard input, to everyone who opted in to maintenance mail and whose processing is not restricted: " +
			"a notice in their inbox and a mail that only says a notice waits. Prints how many people it reached, never who."},
	{"logins", "--stop|--resume",
		"Stops every sign-in to every organisation of the instance, also those created later, and ends every session; or resumes. " +
			"Operators can still sign in, and an organisation stopped on its own stays stopped."},
	{"throttle list", "",
		"Lists the blocked client addresses by reference, with how often each was blocked and until when."},
	{"throttle lift", "REF|--address IP",
		"Lifts the block of an address."},
	{"throttle permanent", "REF|--address IP",
		"Keeps an address blocked until it is lifted."},
	{"audit verify", "[--org SLUG | --export FILE]",
		"Checks the audit chains and their signed checkpoints: exit 0 when intact, 1 when broken " +
			"(naming the chain and the first broken sequence number), 2 when it could not check. " +
			"With --export, checks the audit log inside an organisation's export (a ZIP) from the file alone."},
	{"jobs", "[--job NAME] [--limit N]",
		"Lists the open alerts (a broken audit chain, a failed job or backup), then the recent runs of the scheduled work, " +
			"newest first: one line each, tab-separated. Every operator role may see them; nothing in them is personal data."},
	{"alert resolve", "ID",
		"Resolves an open alert once what it reports is dealt with; recorded in the platform's audit log. " +
			"An alert raised again later opens anew and is mailed again."},
	{"keys status", "",
		"Shows the root key's fingerprint, every key's version, state and use, and the progress of re-encryption."},
	{"keys rotate", "--root | --org SLUG",
		"Rotates the root key (back up the new one afterwards), or an organisation's keys, re-encrypting its data."},
	{"keys export-root", "--age-recipient AGE1…",
		"Writes the root key, encrypted to an age public key, to standard output: its backup."},
	{"backup run", "",
		"Makes one backup now, to every target of KLUIS_BACKUP_TARGETS, every object encrypted with age to KLUIS_BACKUP_RECIPIENTS; " +
			"prints one line per target and the backup's id alone on the last line. Exit 0 when every target has it, 1 otherwise."},
	{"backup list", "",
		"Lists the backups: id, time, kind (full or incremental), status, bytes written, targets and the last verification."},
	{"backup verify", "ID",
		"Reads a backup back from every target and checks every object against its recorded checksum: " +
			"exit 0 intact, 1 damaged, 2 when it could not check (an unknown id, a target out of reach)."},
	{"backup restore", "ID --identity FILE (--into FOLDER [--into-db DSN] | --org SLUG --yes)",
		"Restores the whole instance into an empty or missing data folder (and an empty PostgreSQL database), opened with the " +
			"operator's age identity; everyone signs in again. Or replaces one organisation of this instance with its data in the backup; " +
			"its audit log is kept and records the restore. People erased since stay erased."},
	{"backup delete", "ID",
		"Deletes a backup from every target, recorded in the audit log."},
	{"backup drill", "[--identity FILE] [--oldest]",
		"Restores the newest backup (or the oldest kept) into a scratch folder, checks row counts, chunk checksums, the audit chains " +
			"and the keys, and records the result and its duration. Exit 0 when the drill succeeded."},
	// The anonymised copy (issue 15).
	{"export", "--anonymize --out FOLDER [--environment acceptance|test|development]",
		"Writes an anonymised copy of the instance into an empty or missing data folder, as a new instance with the embedded database: " +
			"new keys and audit chains, every name, e-mail address and phone number faked (consistently), organisation, group and project names, " +
			"file paths and version messages faked, file contents replaced by stand-ins of the same size and type, and no passwords, second factors, " +
			"sessions, tokens, operators or audit history. Labels the folder (FOLDER/environment); refuses production. Recorded in the platform's audit log."},
	{"version", "",
		"Prints the version; so does kluis --version."},
	{"help", "[COMMAND]",
		"Prints this help, or the help of a command or a group of commands; so does --help after any command."},
}

// commonFlags are the flags every command but version and help takes; the
// help lists them once.
var commonFlags = []string{"data", "db", "keys-db"}

// subcommands returns the names of the commands in group, or none when
// group is a command of its own.
func subcommands(group string) []string {
	var out []string
	for _, d := range commands {
		if g, sub, ok := strings.Cut(d.words, " "); ok && g == group {
			out = append(out, sub)
		}
	}
	return out
}

// findDoc returns the documentation of the command with these words.
func findDoc(words string) (commandDoc, bool) {
	for _, d := range commands {
		if d.words == words {
			return d, true
		}
	}
	return commandDoc{}, false
}

// usageOf is the usage error of the command with these words, or of a
// group: its synopsis, or the group's commands.
func usageOf(words string) error {
	if d, ok := findDoc(words); ok {
		return usageError("usage: %s", synopsis(d))
	}
	return usageError("usage: kluis %s %s …", words, strings.Join(subcommands(words), "|"))
}

// isHelpFlag reports whether arg asks for help the way the flag package
// understands it.
func isHelpFlag(arg string) bool {
	switch arg {
	case "-h", "--h", "-help", "--help":
		return true
	}
	return false
}

// resolve finds the command words at the start of args (the arguments
// after "kluis") and whether help is asked for: kluis help [WORDS…],
// kluis --help [WORDS…], or -h or --help anywhere before a lone "--".
func resolve(args []string) (words []string, help bool, err error) {
	first := args[0]
	switch {
	case first == "--version" || first == "-version":
		first = "version"
	case first == "help" || isHelpFlag(first):
		if len(args) == 1 {
			return nil, true, nil
		}
		words, _, err := resolve(args[1:])
		return words, true, err
	}
	for _, a := range args {
		if a == "--" {
			break
		}
		help = help || isHelpFlag(a)
	}
	subs := subcommands(first)
	if _, ok := findDoc(first); !ok && len(subs) == 0 {
		return nil, false, usageError("unknown command %q", first)
	}
	words = []string{first}
	if len(subs) > 0 && len(args) > 1 && !strings.HasPrefix(args[1], "-") {
		if !slices.Contains(subs, args[1]) {
			return nil, false, &cliError{code: 2, msg: fmt.Sprintf("unknown %s command %q", first, args[1]),
				hint: "run 'kluis " + first + " --help' for its commands"}
		}
		words = append(words, args[1])
	}
	return words, help, nil
}

// helpRequest is the error parseFlags returns for -h or --help: run prints
// the command's help to stdout, and the exit code is 0.
type helpRequest struct{ fs *flag.FlagSet }

func (h *helpRequest) Error() string { return "help requested" }

// commandFlags returns the flag set the command with these words defines,
// by running it with --help in an empty environment: every command parses
// its flags before it touches anything. Commands without flags (version,
// help) return nil.
func commandFlags(ctx context.Context, words string) *flag.FlagSet {
	group, sub, _ := strings.Cut(words, " ")
	if group == "version" || group == "help" {
		return nil
	}
	args := []string{"--help"}
	if sub != "" {
		args = []string{sub, "--help"}
	}
	err := dispatch(ctx, group, args, func(string) string { return "" }, strings.NewReader(""), io.Discard, io.Discard)
	var hr *helpRequest
	if errors.As(err, &hr) {
		return hr.fs
	}
	return nil
}

// writeHelp prints the help for the command words: all commands (none
// given), a group of commands ("org") or one command ("org create").
func writeHelp(ctx context.Context, w io.Writer, words []string) error {
	key := strings.Join(words, " ")
	if key == "" || key == "help" {
		fmt.Fprint(w, "kluis — a self-hosted, multi-tenant platform that keeps GDPR promises in software\n\nUsage:\n")
		for _, d := range commands {
			fmt.Fprintf(w, "  %s\n", synopsis(d))
			writeWrapped(w, "      ", d.about)
		}
		fmt.Fprint(w, "\nEvery command but version and help also takes:\n")
		writeFlags(w, "  ", commandFlags(ctx, "migrate"), commonFlags)
		writeWrapped(w, "", "\nFlags may stand before or after the arguments, and the environment variables named "+
			"stand in for them (a flag wins); KLUIS_CONFIG names a file of KLUIS_NAME=value lines. "+
			"Secrets never come from flags: passwords are read from standard input, a database password goes in KLUIS_DB or a pgpass file.")
		writeWrapped(w, "", "\nRun 'kluis COMMAND --help' for a command's flags, e.g. 'kluis org --help' or 'kluis org create --help'.")
		return nil
	}
	var docs []commandDoc
	if d, ok := findDoc(key); ok {
		docs = []commandDoc{d}
	} else {
		for _, sub := range subcommands(key) {
			d, _ := findDoc(key + " " + sub)
			docs = append(docs, d)
		}
	}
	fmt.Fprint(w, "Usage:\n")
	common := false
	for i, d := range docs {
		if i > 0 {
			fmt.Fprintln(w)
		}
		fmt.Fprintf(w, "  %s\n", synopsis(d))
		writeWrapped(w, "      ", d.about)
		fs := commandFlags(ctx, d.words)
		if fs == nil {
			continue
		}
		common = true
		var own []string
		fs.VisitAll(func(f *flag.Flag) {
			if !slices.Contains(commonFlags, f.Name) {
				own = append(own, f.Name)
			}
		})
		writeFlags(w, "      ", fs, own)
	}
	if common {
		fmt.Fprintf(w, "\nFlags every command takes:\n")
		writeFlags(w, "  ", commandFlags(ctx, docs[0].words), commonFlags)
	}
	return nil
}

// synopsis is a command's usage line.
func synopsis(d commandDoc) string {
	return strings.TrimSpace("kluis " + d.words + " " + d.synopsis)
}

// writeFlags prints the named flags of fs, each with its value's name and
// its sentence on the next line, the way the flag package does.
func writeFlags(w io.Writer, indent string, fs *flag.FlagSet, names []string) {
	for _, name := range names {
		f := fs.Lookup(name)
		if f == nil {
			continue
		}
		value, text := flag.UnquoteUsage(f)
		line := indent + "--" + f.Name
		if value != "" {
			line += " " + value
		}
		fmt.Fprintln(w, line)
		if f.DefValue != "" && f.DefValue != "false" {
			text += "; default " + f.DefValue
		}
		writeWrapped(w, indent+"    ", text)
	}
}

// writeWrapped prints text in lines of at most 80 columns, each starting
// with indent; a leading newline in text is kept as an empty line.
func writeWrapped(w io.Writer, indent, text string) {
	if rest, ok := strings.CutPrefix(text, "\n"); ok {
		fmt.Fprintln(w)
		text = rest
	}
	line := indent
	for _, word := range strings.Fields(text) {
		if len(line) > len(indent) && len(line)+1+len(word) > 80 {
			fmt.Fprintln(w, line)
			line = indent
		}
		if len(line) > len(indent) {
			line += " "
		}
		line += word
	}
	if len(line) > len(indent) {
		fmt.Fprintln(w, line)
	}
}
