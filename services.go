package kluis

// Services are the areas' services as the composition root (cmd/kluis)
// builds them over one database. It is handed to the adapters' constructors
// only; each handler then takes the one or two services it uses, so no
// signature inside an adapter reaches more than it needs.
type Services struct {
	Orgs      OrgService
	Policies  PolicyService
	Logins    LoginsService
	Users     UserService
	Accounts  AccountService
	SignIn    SignInService
	Sessions  SessionService
	Recovery  RecoveryService
	Factors   FactorService
	Tokens    TokenService
	Throttle  ThrottleService
	Audit     AuditService
	Operators OperatorService
	Keys      KeyService
	Projects  ProjectService
	Grants    GrantService
	Groups    GroupService
	Files     FileService
	Versions  VersionService
	Support   SupportService
	Export    ExportService
	Licences  LicenceService
	Inbox     InboxService
	Backups   BackupService
	Jobs      JobService
	// Personal is a person's access, portability and erasure (issue 15).
	Personal PersonalDataService
	// Retention (issue 15): the read-only state after a licence ends.
	Retention RetentionService
	// The register of data-subject requests (issue 15, R34).
	PrivacyRequests PrivacyRequestService
	// Restriction of processing and maintenance announcements (issue 15).
	Restrictions  RestrictionService
	Announcements AnnouncementService
	// Anonymous statistics and crash reports (R37, R38).
	Usage   UsageService
	Crashes CrashService
}
