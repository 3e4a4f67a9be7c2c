package httpserver

import (
	"context"
	"net/http"

	"github.com/kluis/kluis"
)

// Route is one entry of the HTTP surface.
type Route struct {
	Method  string
	Pattern string
	// Realm says who may call it: "public", "org-public" (anyone, within an
	// existing organisation), "org" (a signed-in user of that organisation)
	// or "operator"; the pages' realms start with "page". Tests walk this
	// table.
	Realm string
	// Enrolment says that a session limited to enrolling a second factor
	// (R17: the organisation requires one, or the person is operator staff,
	// who always must have one) may use the route. Every other signed-in
	// route refuses such a session (checkEnrolment).
	Enrolment bool
	Handler   http.Handler
}

// The values of Route.Enrolment.
const (
	enrolment = true  // one of enrolment's routes: allowed while enrolling
	regular   = false // refused while enrolling (or open to anyone)
)

// routes is the whole HTTP surface of kluis (shared/CONTRACT.md). The
// wrappers org, orgUser, orgSession, operatorPublic and operator (orgPage
// and operatorPage for pages) resolve the realm, the tenant and the actor
// before any handler runs; each handler gets only the services it uses, and
// rights are checked in the service methods they call. Sign-in, second
// factors and sign-out are one handler for both realms, mounted twice.
func (s *server) routes(svc kluis.Services, ready func(context.Context) error) []Route {
	myAccount := showMyAccount(svc.Accounts, svc.Sessions, svc.Factors, svc.Tokens)
	staffAccount := showOperatorAccount(svc.Operators)
	staffAddress := operatorAddress(svc.Operators)
	person := userView{users: svc.Users, throttle: svc.Throttle, factors: svc.Factors}
	project := projectView{projects: svc.Projects, files: svc.Files, versions: svc.Versions, licences: svc.Licences}
	licence := licenceView{licences: svc.Licences, projects: svc.Projects, users: svc.Users}
	operatorOrg := operatorOrgView{orgs: svc.Orgs, licences: svc.Licences}
	history := versionsView{projects: svc.Projects, versions: svc.Versions}
	oneVersion := versionView{projects: svc.Projects, files: svc.Files, versions: svc.Versions}
	projectRights := rightsView{projects: svc.Projects, grants: svc.Grants, users: svc.Users, groups: svc.Groups, versions: svc.Versions, support: svc.Support}
	groups := groupsView{groups: svc.Groups, users: svc.Users}
	support := supportView{support: svc.Support, projects: svc.Projects, users: svc.Users}
	return []Route{
		{"GET", "/healthz", "public", regular, handleHealth()},
		{"GET", "/readyz", "public", regular, handleReady(ready)},
		{"GET", "/api/openapi.json", "public", regular, handleOpenAPI()},

		// Operator realm.
		{"POST", "/api/v1/operator/login", "public", regular, s.operatorPublic(handleLogin(svc.SignIn))},
		{"POST", "/api/v1/operator/login/mfa", "public", regular, s.operatorPublic(handleLoginMFA(svc.SignIn))},
		{"POST", "/api/v1/operator/login/mfa/webauthn/options", "public", regular, s.operatorPublic(handlePrepareSecondStep(svc.SignIn, "webauthn"))},
		{"POST", "/api/v1/operator/logout", "operator", enrolment, s.operator(handleLogout(svc.SignIn))},
		{"GET", "/api/v1/operator/me", "operator", enrolment, s.operator(handleOperatorMe(svc.Operators))},
		{"POST", "/api/v1/operator/me/reauth", "operator", enrolment, s.operator(handleReauth(svc.SignIn))},
		{"POST", "/api/v1/operator/me/reauth/webauthn/options", "operator", enrolment, s.operator(handlePrepareReauth(svc.SignIn, "webauthn"))},
		{"POST", "/api/v1/operator/me/totp", "operator", enrolment, s.operator(handleStartTOTP(svc.Factors))},
		{"POST", "/api/v1/operator/me/totp/confirm", "operator", enrolment, s.operator(handleConfirmTOTP(svc.Factors))},
		{"GET", "/api/v1/operator/me/passkeys", "operator", enrolment, s.operator(handleListPasskeys(svc.Factors))},
		{"POST", "/api/v1/operator/me/passkeys/options", "operator", enrolment, s.operator(handleBeginPasskeyRegistration(svc.Factors))},
		{"POST", "/api/v1/operator/me/passkeys", "operator", enrolment, s.operator(handleFinishPasskeyRegistration(svc.Factors))},
		{"DELETE", "/api/v1/operator/me/passkeys/{id}", "operator", regular, s.operator(handleRemoveFactor(svc.Factors, kluis.FactorPasskey))},
		{"GET", "/api/v1/operator/logins", "operator", regular, s.operator(handleGetInstanceLogins(svc.Logins))},
		{"PUT", "/api/v1/operator/logins", "operator", regular, s.operator(handleSetInstanceLogins(svc.Logins))},
		{"GET", "/api/v1/orgs", "operator", regular, s.operator(handleListOrgs(svc.Orgs))},
		{"POST", "/api/v1/orgs", "operator", regular, s.operator(handleCreateOrg(svc.Orgs))},
		{"DELETE", "/api/v1/orgs/{org}", "operator", regular, s.operator(handleDeleteOrg(svc.Orgs))},
		// Support asks for access and works through a grant (R22).
		{"POST", "/api/v1/operator/orgs/{org}/support-requests", "operator", regular, s.operator(handleRequestSupport(svc.Support))},
		{"GET", "/api/v1/operator/orgs/{org}/support-grants", "operator", regular, s.operator(handleOperatorSupportList(svc.Support))},
		{"POST", "/api/v1/operator/orgs/{org}/support-session", "operator", regular, s.operator(handleOpenSupportSession(svc.Support))},
		{"POST", "/api/v1/operator/orgs/{org}/erasures", "operator", regular, s.operator(handleEraseOnRequest(svc.Orgs, svc.Users))},
		// Maintenance announcements (issue 15, R3 R40 R45).
		{"POST", "/api/v1/operator/announcements", "operator", regular, s.operator(handleSendAnnouncement(svc.Announcements))},

		// Organisation realm, before sign-in.
		{"POST", "/api/v1/orgs/{org}/login", "org-public", regular, s.org(handleLogin(svc.SignIn))},
		{"POST", "/api/v1/orgs/{org}/login/mfa", "org-public", regular, s.org(handleLoginMFA(svc.SignIn))},
		{"POST", "/api/v1/orgs/{org}/login/mfa/webauthn/options", "org-public", regular, s.org(handlePrepareSecondStep(svc.SignIn, "webauthn"))},
		{"POST", "/api/v1/orgs/{org}/login/mfa/sms", "org-public", regular, s.org(handlePrepareSecondStep(svc.SignIn, "sms"))},
		{"POST", "/api/v1/orgs/{org}/invitations/accept", "org-public", regular, s.org(handleAcceptInvitation(svc.Users))},
		{"POST", "/api/v1/orgs/{org}/password-reset", "org-public", regular, s.org(handleRequestPasswordReset(svc.Recovery))},
		{"POST", "/api/v1/orgs/{org}/password-reset/confirm", "org-public", regular, s.org(handleConfirmPasswordReset(svc.Recovery))},
		{"POST", "/api/v1/orgs/{org}/unlock", "org-public", regular, s.org(handleUnlock(svc.Recovery))},

		// Organisation realm, signed in.
		{"POST", "/api/v1/orgs/{org}/logout", "org", enrolment, s.orgUser(handleLogout(svc.SignIn))},
		{"GET", "/api/v1/orgs/{org}/me", "org", enrolment, s.orgUser(handleGetMe())},
		{"PATCH", "/api/v1/orgs/{org}/me", "org", regular, s.orgUser(handleUpdateMe(svc.Accounts))},
		{"POST", "/api/v1/orgs/{org}/me/password", "org", regular, s.orgSession(handleChangePassword(svc.SignIn))},
		{"POST", "/api/v1/orgs/{org}/me/reauth", "org", enrolment, s.orgSession(handleReauth(svc.SignIn))},
		{"POST", "/api/v1/orgs/{org}/me/totp", "org", enrolment, s.orgSession(handleStartTOTP(svc.Factors))},
		{"POST", "/api/v1/orgs/{org}/me/totp/confirm", "org", enrolment, s.orgSession(handleConfirmTOTP(svc.Factors))},
		{"DELETE", "/api/v1/orgs/{org}/me/totp", "org", regular, s.orgSession(handleRemoveFactor(svc.Factors, kluis.FactorTOTP))},
		{"POST", "/api/v1/orgs/{org}/me/reauth/webauthn/options", "org", enrolment, s.orgSession(handlePrepareReauth(svc.SignIn, "webauthn"))},
		{"POST", "/api/v1/orgs/{org}/me/reauth/sms", "org", enrolment, s.orgSession(handlePrepareReauth(svc.SignIn, "sms"))},
		{"POST", "/api/v1/orgs/{org}/me/sms", "org", enrolment, s.orgSession(handleStartSMS(svc.Factors))},
		{"POST", "/api/v1/orgs/{org}/me/sms/confirm", "org", enrolment, s.orgSession(handleConfirmSMS(svc.Factors))},
		{"DELETE", "/api/v1/orgs/{org}/me/sms", "org", regular, s.orgSession(handleRemoveFactor(svc.Factors, kluis.FactorSMS))},
		{"GET", "/api/v1/orgs/{org}/me/passkeys", "org", enrolment, s.orgSession(handleListPasskeys(svc.Factors))},
		{"POST", "/api/v1/orgs/{org}/me/passkeys/options", "org", enrolment, s.orgSession(handleBeginPasskeyRegistration(svc.Factors))},
		{"POST", "/api/v1/orgs/{org}/me/passkeys", "org", enrolment, s.orgSession(handleFinishPasskeyRegistration(svc.Factors))},
		{"DELETE", "/api/v1/orgs/{org}/me/passkeys/{id}", "org", regular, s.orgSession(handleRemoveFactor(svc.Factors, kluis.FactorPasskey))},
		{"GET", "/api/v1/orgs/{org}/me/sessions", "org", regular, s.orgUser(handleListSessions(svc.Sessions))},
		{"DELETE", "/api/v1/orgs/{org}/me/sessions", "org", regular, s.orgSession(handleEndOtherSessions(svc.Sessions))},
		{"DELETE", "/api/v1/orgs/{org}/me/sessions/{id}", "org", regular, s.orgSession(handleEndSession(svc.Sessions))},
		// Personal API tokens and the e-mail address: orgSession refuses
		// tokens on everything but listing and revoking tokens.
		{"GET", "/api/v1/orgs/{org}/me/tokens", "org", regular, s.orgUser(handleListTokens(svc.Tokens))},
		{"POST", "/api/v1/orgs/{org}/me/tokens", "org", regular, s.orgSession(handleCreateToken(svc.Tokens))},
		{"DELETE", "/api/v1/orgs/{org}/me/tokens/{id}", "org", regular, s.orgUser(handleRevokeToken(svc.Tokens))},
		{"POST", "/api/v1/orgs/{org}/me/email", "org", regular, s.orgSession(handleRequestEmailChange(svc.Accounts))},
		{"POST", "/api/v1/orgs/{org}/me/email/confirm", "org", regular, s.orgSession(handleConfirmEmailChange(svc.Accounts))},
		{"GET", "/api/v1/orgs/{org}/users", "org", regular, s.orgActor(handleListUsers(svc.Users, svc.Factors))},
		{"POST", "/api/v1/orgs/{org}/users", "org", regular, s.orgActor(handleInviteUser(svc.Users))},
		{"GET", "/api/v1/orgs/{org}/users/{id}", "org", regular, s.orgActor(handleGetUser(svc.Users, svc.Factors))},
		{"PATCH", "/api/v1/orgs/{org}/users/{id}", "org", regular, s.orgActor(handleUpdateUser(svc.Users))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}", "org", regular, s.orgActor(handleDeleteUser(svc.Users))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/invitation", "org", regular, s.orgActor(handleResendInvitation(svc.Users))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/invitation", "org", regular, s.orgActor(handleRevokeInvitation(svc.Users))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/unlock", "org", regular, s.orgActor(handleUnlockUser(svc.Throttle))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/factors", "org", regular, s.orgSession(handleResetFactors(svc.Factors))},
		{"GET", "/api/v1/orgs/{org}/policy", "org", regular, s.orgActor(handleGetPolicy(svc.Policies))},
		{"PUT", "/api/v1/orgs/{org}/policy", "org", regular, s.orgActor(handleUpdatePolicy(svc.Policies))},
		{"GET", "/api/v1/orgs/{org}/logins", "org", regular, s.orgActor(handleGetLogins(svc.Logins))},
		{"PUT", "/api/v1/orgs/{org}/logins", "org", regular, s.orgActor(handleSetLogins(svc.Logins))},
		{"GET", "/api/v1/orgs/{org}/audit", "org", regular, s.orgActor(handleListAudit(svc.Audit))},
		{"GET", "/api/v1/orgs/{org}/audit/export", "org", regular, s.orgUser(handleExportAudit(svc.Audit))},
		{"GET", "/api/v1/orgs/{org}/audit/verify", "org", regular, s.orgActor(handleVerifyAudit(svc.Audit))},
		{"GET", "/api/v1/orgs/{org}/export", "org", regular, s.orgSession(handleExportOrg(svc.Export))},
		// The inbox and the count of administrators (issue 13, R5, R8).
		{"GET", "/api/v1/orgs/{org}/inbox", "org", regular, s.orgUser(handleListNotices(svc.Inbox))},
		{"POST", "/api/v1/orgs/{org}/inbox/{id}/read", "org", regular, s.orgUser(handleReadNotice(svc.Inbox))},
		{"GET", "/api/v1/orgs/{org}/administrators", "org", regular, s.orgActor(handleAdministrators(svc.Users))},
		// A person's own data: export and erasure (issue 15; R4 R5 R34).
		{"GET", "/api/v1/orgs/{org}/me/export", "org", regular, s.orgSession(handleExportMe(svc.Personal))},
		{"DELETE", "/api/v1/orgs/{org}/me", "org", regular, s.orgSession(handleEraseMe(svc.Personal))},
		{"GET", "/api/v1/orgs/{org}/users/{id}/export", "org", regular, s.orgSession(handleExportUser(svc.Personal))},
		// Restriction of processing (issue 15, R34).
		{"POST", "/api/v1/orgs/{org}/me/restriction", "org", regular, s.orgUser(handleRestriction(svc.Restrictions, true, true))},
		{"DELETE", "/api/v1/orgs/{org}/me/restriction", "org", regular, s.orgUser(handleRestriction(svc.Restrictions, true, false))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/restriction", "org", regular, s.orgUser(handleRestriction(svc.Restrictions, false, true))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/restriction", "org", regular, s.orgUser(handleRestriction(svc.Restrictions, false, false))},
		// Where the organisation's data is backed up, and when (R31 R32 R42).
		{"GET", "/api/v1/orgs/{org}/backups", "org", regular, s.orgUser(handleBackupOverview(svc.Backups))},
		// The register of data-subject requests and the privacy page's
		// settings (issue 15, R34). Support sessions never reach them.
		{"GET", "/api/v1/orgs/{org}/privacy-requests", "org", regular, s.orgUser(handleListPrivacyRequests(svc.PrivacyRequests))},
		{"POST", "/api/v1/orgs/{org}/privacy-requests", "org", regular, s.orgUser(handleFilePrivacyRequest(svc.PrivacyRequests))},
		{"PATCH", "/api/v1/orgs/{org}/privacy-requests/{id}", "org", regular, s.orgUser(handleUpdatePrivacyRequest(svc.PrivacyRequests))},
		{"GET", "/api/v1/orgs/{org}/privacy-settings", "org", regular, s.orgUser(handleGetPrivacySettings(svc.PrivacyRequests))},
		{"PUT", "/api/v1/orgs/{org}/privacy-settings", "org", regular, s.orgUser(handleSetPrivacySettings(svc.PrivacyRequests))},

		// Projects, their rights and groups (R2, R6, R7, R9, R12): the
		// service methods ask the rights engine.
		{"POST", "/api/v1/orgs/{org}/projects", "org", regular, s.orgUser(handleCreateProject(svc.Projects))},
		{"GET", "/api/v1/orgs/{org}/projects", "org", regular, s.orgActor(handleListProjects(svc.Projects))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}", "org", regular, s.orgActor(handleGetProject(svc.Projects))},
		{"PATCH", "/api/v1/orgs/{org}/projects/{id}", "org", regular, s.orgActor(handleUpdateProject(svc.Projects))},
		{"DELETE", "/api/v1/orgs/{org}/projects/{id}", "org", regular, s.orgActor(handleDeleteProject(svc.Projects))},
		{"GET", "/api/v1/orgs/{org}/trash", "org", regular, s.orgActor(handleListTrash(svc.Projects))},
		{"POST", "/api/v1/orgs/{org}/projects/{id}/undelete", "org", regular, s.orgActor(handleUndeleteProject(svc.Projects))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/grants", "org", regular, s.orgActor(handleListGrants(svc.Grants))},
		{"PUT", "/api/v1/orgs/{org}/projects/{id}/grants/{subject}", "org", regular, s.orgActor(handleSetGrant(svc.Grants))},
		{"DELETE", "/api/v1/orgs/{org}/projects/{id}/grants/{subject}", "org", regular, s.orgActor(handleRemoveGrant(svc.Grants))},
		{"PUT", "/api/v1/orgs/{org}/projects/{id}/files/{path...}", "org", regular, s.orgActor(s.handlePutFile(svc.Files))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/files/{path...}", "org", regular, s.orgActor(handleGetFile(svc.Files, false))},
		{"DELETE", "/api/v1/orgs/{org}/projects/{id}/files/{path...}", "org", regular, s.orgActor(handleDeleteFile(svc.Files))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/tree", "org", regular, s.orgActor(handleTree(svc.Files, false))},
		{"POST", "/api/v1/orgs/{org}/projects/{id}/versions", "org", regular, s.orgActor(handleCreateVersion(svc.Versions))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/versions", "org", regular, s.orgActor(handleListVersions(svc.Versions))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/versions/{n}/tree", "org", regular, s.orgActor(handleTree(svc.Files, true))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/versions/{n}/files/{path...}", "org", regular, s.orgActor(handleGetFile(svc.Files, true))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/versions/{n}/diff", "org", regular, s.orgActor(handleDiff(svc.Versions))},
		{"GET", "/api/v1/orgs/{org}/projects/{id}/versions/{n}/zip", "org", regular, s.orgActor(handleVersionZip(svc.Versions))},
		{"POST", "/api/v1/orgs/{org}/projects/{id}/versions/{n}/restore", "org", regular, s.orgActor(handleRestoreVersion(svc.Versions))},
		{"POST", "/api/v1/orgs/{org}/groups", "org", regular, s.orgActor(handleCreateGroup(svc.Groups))},
		{"GET", "/api/v1/orgs/{org}/groups", "org", regular, s.orgActor(handleListGroups(svc.Groups))},
		{"DELETE", "/api/v1/orgs/{org}/groups/{id}", "org", regular, s.orgActor(handleDeleteGroup(svc.Groups))},
		{"PUT", "/api/v1/orgs/{org}/groups/{id}/members/{user}", "org", regular, s.orgActor(handleGroupMember(svc.Groups, true))},
		{"DELETE", "/api/v1/orgs/{org}/groups/{id}/members/{user}", "org", regular, s.orgActor(handleGroupMember(svc.Groups, false))},

		// Support access by consent (R22): the customer's side. Support
		// sessions never reach these (orgUser).
		{"POST", "/api/v1/orgs/{org}/support-grants", "org", regular, s.orgSession(handleGrantSupport(svc.Support))},
		{"GET", "/api/v1/orgs/{org}/support-grants", "org", regular, s.orgUser(handleListSupport(svc.Support))},
		{"DELETE", "/api/v1/orgs/{org}/support-grants/{id}", "org", regular, s.orgUser(handleRevokeSupport(svc.Support))},
		{"POST", "/api/v1/orgs/{org}/support-grants/{id}/approve", "org", regular, s.orgSession(handleApproveSupportGrant(svc.Support))},
		{"POST", "/api/v1/orgs/{org}/support-requests/{id}/approve", "org", regular, s.orgSession(handleApproveSupportRequest(svc.Support))},
		{"POST", "/api/v1/orgs/{org}/support-requests/{id}/refuse", "org", regular, s.orgUser(handleRefuseSupportRequest(svc.Support))},
		// Licences and activity (R13): the licence's path serves the
		// organisation's managers and the operator (orgOrOperator).
		{"GET", "/api/v1/orgs/{org}/licence", "org", regular, s.orgOrOperator(handleGetLicence(svc.Licences))},
		{"PUT", "/api/v1/orgs/{org}/licence", "org", regular, s.orgOrOperator(handleSetLicence(svc.Licences))},
		{"POST", "/api/v1/orgs/{org}/projects/{id}/start", "org", regular, s.orgUser(handleStartProject(svc.Licences))},
		{"POST", "/api/v1/orgs/{org}/projects/{id}/stop", "org", regular, s.orgUser(handleStopProject(svc.Licences))},
		{"GET", "/api/v1/orgs/{org}/activity", "org", regular, s.orgActor(handleListActivity(svc.Licences))},
		{"GET", "/api/v1/operator/orgs/{org}/activity", "operator", regular, s.operator(handleListActivityAnonymous(svc.Orgs, svc.Licences))},

		// The web interface (docs/UI.md). Its realms start with "page".
		{"GET", "/{$}", "page", regular, s.page(handleHomePage())},
		{"GET", "/static/{file}", "page", regular, s.static},
		{"POST", "/lang", "page", regular, s.page(handleLangForm())},

		{"GET", "/operator/login", "page-operator", regular, s.operatorPage(anyone, handleLoginPage())},
		{"POST", "/operator/login", "page-operator", regular, s.operatorPage(anyone, handleLoginForm(svc.SignIn))},
		{"GET", "/operator/login/mfa", "page-operator", regular, s.operatorPage(anyone, handleMFAPage(svc.SignIn))},
		{"POST", "/operator/login/mfa", "page-operator", regular, s.operatorPage(anyone, handleMFAForm(svc.SignIn))},
		{"POST", "/operator/logout", "page-operator", enrolment, s.operatorPage(signedIn, handleLogoutForm(svc.SignIn))},
		{"GET", "/operator", "page-operator", regular, s.operatorPage(signedIn, handleOrgsPage(svc.Orgs, svc.Logins))},
		{"POST", "/operator/orgs", "page-operator", regular, s.operatorPage(signedIn, handleCreateOrgForm(svc.Orgs, svc.Logins))},
		{"POST", "/operator/logins", "page-operator", regular, s.operatorPage(signedIn, handleInstanceLoginsForm(svc.Logins))},
		{"GET", "/operator/operators", "page-operator", regular, s.operatorPage(signedIn, handleOperatorsPage(svc.Operators))},
		// Maintenance announcements (issue 15, R3 R40 R45).
		{"GET", "/operator/announcements", "page-operator", regular, s.operatorPage(signedIn, handleAnnouncementsPage())},
		{"POST", "/operator/announcements", "page-operator", regular, s.operatorPage(signedIn, handleAnnouncementForm(svc.Announcements))},
		{"GET", "/operator/orgs/{org}/support", "page-operator", regular, s.operatorPage(signedIn, handleOperatorSupportPage(svc.Support))},
		{"POST", "/operator/orgs/{org}/support/requests", "page-operator", regular, s.operatorPage(signedIn, handleRequestSupportForm(svc.Support))},
		{"POST", "/operator/orgs/{org}/support/session", "page-operator", regular, s.operatorPage(signedIn, handleOpenSupportForm(svc.Support))},
		{"GET", "/operator/orgs/{org}", "page-operator", regular, s.operatorPage(signedIn, handleOperatorOrgPage(operatorOrg))},
		{"POST", "/operator/orgs/{org}/licence", "page-operator", regular, s.operatorPage(signedIn, handleLicenceForm(operatorOrg))},
		{"GET", "/operator/orgs/{org}/erase", "page-operator", regular, s.operatorPage(signedIn, handleErasePage(svc.Orgs))},
		{"POST", "/operator/orgs/{org}/erase", "page-operator", regular, s.operatorPage(signedIn, handleEraseForm(svc.Orgs, svc.Users))},
		{"GET", "/operator/account", "page-operator", enrolment, s.operatorPage(signedIn, handleAccountPage(staffAccount))},
		{"GET", "/operator/account/reauth", "page-operator", enrolment, s.operatorPage(signedIn, handleReauthPage(svc.SignIn, svc.Factors, staffAddress))},
		{"POST", "/operator/account/reauth", "page-operator", enrolment, s.operatorPage(signedIn, handleReauthForm(svc.SignIn, svc.Factors, staffAddress))},
		{"POST", "/operator/account/totp", "page-operator", enrolment, s.operatorPage(signedIn, handleStartTOTPForm(svc.Factors, staffAccount))},
		{"GET", "/operator/account/totp/qr.png", "page-operator", enrolment, s.operatorPage(signedIn, handleTOTPQRCode(svc.Factors))},
		{"POST", "/operator/account/totp/confirm", "page-operator", enrolment, s.operatorPage(signedIn, handleConfirmTOTPForm(svc.Factors))},
		{"POST", "/operator/account/passkeys/new", "page-operator", enrolment, s.operatorPage(signedIn, handleNewPasskeyForm(svc.Factors, staffAccount))},
		{"POST", "/operator/account/passkeys", "page-operator", enrolment, s.operatorPage(signedIn, handleAddPasskeyForm(svc.Factors, staffAccount))},
		{"POST", "/operator/account/passkeys/{id}/remove", "page-operator", regular, s.operatorPage(signedIn, handleRemovePasskeyForm(svc.Factors))},

		{"GET", "/o/{org}/{$}", "page-org", regular, s.orgPage(anyone, handleOrgHome())},
		{"GET", "/o/{org}/login", "page-org", regular, s.orgPage(anyone, handleLoginPage())},
		{"POST", "/o/{org}/login", "page-org", regular, s.orgPage(anyone, handleLoginForm(svc.SignIn))},
		{"GET", "/o/{org}/login/mfa", "page-org", regular, s.orgPage(anyone, handleMFAPage(svc.SignIn))},
		{"POST", "/o/{org}/login/mfa", "page-org", regular, s.orgPage(anyone, handleMFAForm(svc.SignIn))},
		{"POST", "/o/{org}/login/mfa/sms", "page-org", regular, s.orgPage(anyone, handleSendLoginSMSForm(svc.SignIn))},
		{"POST", "/o/{org}/logout", "page-org", enrolment, s.orgPage(signedIn, handleLogoutForm(svc.SignIn))},
		{"GET", "/o/{org}/signed-out", "page-org", regular, s.orgPage(anyone, handleSignedOutPage())},
		{"GET", "/o/{org}/forgot", "page-org", regular, s.orgPage(anyone, handleForgotPage())},
		{"POST", "/o/{org}/forgot", "page-org", regular, s.orgPage(anyone, handleForgotForm(svc.Recovery))},
		{"GET", "/o/{org}/reset", "page-org", regular, s.orgPage(anyone, handleResetPage())},
		{"POST", "/o/{org}/reset", "page-org", regular, s.orgPage(anyone, handleResetForm(svc.Recovery))},
		{"GET", "/o/{org}/unlock", "page-org", regular, s.orgPage(anyone, handleUnlockPage())},
		{"POST", "/o/{org}/unlock", "page-org", regular, s.orgPage(anyone, handleUnlockForm(svc.Recovery))},
		{"GET", "/o/{org}/invite", "page-org", regular, s.orgPage(anyone, handleInvitePage())},
		{"POST", "/o/{org}/invite", "page-org", regular, s.orgPage(anyone, handleInviteForm(svc.Users))},
		{"GET", "/o/{org}/account", "page-org", enrolment, s.orgPage(signedIn, handleAccountPage(myAccount))},
		{"POST", "/o/{org}/account/profile", "page-org", regular, s.orgPage(signedIn, handleProfileForm(svc.Accounts, myAccount))},
		{"POST", "/o/{org}/account/password", "page-org", regular, s.orgPage(signedIn, handlePasswordForm(svc.SignIn, myAccount))},
		{"GET", "/o/{org}/account/reauth", "page-org", enrolment, s.orgPage(signedIn, handleReauthPage(svc.SignIn, svc.Factors, userAddress))},
		{"POST", "/o/{org}/account/reauth", "page-org", enrolment, s.orgPage(signedIn, handleReauthForm(svc.SignIn, svc.Factors, userAddress))},
		{"POST", "/o/{org}/account/reauth/sms", "page-org", enrolment, s.orgPage(signedIn, handleSendReauthSMSForm(svc.SignIn, svc.Factors, userAddress))},
		{"POST", "/o/{org}/account/totp", "page-org", enrolment, s.orgPage(signedIn, handleStartTOTPForm(svc.Factors, myAccount))},
		{"GET", "/o/{org}/account/totp/qr.png", "page-org", enrolment, s.orgPage(signedIn, handleTOTPQRCode(svc.Factors))},
		{"POST", "/o/{org}/account/totp/confirm", "page-org", enrolment, s.orgPage(signedIn, handleConfirmTOTPForm(svc.Factors))},
		{"POST", "/o/{org}/account/totp/disable", "page-org", regular, s.orgPage(signedIn, handleRemoveFactorForm(svc.Factors, kluis.FactorTOTP, "totp_disabled"))},
		{"POST", "/o/{org}/account/sms", "page-org", enrolment, s.orgPage(signedIn, handleStartSMSForm(svc.Factors, myAccount))},
		{"POST", "/o/{org}/account/sms/confirm", "page-org", enrolment, s.orgPage(signedIn, handleConfirmSMSForm(svc.Factors))},
		{"POST", "/o/{org}/account/sms/disable", "page-org", regular, s.orgPage(signedIn, handleRemoveFactorForm(svc.Factors, kluis.FactorSMS, "sms_disabled"))},
		{"POST", "/o/{org}/account/passkeys/new", "page-org", enrolment, s.orgPage(signedIn, handleNewPasskeyForm(svc.Factors, myAccount))},
		{"POST", "/o/{org}/account/passkeys", "page-org", enrolment, s.orgPage(signedIn, handleAddPasskeyForm(svc.Factors, myAccount))},
		{"POST", "/o/{org}/account/passkeys/{id}/remove", "page-org", regular, s.orgPage(signedIn, handleRemovePasskeyForm(svc.Factors))},
		{"POST", "/o/{org}/account/sessions/{id}/end", "page-org", regular, s.orgPage(signedIn, handleEndSessionForm(svc.Sessions))},
		{"POST", "/o/{org}/account/sessions/end-others", "page-org", regular, s.orgPage(signedIn, handleEndOtherSessionsForm(svc.Sessions))},
		{"POST", "/o/{org}/account/email", "page-org", regular, s.orgPage(signedIn, handleEmailChangeForm(svc.Accounts, myAccount))},
		{"GET", "/o/{org}/confirm-email", "page-org", regular, s.orgPage(anyone, handleConfirmEmailPage())},
		{"POST", "/o/{org}/confirm-email", "page-org", regular, s.orgPage(signedIn, handleConfirmEmailForm(svc.Accounts))},
		{"POST", "/o/{org}/account/tokens", "page-org", regular, s.orgPage(signedIn, handleCreateTokenForm(svc.Tokens, myAccount))},
		{"POST", "/o/{org}/account/tokens/{id}/revoke", "page-org", regular, s.orgPage(signedIn, handleRevokeTokenForm(svc.Tokens))},
		{"GET", "/o/{org}/users", "page-org", regular, s.orgPage(working, handleUsersPage(svc.Users))},
		{"POST", "/o/{org}/users", "page-org", regular, s.orgPage(working, handleInviteUserForm(svc.Users))},
		{"GET", "/o/{org}/users/{id}", "page-org", regular, s.orgPage(working, handleUserPage(person))},
		{"POST", "/o/{org}/users/{id}", "page-org", regular, s.orgPage(working, handleUpdateUserForm(person))},
		{"POST", "/o/{org}/users/{id}/invitation/resend", "page-org", regular, s.orgPage(working, handleInvitationForm(person, false))},
		{"POST", "/o/{org}/users/{id}/invitation/revoke", "page-org", regular, s.orgPage(working, handleInvitationForm(person, true))},
		{"POST", "/o/{org}/users/{id}/unlock", "page-org", regular, s.orgPage(working, handleUnlockUserForm(svc.Throttle))},
		{"POST", "/o/{org}/users/{id}/factors/reset", "page-org", regular, s.orgPage(signedIn, handleResetFactorsForm(svc.Factors))},
		// Restriction of processing (issue 15, R34).
		{"POST", "/o/{org}/users/{id}/restriction", "page-org", regular, s.orgPage(signedIn, handleRestrictionForm(svc.Restrictions, false, true))},
		{"POST", "/o/{org}/users/{id}/restriction/lift", "page-org", regular, s.orgPage(signedIn, handleRestrictionForm(svc.Restrictions, false, false))},
		{"POST", "/o/{org}/account/restriction", "page-org", regular, s.orgPage(signedIn, handleRestrictionForm(svc.Restrictions, true, true))},
		{"POST", "/o/{org}/account/restriction/lift", "page-org", regular, s.orgPage(signedIn, handleRestrictionForm(svc.Restrictions, true, false))},
		{"GET", "/o/{org}/users/{id}/delete", "page-org", regular, s.orgPage(signedIn, handleDeleteUserPage(person))},
		{"POST", "/o/{org}/users/{id}/delete", "page-org", regular, s.orgPage(signedIn, handleDeleteUserForm(person))},
		{"GET", "/o/{org}/policy", "page-org", regular, s.orgPage(signedIn, handlePolicyPage(svc.Policies, svc.Logins))},
		{"POST", "/o/{org}/policy", "page-org", regular, s.orgPage(signedIn, handlePolicyForm(svc.Policies, svc.Logins))},
		{"POST", "/o/{org}/logins", "page-org", regular, s.orgPage(signedIn, handleLoginsForm(svc.Logins))},
		{"GET", "/o/{org}/audit", "page-org", regular, s.orgPage(working, handleAuditPage(svc.Audit))},
		{"GET", "/o/{org}/audit/verify", "page-org", regular, s.orgPage(working, handleAuditVerifyPage(svc.Audit))},
		{"POST", "/o/{org}/export", "page-org", regular, s.orgPage(signedIn, handleExportOrgForm(svc.Export))},
		{"GET", "/o/{org}/inbox", "page-org", regular, s.orgPage(signedIn, handleInboxPage(svc.Inbox))},
		{"POST", "/o/{org}/inbox/{id}/read", "page-org", regular, s.orgPage(signedIn, handleReadNoticeForm(svc.Inbox))},
		// A person's own data: export and erasure (issue 15; R4 R5 R34).
		{"POST", "/o/{org}/account/export", "page-org", regular, s.orgPage(signedIn, handleExportMeForm(svc.Personal))},
		{"GET", "/o/{org}/account/delete", "page-org", regular, s.orgPage(signedIn, handleEraseMePage())},
		{"POST", "/o/{org}/account/delete", "page-org", regular, s.orgPage(signedIn, handleEraseMeForm(svc.Personal))},
		{"POST", "/o/{org}/users/{id}/export", "page-org", regular, s.orgPage(signedIn, handleExportUserForm(svc.Personal))},

		// Projects, their files, versions and rights, the trash and groups:
		// the same service methods as the API's routes above.
		{"GET", "/o/{org}/projects", "page-org", regular, s.orgPage(working, handleProjectsPage(svc.Projects))},
		{"POST", "/o/{org}/projects", "page-org", regular, s.orgPage(signedIn, handleCreateProjectForm(svc.Projects))},
		{"GET", "/o/{org}/projects/{id}", "page-org", regular, s.orgPage(working, handleProjectPage(project))},
		{"POST", "/o/{org}/projects/{id}", "page-org", regular, s.orgPage(working, handleRenameProjectForm(project))},
		{"POST", "/o/{org}/projects/{id}/delete", "page-org", regular, s.orgPage(working, handleDeleteProjectForm(svc.Projects))},
		{"POST", "/o/{org}/projects/{id}/undelete", "page-org", regular, s.orgPage(working, handleUndeleteProjectForm(svc.Projects))},
		{"POST", "/o/{org}/projects/{id}/files/delete", "page-org", regular, s.orgPage(working, handleDeleteFileForm(svc.Files))},
		{"GET", "/o/{org}/projects/{id}/versions", "page-org", regular, s.orgPage(working, handleVersionsPage(history))},
		{"POST", "/o/{org}/projects/{id}/versions", "page-org", regular, s.orgPage(working, handleCreateVersionForm(history))},
		{"GET", "/o/{org}/projects/{id}/versions/{n}", "page-org", regular, s.orgPage(working, handleVersionPage(oneVersion))},
		{"POST", "/o/{org}/projects/{id}/versions/{n}/restore", "page-org", regular, s.orgPage(working, handleRestoreVersionForm(history))},
		{"GET", "/o/{org}/projects/{id}/rights", "page-org", regular, s.orgPage(working, handleRightsPage(projectRights))},
		{"POST", "/o/{org}/projects/{id}/rights", "page-org", regular, s.orgPage(working, handleSetGrantForm(projectRights))},
		{"POST", "/o/{org}/projects/{id}/rights/remove", "page-org", regular, s.orgPage(working, handleRemoveGrantForm(projectRights))},
		{"POST", "/o/{org}/projects/{id}/support", "page-org", regular, s.orgPage(signedIn, handleProjectSupportForm(projectRights))},
		{"GET", "/o/{org}/trash", "page-org", regular, s.orgPage(working, handleTrashPage(svc.Projects))},
		{"GET", "/o/{org}/groups", "page-org", regular, s.orgPage(working, handleGroupsPage(groups))},
		{"POST", "/o/{org}/projects/{id}/start", "page-org", regular, s.orgPage(signedIn, handleStartProjectForm(svc.Licences))},
		{"POST", "/o/{org}/projects/{id}/stop", "page-org", regular, s.orgPage(signedIn, handleStopProjectForm(svc.Licences))},
		{"GET", "/o/{org}/licence", "page-org", regular, s.orgPage(signedIn, handleLicencePage(licence))},
		{"POST", "/o/{org}/groups", "page-org", regular, s.orgPage(signedIn, handleCreateGroupForm(groups))},
		{"POST", "/o/{org}/groups/{id}/delete", "page-org", regular, s.orgPage(signedIn, handleDeleteGroupForm(svc.Groups))},
		{"POST", "/o/{org}/groups/{id}/members", "page-org", regular, s.orgPage(signedIn, handleAddGroupMemberForm(svc.Groups))},
		{"POST", "/o/{org}/groups/{id}/members/{user}/remove", "page-org", regular, s.orgPage(signedIn, handleRemoveGroupMemberForm(svc.Groups))},

		// Support access by consent (R22): the managers' page, and the
		// end of a support session.
		{"GET", "/o/{org}/support", "page-org", regular, s.orgPage(signedIn, handleSupportPage(support))},
		{"POST", "/o/{org}/support/grants", "page-org", regular, s.orgPage(signedIn, handleGrantSupportForm(support))},
		{"POST", "/o/{org}/support/grants/{id}/revoke", "page-org", regular, s.orgPage(signedIn, handleRevokeSupportForm(support))},
		{"POST", "/o/{org}/support/grants/{id}/approve", "page-org", regular, s.orgPage(signedIn, handleApproveSupportGrantForm(support))},
		{"POST", "/o/{org}/support/requests/{id}/approve", "page-org", regular, s.orgPage(signedIn, handleDecideSupportRequestForm(support, true))},
		{"POST", "/o/{org}/support/requests/{id}/refuse", "page-org", regular, s.orgPage(signedIn, handleDecideSupportRequestForm(support, false))},
		{"POST", "/o/{org}/support/end", "page-org", regular, s.orgPage(working, handleEndSupportForm(svc.Support))},

		// Backups (R30 R31 R32 R42): the operator's record, what the
		// backups hold for one organisation, and the organisation's own
		// page (declared locations only).
		{"GET", "/operator/backups", "page-operator", regular, s.operatorPage(signedIn, handleOperatorBackupsPage(svc.Backups, svc.Jobs))},
		{"GET", "/operator/orgs/{org}/backups", "page-operator", regular, s.operatorPage(signedIn, handleOperatorHoldingsPage(svc.Orgs, svc.Backups))},
		{"GET", "/o/{org}/backups", "page-org", regular, s.orgPage(signedIn, handleOrgBackupsPage(svc.Backups))},

		// The privacy page, a person's requests and the managers' register
		// (issue 15, R34).
		{"GET", "/o/{org}/privacy", "page-org", regular, s.orgPage(signedIn, handlePrivacyPage(svc.PrivacyRequests))},
		{"POST", "/o/{org}/privacy/settings", "page-org", regular, s.orgPage(signedIn, handlePrivacySettingsForm(svc.PrivacyRequests))},
		{"GET", "/o/{org}/privacy/requests", "page-org", regular, s.orgPage(signedIn, handleMyRequestsPage(svc.PrivacyRequests))},
		{"POST", "/o/{org}/privacy/requests", "page-org", regular, s.orgPage(signedIn, handleFileRequestForm(svc.PrivacyRequests))},
		{"GET", "/o/{org}/privacy/register", "page-org", regular, s.orgPage(signedIn, handleRegisterPage(svc.PrivacyRequests))},
		{"POST", "/o/{org}/privacy/register/{id}", "page-org", regular, s.orgPage(signedIn, handleUpdateRequestForm(svc.PrivacyRequests))},
		// Anonymous usage statistics and crash reports (R37, R38):
		// operator admins, through the service's rules.
		{"GET", "/api/v1/operator/statistics", "operator", regular, s.operator(handleUsageStatistics(svc.Usage))},
		{"GET", "/api/v1/operator/crash-reports", "operator", regular, s.operator(handleListCrashReports(svc.Crashes))},
		{"GET", "/api/v1/operator/crash-reports/{id}", "operator", regular, s.operator(handleGetCrashReport(svc.Crashes))},
		{"GET", "/operator/statistics", "page-operator", regular, s.operatorPage(signedIn, handleStatisticsPage(svc.Usage))},
		{"GET", "/operator/crash-reports", "page-operator", regular, s.operatorPage(signedIn, handleCrashReportsPage(svc.Crashes))},
		{"GET", "/operator/crash-reports/{id}", "page-operator", regular, s.operatorPage(signedIn, handleCrashReportPage(svc.Crashes))},
	}
}

// Routes returns the route table without handlers, for tests and docs.
func Routes() []Route {
	s := &server{}
	rs := s.routes(kluis.Services{}, nil)
	for i := range rs {
		rs[i].Handler = nil
	}
	return rs
}
