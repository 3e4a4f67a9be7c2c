// Package areas builds every area of the store over one core: the one
// place where the storage side is wired, used by kluis serve, the other
// commands and the test fixtures alike. Each area is constructed with what
// it needs, once; nothing is bound later.
package areas

import (
	"context"
	"path/filepath"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/audit"
	"github.com/kluis/kluis/internal/content"
	"github.com/kluis/kluis/internal/password"
	"github.com/kluis/kluis/internal/sqlstore"
	"github.com/kluis/kluis/internal/sqlstore/announcements"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
	"github.com/kluis/kluis/internal/sqlstore/backups"
	"github.com/kluis/kluis/internal/sqlstore/crashes"
	"github.com/kluis/kluis/internal/sqlstore/factors"
	"github.com/kluis/kluis/internal/sqlstore/inbox"
	"github.com/kluis/kluis/internal/sqlstore/jobs"
	"github.com/kluis/kluis/internal/sqlstore/keywork"
	"github.com/kluis/kluis/internal/sqlstore/licences"
	"github.com/kluis/kluis/internal/sqlstore/operators"
	"github.com/kluis/kluis/internal/sqlstore/orgexport"
	"github.com/kluis/kluis/internal/sqlstore/orgs"
	"github.com/kluis/kluis/internal/sqlstore/outbox"
	"github.com/kluis/kluis/internal/sqlstore/personal"
	"github.com/kluis/kluis/internal/sqlstore/privacy"
	"github.com/kluis/kluis/internal/sqlstore/projects"
	"github.com/kluis/kluis/internal/sqlstore/retention"
	"github.com/kluis/kluis/internal/sqlstore/rights"
	"github.com/kluis/kluis/internal/sqlstore/signin"
	"github.com/kluis/kluis/internal/sqlstore/support"
	"github.com/kluis/kluis/internal/sqlstore/throttle"
	"github.com/kluis/kluis/internal/sqlstore/tokens"
	"github.com/kluis/kluis/internal/sqlstore/usage"
	"github.com/kluis/kluis/internal/sqlstore/users"
)

// Config is what the areas need beyond the core.
type Config struct {
	Hasher  *password.Hasher // required
	Signer  *audit.Signer    // required: signs audit checkpoints
	Witness audit.WitnessLog // required: the checkpoint copy outside the database
	// Throttle holds the brute-force protection's numbers; zero fields
	// take throttle.DefaultConfig's.
	Throttle throttle.Config
	// Blobs keeps projects' sealed chunks: the data folder's content
	// folder in embedded mode; nil keeps them in the database.
	Blobs content.Blobs
	// MaxFileSize bounds one file of a project; 0: kluis.DefaultMaxFileSize.
	MaxFileSize int64
	// SecurityEmail is the operator's security address: alarms and the
	// security digest go there (R26), and every alert that opens
	// (package jobs). Empty: not mailed.
	SecurityEmail string
	// Backup configures the backup engine (targets, recipients, drill key,
	// key files, retention); the content store, witness and checkpoint key
	// are filled in here. Without targets the record still reads.
	Backup backups.Options
	// LicenceGrace is how long an organisation is read-only after its
	// licence ended before it is erased (R36); 0: the default, 30 days.
	LicenceGrace time.Duration
}

// Areas are the store's areas over one core.
type Areas struct {
	Core      *sqlstore.Core
	Orgs      *orgs.Service
	Users     *users.Service
	SignIn    *signin.Service
	Factors   *factors.Service
	Tokens    *tokens.Service
	Throttle  *throttle.Service
	Audit     *auditlog.Service
	Operators *operators.Service
	KeyWork   *keywork.Service
	MailQueue *outbox.Mail
	SMSQueue  *outbox.SMS
	Projects  *projects.Service
	Rights    *rights.Service
	Support   *support.Service
	Export    *orgexport.Service
	Licences  *licences.Service
	Inbox     *inbox.Service
	Backups   *backups.Service
	Jobs      *jobs.Service
	// Personal: access, portability and erasure (issue 15).
	Personal  *personal.Service
	Retention *retention.Service
	// The register of data-subject requests (issue 15, R34).
	PrivacyRequests *privacy.Service
	// Maintenance announcements (issue 15); restriction is in Users.
	Announcements *announcements.Service
	// Anonymous statistics and crash reports (R37, R38).
	Usage   *usage.Service
	Crashes *crashes.Service
}

// New builds the areas over core.
func New(core *sqlstore.Core, c Config) *Areas {
	a := &Areas{Core: core}
	a.Throttle = throttle.New(core, c.Throttle, c.SecurityEmail)
	a.Tokens = tokens.New(core)
	a.Factors = factors.New(core)
	a.Users = users.New(core, c.Hasher, a.Throttle)
	a.Projects = projects.New(core, projects.Options{Blobs: c.Blobs, MaxFileSize: c.MaxFileSize})
	a.Orgs = orgs.New(core, a.Users, a.Projects)
	a.SignIn = signin.New(core, c.Hasher, a.Throttle, a.Factors, a.Tokens)
	a.Operators = operators.New(core, c.Hasher, a.Throttle, a.Factors)
	a.Audit = auditlog.New(core, c.Signer, c.Witness)
	a.KeyWork = keywork.New(core, a.Orgs)
	a.MailQueue = outbox.NewMail(core)
	a.SMSQueue = outbox.NewSMS(core)
	a.Rights = rights.New(core)
	a.Support = support.New(core)
	a.Export = orgexport.New(core, a.Projects, a.Rights, a.Audit)
	a.Licences = licences.New(core)
	a.Inbox = inbox.New(core)
	bo := c.Backup
	bo.Blobs = c.Blobs
	if bo.Blobs == nil {
		bo.Blobs = projects.DBBlobs(core.DB())
	}
	bo.Witness = c.Witness
	if c.Signer != nil {
		bo.CheckpointKey = c.Signer.PublicKey()
	}
	a.Backups = backups.New(core, bo)
	a.Jobs = jobs.New(core, c.SecurityEmail)
	a.PrivacyRequests = privacy.New(core)
	a.Personal = personal.New(core, a.Users, a.Projects, a.PrivacyRequests)
	a.Retention = retention.New(core, a.Users, a.Projects, a.Audit, a.Jobs, retention.Options{Grace: c.LicenceGrace})
	a.Announcements = announcements.New(core)
	a.Usage, a.Crashes = usage.New(core), crashes.New(core)
	return a
}

// Start makes what must exist before requests are served: the platform key
// and the throttle's secret (first writer wins, also across nodes).
func (a *Areas) Start(ctx context.Context) error {
	if err := a.Throttle.EnsureSecret(ctx); err != nil {
		return err
	}
	return a.Core.EnsurePlatformKey(ctx)
}

// ContentStore is where projects' sealed chunks live for the engine of db
// (DESIGN §8): the folder DATA/content with the embedded SQLite database,
// the database itself with PostgreSQL (nil), which every node shares.
func ContentStore(db *sqlstore.DB, dataDir string) (content.Blobs, error) {
	if db.Engine == sqlstore.Postgres {
		return nil, nil
	}
	return content.OpenDir(filepath.Join(dataDir, "content"))
}

// Services are the areas as the adapters see them: one domain interface
// each.
func (a *Areas) Services() kluis.Services {
	return kluis.Services{
		Orgs: a.Orgs, Policies: a.Orgs, Logins: a.Orgs,
		Users: a.Users, Accounts: a.Users,
		SignIn: a.SignIn, Sessions: a.SignIn, Recovery: a.SignIn,
		Factors: a.Factors, Tokens: a.Tokens, Throttle: a.Throttle,
		Audit: a.Audit, Operators: a.Operators, Keys: a.KeyWork,
		Projects: a.Projects, Grants: a.Rights, Groups: a.Rights,
		Files: a.Projects, Versions: a.Projects, Support: a.Support,
		Export:   a.Export,
		Licences: a.Licences,
		Inbox:    a.Inbox,
		Backups:  a.Backups,
		Jobs:     a.Jobs,
		Personal: a.Personal,
		// Retention (issue 15).
		Retention: a.Retention,
		// issue 15, R34
		PrivacyRequests: a.PrivacyRequests,
		// Restriction and announcements (issue 15).
		Restrictions: a.Users, Announcements: a.Announcements,
		Usage: a.Usage, Crashes: a.Crashes,
	}
}
