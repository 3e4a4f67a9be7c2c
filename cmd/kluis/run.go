package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"io"
	"io/fs"
	"log/slog"
	"net/netip"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/backup"
	"github.com/kluis/kluis/internal/deliver"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/areas"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// version is set at build time with -ldflags "-X main.version=…".
var version = "dev"

// cliError is an error with an exit code and an optional hint for the person
// at the terminal.
type cliError struct {
	code int
	msg  string
	hint string
}

func (e *cliError) Error() string { return e.msg }

// usageHint stands for the hint of a usage error; run replaces it with one
// naming the help of the command at hand.
const usageHint = "run 'kluis help' for the commands and their flags"

func usageError(format string, args ...any) error {
	return &cliError{code: 2, msg: fmt.Sprintf(format, args...), hint: usageHint}
}

// exitCode prints err the contract's way ("kluis: message", lower-case, then
// an optional "hint:" line) and returns the process exit code.
func exitCode(err error, stderr io.Writer) int {
	if err == nil {
		return 0
	}
	code, hint := 1, ""
	var ce *cliError
	if errors.As(err, &ce) {
		code, hint = ce.code, ce.hint
	}
	if !errors.Is(err, errSilent) {
		fmt.Fprintf(stderr, "kluis: %s\n", err.Error())
		if hint != "" {
			fmt.Fprintf(stderr, "hint: %s\n", hint)
		}
	}
	return code
}

// errSilent marks an error whose report was already printed.
var errSilent = errors.New("silent")

// run is the whole program, callable in-process by tests. Help asked for
// (kluis help, -h or --help anywhere) is printed to stdout and is not an
// error; a command that is not in the command table is a usage error
// before anything runs.
func run(ctx context.Context, args []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	if len(args) < 2 {
		writeHelp(ctx, stderr, nil)
		return &cliError{code: 2, msg: "no command given", hint: usageHint}
	}
	words, help, err := resolve(args[1:])
	if err != nil {
		return err
	}
	if help {
		return writeHelp(ctx, stdout, words)
	}
	if len(words) == 1 && len(subcommands(words[0])) > 0 {
		return &cliError{code: 2, msg: fmt.Sprintf("%s needs a command: %s", words[0], strings.Join(subcommands(words[0]), ", ")),
			hint: "run 'kluis " + words[0] + " --help' for its commands and their flags"}
	}
	err = dispatch(ctx, words[0], args[2:], getenv, stdin, stdout, stderr)
	var hr *helpRequest
	if errors.As(err, &hr) {
		return writeHelp(ctx, stdout, words)
	}
	var ce *cliError
	if errors.As(err, &ce) && ce.hint == usageHint {
		ce.hint = "run 'kluis " + strings.Join(words, " ") + " --help' for its usage"
	}
	return err
}

// dispatch runs the command group cmd with the arguments after its name.
func dispatch(ctx context.Context, cmd string, rest []string, getenv func(string) string, stdin io.Reader, stdout, stderr io.Writer) error {
	switch cmd {
	case "serve":
		return cmdServe(ctx, rest, getenv, stdout, stderr)
	case "operator":
		return cmdOperator(ctx, rest, getenv, stdin, stdout, stderr)
	case "org":
		return cmdOrg(ctx, rest, getenv, stdout, stderr)
	case "user":
		return cmdUser(ctx, rest, getenv, stdout, stderr)
	case "announce": // maintenance announcements (issue 15)
		return cmdAnnounce(ctx, rest, getenv, stdin, stdout, stderr)
	case "audit":
		return cmdAudit(ctx, rest, getenv, stdout, stderr)
	case "migrate":
		return cmdMigrate(ctx, rest, getenv, stdout, stderr)
	case "keys":
		return cmdKeys(ctx, rest, getenv, stdout, stderr)
	case "throttle":
		return cmdThrottle(ctx, rest, getenv, stdout, stderr)
	case "logins":
		return cmdLogins(ctx, rest, getenv, stdout, stderr)
	case "backup":
		return cmdBackup(ctx, rest, getenv, stdout, stderr)
	case "jobs":
		return cmdJobs(ctx, rest, getenv, stdout, stderr)
	case "alert":
		return cmdAlert(ctx, rest, getenv, stdout, stderr)
	case "export": // the anonymised copy (issue 15)
		return cmdExport(ctx, rest, getenv, stdout, stderr)
	case "version":
		fmt.Fprintln(stdout, "kluis", version)
		return nil
	}
	return usageError("unknown command %q", cmd)
}

// config is everything the commands are configured with, parsed once from
// flags, the environment and an optional KEY=VALUE file (KLUIS_CONFIG), in
// that order of precedence.
type config struct {
	Addr           string
	DataDir        string
	DB             string
	PublicURL      string
	MetricsAddr    string
	KeysDB         string // key store: DATA/keys/keys.db, or a postgres:// DSN of its own
	RootKeyFile    string // the root key: DATA/keys/root unless KLUIS_ROOT_KEY_FILE says otherwise
	SMTPURL        string
	MailFrom       string
	MailRetry      time.Duration // the first wait after a failed delivery (KLUIS_MAIL_RETRY); 0: 30 s
	SMSURL         string        // the SMS gateway; "" writes text messages to DATA/sms-outbox
	SMSToken       string        // the gateway's bearer token: from KLUIS_SMS_TOKEN only
	SecurityEmail  string        // the operator's security address: alarms and the digest (R26)
	DigestEvery    time.Duration // how often the security digest is mailed
	JobTick        time.Duration // how often serve looks for scheduled jobs that are due (KLUIS_JOB_TICK)
	TrustedProxies []netip.Prefix
	// OperatorAddresses, when set, are the only client addresses the
	// operator's routes answer (R46); the command line is not affected.
	OperatorAddresses []netip.Prefix
	MaxBodyBytes      int64
	MaxFileBytes      int64         // one file of a project (KLUIS_MAX_FILE_MIB)
	KeyCacheTTL       time.Duration // 0: the keys package's default; the same on every process sharing a key store
	Argon2            password.Params
	LogLevel          slog.Level
	Backup            backupConfig
	Content           contentConfig
	// LicenceGrace is how long an organisation is read-only after its
	// licence ended before the retention job erases it (R36):
	// KLUIS_LICENCE_GRACE_DAYS, default 30.
	LicenceGrace time.Duration
	Environment  string // KLUIS_ENVIRONMENT or --environment (serve); resolved by resolveEnvironment (R48)
}

// backupConfig is the backups' part of the configuration (docs/OPERATIONS.md,
// Backups). Secrets (the S3 keys) and pins come from the environment or
// the config file only.
type backupConfig struct {
	Targets       string // KLUIS_BACKUP_TARGETS: comma-separated target URLs
	Recipients    string // KLUIS_BACKUP_RECIPIENTS: comma-separated age1… keys
	DrillIdentity string // KLUIS_BACKUP_DRILL_IDENTITY: "" → DATA/keys/backup-drill.key
	Target        backup.TargetConfig
	Hour, Minute  int // KLUIS_BACKUP_SCHEDULE, daily, UTC
	Retention     backup.Retention
	KeysMaxAge    time.Duration
}

// prefixes reads a list of addresses and prefixes (comma- or
// space-separated) from the environment variable name.
func prefixes(env func(string) string, name string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, p := range strings.FieldsFunc(env(name), func(r rune) bool { return r == ',' || r == ' ' }) {
		pfx, err := netip.ParsePrefix(p)
		if err != nil {
			a, aerr := netip.ParseAddr(p)
			if aerr != nil {
				return nil, &cliError{code: 2, msg: fmt.Sprintf("%s: %q is not an address or prefix", name, p)}
			}
			pfx = netip.PrefixFrom(a, a.BitLen())
		}
		out = append(out, pfx.Masked())
	}
	return out, nil
}

// newConfig reads the environment (and the file KLUIS_CONFIG names) into the
// defaults; flags parsed later override it.
func newConfig(getenv func(string) string) (*config, error) {
	env := getenv
	if path := getenv("KLUIS_CONFIG"); path != "" {
		file, err := readConfigFile(path)
		if err != nil {
			return nil, err
		}
		env = func(k string) string {
			if v := getenv(k); v != "" {
				return v
			}
			return file[k]
		}
	}
	c := &config{
		Addr:          or(env("KLUIS_ADDR"), "127.0.0.1:8080"),
		DataDir:       or(env("KLUIS_DATA"), "./kluis-data"),
		DB:            env("KLUIS_DB"),
		PublicURL:     env("KLUIS_PUBLIC_URL"),
		MetricsAddr:   env("KLUIS_METRICS_ADDR"),
		KeysDB:        env("KLUIS_KEYS_DB"),
		RootKeyFile:   env("KLUIS_ROOT_KEY_FILE"),
		SMTPURL:       env("KLUIS_SMTP_URL"),
		MailFrom:      env("KLUIS_MAIL_FROM"),
		SMSURL:        env("KLUIS_SMS_URL"),
		SMSToken:      env("KLUIS_SMS_TOKEN"),
		SecurityEmail: env("KLUIS_SECURITY_EMAIL"),
		Environment:   env("KLUIS_ENVIRONMENT"),
		DigestEvery:   24 * time.Hour,
		JobTick:       30 * time.Second,
		Argon2:        password.DefaultParams,
	}
	var err error
	if c.TrustedProxies, err = prefixes(env, "KLUIS_TRUSTED_PROXIES"); err != nil {
		return nil, err
	}
	if c.OperatorAddresses, err = prefixes(env, "KLUIS_OPERATOR_ADDRESSES"); err != nil {
		return nil, err
	}
	for name, dst := range map[string]*uint32{"KLUIS_ARGON2_MEMORY_KIB": &c.Argon2.Memory, "KLUIS_ARGON2_TIME": &c.Argon2.Time} {
		if v := env(name); v != "" {
			n, err := strconv.ParseUint(v, 10, 32)
			if err != nil {
				return nil, &cliError{code: 2, msg: name + " must be a whole number"}
			}
			*dst = uint32(n)
		}
	}
	c.MaxBodyBytes = 1 << 20
	if v := env("KLUIS_MAIL_RETRY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Second || d > time.Hour {
			return nil, &cliError{code: 2, msg: "KLUIS_MAIL_RETRY must be a duration from 1s to 1h"}
		}
		c.MailRetry = d
	}
	if v := env("KLUIS_SECURITY_DIGEST_EVERY"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < time.Minute {
			return nil, &cliError{code: 2, msg: "KLUIS_SECURITY_DIGEST_EVERY must be a duration of a minute or more"}
		}
		c.DigestEvery = d
	}
	c.LicenceGrace = kluis.DefaultLicenceGrace
	if v := env("KLUIS_LICENCE_GRACE_DAYS"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 365 {
			return nil, &cliError{code: 2, msg: "KLUIS_LICENCE_GRACE_DAYS must be a whole number from 1 to 365"}
		}
		c.LicenceGrace = time.Duration(n) * 24 * time.Hour
	}
	if v := env("KLUIS_JOB_TICK"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d < 100*time.Millisecond || d > time.Hour {
			return nil, &cliError{code: 2, msg: "KLUIS_JOB_TICK must be a duration from 100ms to 1h"}
		}
		c.JobTick = d
	}
	if c.SecurityEmail != "" && kluis.ValidateEmail(kluis.NormalizeEmail(c.SecurityEmail)) != nil {
		return nil, &cliError{code: 2, msg: "KLUIS_SECURITY_EMAIL is not an e-mail address"}
	}
	if v := env("KLUIS_MAX_BODY_KIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 1<<20 {
			return nil, &cliError{code: 2, msg: "KLUIS_MAX_BODY_KIB must be a whole number from 1 to 1048576"}
		}
		c.MaxBodyBytes = n << 10
	}
	if v := env("KLUIS_MAX_FILE_MIB"); v != "" {
		n, err := strconv.ParseInt(v, 10, 64)
		if err != nil || n < 1 || n > 512<<10 {
			return nil, &cliError{code: 2, msg: "KLUIS_MAX_FILE_MIB must be a whole number from 1 to 524288"}
		}
		c.MaxFileBytes = n << 20
	}
	if v := env("KLUIS_KEY_CACHE_TTL"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil || d <= 0 || d > keys.MaxCacheTTL {
			return nil, &cliError{code: 2, msg: "KLUIS_KEY_CACHE_TTL must be a duration from 1ms to " + keys.MaxCacheTTL.String()}
		}
		c.KeyCacheTTL = d
	}
	if v := env("KLUIS_ARGON2_THREADS"); v != "" {
		n, err := strconv.ParseUint(v, 10, 8)
		if err != nil {
			return nil, &cliError{code: 2, msg: "KLUIS_ARGON2_THREADS must be a whole number"}
		}
		c.Argon2.Threads = uint8(n)
	}
	if err := c.Argon2.Validate(); err != nil {
		return nil, &cliError{code: 2, msg: "argon2 parameters: " + err.Error()}
	}
	if c.Backup, err = newBackupConfig(env); err != nil {
		return nil, err
	}
	if c.Content, err = newContentConfig(env); err != nil {
		return nil, err
	}
	switch strings.ToLower(env("KLUIS_LOG_LEVEL")) {
	case "debug":
		c.LogLevel = slog.LevelDebug
	case "warn":
		c.LogLevel = slog.LevelWarn
	case "error":
		c.LogLevel = slog.LevelError
	}
	return c, nil
}

func or(v, def string) string {
	if v != "" {
		return v
	}
	return def
}

// readConfigFile reads KEY=VALUE lines; '#' starts a comment line.
func readConfigFile(path string) (map[string]string, error) {
	f, err := os.Open(path)
	if err != nil {
		return nil, &cliError{code: 2, msg: "cannot read the configuration file named by KLUIS_CONFIG"}
	}
	defer f.Close()
	out := map[string]string{}
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		k, v, ok := strings.Cut(line, "=")
		if !ok || !strings.HasPrefix(strings.TrimSpace(k), "KLUIS_") {
			return nil, &cliError{code: 2, msg: fmt.Sprintf("configuration file line %d: want KLUIS_NAME=value", n)}
		}
		out[strings.TrimSpace(k)] = strings.Trim(strings.TrimSpace(v), `"`)
	}
	return out, sc.Err()
}

// flags makes a flag set with the flags every command takes. A word in
// backquotes in a flag's text names its value in the help (flag.UnquoteUsage).
// The flag package prints nothing: a flag error is reported the contract's
// way by exitCode, and help is printed by run from the flag set.
func (c *config) flags(name string) *flag.FlagSet {
	fs := flag.NewFlagSet("kluis "+name, flag.ContinueOnError)
	fs.SetOutput(io.Discard)
	fs.Usage = func() {}
	fs.StringVar(&c.DataDir, "data", c.DataDir, "the data `FOLDER`: embedded database, keys, audit witness, outboxes (or KLUIS_DATA)")
	fs.Var((*dsnFlag)(&c.DB), "db", "PostgreSQL instead of the embedded database: a postgres:// `DSN` without a password (a DSN with one goes in KLUIS_DB, or the password in a pgpass file)")
	fs.Var((*dsnFlag)(&c.KeysDB), "keys-db", "the key store in its own PostgreSQL database (scale-out): a postgres:// `DSN` without a password (or KLUIS_KEYS_DB); default DATA/keys/keys.db")
	return fs
}

// dsnFlag is the --db flag. Its value may come from KLUIS_DB and carry a
// password, so it never shows in the usage text that a flag error prints.
type dsnFlag string

func (f *dsnFlag) String() string     { return "" }
func (f *dsnFlag) Set(s string) error { *f = dsnFlag(s); return nil }

// parseFlags parses flags that may stand before or after positional
// arguments, and returns the positional ones. -h or --help among them
// returns a *helpRequest, which run answers with the command's help.
func parseFlags(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, &helpRequest{fs: fs}
			}
			return nil, &cliError{code: 2, msg: err.Error(), hint: usageHint}
		}
		args = fs.Args()
		if len(args) == 0 {
			return pos, nil
		}
		pos = append(pos, args[0])
		args = args[1:]
	}
}

// checkDSN refuses a --db flag that carries a password: secrets never come
// from the command line, where other users of the machine can read them.
func checkDSN(fromFlag bool, dsn string) error {
	if !fromFlag || dsn == "" {
		return nil
	}
	if u, err := url.Parse(dsn); err == nil {
		if _, has := u.User.Password(); has || u.Query().Has("password") {
			return &cliError{code: 2, msg: "--db must not contain a password",
				hint: "put the DSN with its password in KLUIS_DB, or the password in a pgpass file"}
		}
	}
	return nil
}

// app is an opened instance: database, key store, the store's areas and
// the audit keys.
type app struct {
	cfg      *config
	wire     wiring
	db       *sqlstore.DB
	keys     *keys.Store
	areas    *areas.Areas
	witness  audit.WitnessLog
	witnessF *audit.Witness // the witness file, in embedded mode
	sender   mail.Sender
	texter   sms.Sender
	log      *slog.Logger
	// metrics count from the start, key unwraps included; kluis serve
	// serves them (--metrics-addr).
	metrics *httpserver.Metrics
}

// wiring is what kluis serve gives the store at construction besides the
// metrics: the mail and SMS workers' wake-ups. The other commands run
// without (nobody to wake: they deliver before they exit).
type wiring struct {
	mailWake deliver.Waker
	smsWake  deliver.Waker
}

// open opens the database and the store. Only serve and migrate migrate;
// other commands refuse an unmigrated database with a hint.
func open(ctx context.Context, c *config, migrate bool, stderr io.Writer) (*app, error) {
	return openWired(ctx, c, migrate, wiring{}, stderr)
}

// openWired is open with the wiring of kluis serve.
func openWired(ctx context.Context, c *config, migrate bool, w wiring, stderr io.Writer) (*app, error) {
	log := slog.New(slog.NewJSONHandler(stderr, &slog.HandlerOptions{Level: c.LogLevel}))
	if !migrate && c.DB == "" {
		// Opening would create an empty database (and the folder): a
		// mistyped --data must not leave one behind.
		if _, err := os.Stat(filepath.Join(c.DataDir, "kluis.db")); errors.Is(err, fs.ErrNotExist) {
			return nil, &cliError{code: 1, msg: "no database in the data folder " + c.DataDir, hint: "run 'kluis migrate' (or start 'kluis serve') first, or check --data"}
		}
	}
	db, err := sqlstore.Open(ctx, c.DataDir, c.DB)
	if err != nil {
		return nil, fmt.Errorf("open database: %w", err)
	}
	if migrate {
		n, err := db.Migrate(ctx)
		if err != nil {
			db.Close()
			return nil, err
		}
		if n > 0 {
			log.Info("database migrated", "migrations", n, "engine", db.Engine)
		}
	} else if err := db.CheckMigrated(ctx); err != nil {
		db.Close()
		if errors.Is(err, sqlstore.ErrNotMigrated) {
			return nil, &cliError{code: 1, msg: "the database is not migrated", hint: "run 'kluis migrate' (or start 'kluis serve') first"}
		}
		return nil, err
	}
	a := &app{cfg: c, wire: w, db: db, log: log, metrics: httpserver.NewMetrics()}
	if err := a.init(ctx); err != nil {
		db.Close()
		return nil, err
	}
	return a, nil
}

func (a *app) init(ctx context.Context) error {
	c := a.cfg
	var err error
	if a.keys, err = a.openKeys(ctx); err != nil {
		return err
	}
	signer, err := a.signer(ctx)
	if err != nil {
		return err
	}
	// The witness of audit checkpoints (docs/SECURITY.md, Audit): a file in the data
	// folder in embedded mode; the key store when it is a PostgreSQL
	// database (scale-out mode), so that every node sees every checkpoint.
	if a.keys.Engine() == keys.Postgres {
		a.witness = a.keys.Witness()
	} else {
		if a.witnessF, err = audit.OpenWitness(filepath.Join(c.DataDir, "audit", "witness.log")); err != nil {
			return fmt.Errorf("audit witness: %w", err)
		}
		a.witness = a.witnessF
	}
	hasher, err := password.NewHasher(c.Argon2, 0)
	if err != nil {
		return err
	}
	publicURL := c.PublicURL
	if publicURL == "" {
		if publicURL, err = a.db.Setting(ctx, "public_url"); err != nil {
			return err
		}
	}
	if publicURL == "" {
		publicURL = "http://127.0.0.1:8080"
	}
	publicURL = strings.TrimRight(publicURL, "/")
	from := c.MailFrom
	if from == "" {
		host := "localhost"
		if u, err := url.Parse(publicURL); err == nil && u.Hostname() != "" && strings.Contains(u.Hostname(), ".") {
			host = u.Hostname()
		}
		from = "kluis@" + host
	}
	if c.SMTPURL != "" {
		if a.sender, err = mail.NewSMTP(c.SMTPURL, a.log); err != nil {
			return &cliError{code: 2, msg: "KLUIS_SMTP_URL: " + err.Error()}
		}
	} else {
		a.sender = &mail.Outbox{Dir: filepath.Join(c.DataDir, "outbox"), Logger: a.log}
	}
	if c.SMSURL != "" {
		if a.texter, err = sms.NewHTTPProvider(c.SMSURL, c.SMSToken, a.log); err != nil {
			return &cliError{code: 2, msg: "KLUIS_SMS_URL: " + err.Error()}
		}
	} else {
		a.texter = &sms.Outbox{Dir: filepath.Join(c.DataDir, "sms-outbox"), Logger: a.log}
	}
	opts := sqlstore.Options{Keys: a.keys, Log: a.log, PublicURL: publicURL, MailFrom: from, Observer: a.metrics}
	if a.wire.mailWake != nil {
		opts.MailQueued = a.wire.mailWake.Notify
	}
	if a.wire.smsWake != nil {
		opts.SMSQueued = a.wire.smsWake.Notify
	}
	core, err := sqlstore.New(a.db, opts)
	if err != nil {
		return err
	}
	blobs, err := a.contentStore()
	if err != nil {
		return err
	}
	bo, err := a.backupOptions()
	if err != nil {
		return err
	}
	a.areas = areas.New(core, areas.Config{Hasher: hasher, Signer: signer, Witness: a.witness, SecurityEmail: c.SecurityEmail,
		Blobs: blobs, MaxFileSize: c.MaxFileBytes, Backup: bo, LicenceGrace: c.LicenceGrace})
	// The key store records every key event itself; Start also moves those
	// a stopped process left behind into the audit chains.
	return a.areas.Start(ctx)
}

// signer loads the key that signs audit checkpoints. The database records
// the key's fingerprint: a command run with another data folder (or a node
// without a copy of the key) refuses instead of signing checkpoints no one
// else can verify. Only a database that has no key yet gets a new one.
func (a *app) signer(ctx context.Context) (*audit.Signer, error) {
	path := filepath.Join(a.cfg.DataDir, "keys", "audit-signing.key")
	recorded, err := a.db.Setting(ctx, "audit_signing_key")
	if err != nil {
		return nil, err
	}
	const hint = "use the data folder holding this database's keys/audit-signing.key, or copy that file from another node"
	if _, err := os.Stat(path); errors.Is(err, fs.ErrNotExist) && recorded != "" {
		return nil, &cliError{code: 2, msg: "the audit signing key is missing from " + path, hint: hint}
	}
	signer, err := audit.LoadOrCreateSigner(path)
	if err != nil {
		return nil, fmt.Errorf("audit signing key: %w", err)
	}
	sum := sha256.Sum256(signer.PublicKey())
	fingerprint := hex.EncodeToString(sum[:])
	if recorded, err = a.db.SettingOnce(ctx, "audit_signing_key", fingerprint); err != nil {
		return nil, err
	}
	if recorded != fingerprint {
		return nil, &cliError{code: 2, msg: "the audit signing key in " + path + " is not the one this database's checkpoints are signed with", hint: hint}
	}
	return signer, nil
}

// finish delivers the mail this command queued and checkpoints the chains it
// wrote, then closes everything.
func (a *app) finish(ctx context.Context) error {
	w := mail.NewWorker(a.areas.MailQueue, a.sender, a.log, nil, nil)
	_, merr := w.DeliverDue(ctx)
	_, cerr := a.areas.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, true)
	return errors.Join(merr, cerr, a.close())
}

func (a *app) close() error {
	err := a.db.Close()
	if a.areas != nil {
		for _, t := range a.areas.Backups.Targets() {
			err = errors.Join(err, t.Close())
		}
	}
	if a.witnessF != nil {
		err = errors.Join(a.witnessF.Close(), err)
	}
	if a.keys != nil {
		err = errors.Join(a.keys.Close(), err)
	}
	return err
}

// rootKeyPath is where the root key lives: never in any database (docs/KEYS.md).
func (c *config) rootKeyPath() string {
	if c.RootKeyFile != "" {
		return c.RootKeyFile
	}
	return filepath.Join(c.DataDir, "keys", "root")
}

// openKeys opens the key store apart from the data database and checks it
// against the root key. A root key is created only together with a new key
// store, and the person starting kluis is told plainly to back it up; a key
// store made with another root key refuses to open and nothing changes.
func (a *app) openKeys(ctx context.Context) (*keys.Store, error) {
	c := a.cfg
	path := c.rootKeyPath()
	dsn := c.KeysDB
	if dsn == "" {
		dsn = filepath.Join(c.DataDir, "keys", "keys.db")
	}
	_, statErr := os.Stat(path)
	var root *keys.Root
	var err error
	created := false
	if errors.Is(statErr, fs.ErrNotExist) {
		if !strings.HasPrefix(dsn, "postgres") {
			if _, serr := os.Stat(dsn); serr == nil {
				return nil, &cliError{code: 2, msg: "the root key is missing from " + path + " but the key store exists",
					hint: "restore the root key from its backup (docs/KEYS.md); without it the data cannot be read"}
			}
		}
		if root, err = keys.LoadOrCreateRoot(path); err != nil {
			return nil, fmt.Errorf("root key: %w", err)
		}
		created = true
	} else if root, err = keys.LoadRoot(path); err != nil {
		return nil, fmt.Errorf("root key: %w", err)
	}
	store, err := keys.OpenStore(ctx, dsn, root, nil, keys.Options{
		CacheTTL: c.KeyCacheTTL,
		// After another process rotated the root key, the new key is in
		// root.new from the key store's commit until the rename: prefer it.
		ReloadRoot: func() (*keys.Root, error) {
			if r, err := keys.LoadRoot(path + ".new"); err == nil {
				return r, nil
			}
			return keys.LoadRoot(path)
		},
		Observer: a.metrics, // counts unwraps (R28)
	})
	if created && err != nil {
		os.Remove(path) // the refusal changes nothing, not even the key folder
	} else if created {
		a.log.Warn("a new root key was created: back it up now (kluis keys export-root); if it is lost, the data is lost", "path", path)
	}
	if errors.Is(err, keys.ErrRootMismatch) {
		return nil, &cliError{code: 2, msg: "the root key in " + path + " is not the key the key store was made with; nothing was changed",
			hint: "start kluis with the right root key (KLUIS_ROOT_KEY_FILE or the data folder that holds it)"}
	}
	if err != nil {
		return nil, fmt.Errorf("key store: %w", err)
	}
	return store, nil
}
