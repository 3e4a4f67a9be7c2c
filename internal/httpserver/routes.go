package httpserver

import "net/http"

// Route is one entry of the HTTP surface.
type Route struct {
	Method  string
	Pattern string
	// Realm says who may call it: "public", "org-public" (anyone, within an
	// existing organisation), "org" (a signed-in user of that organisation)
	// or "operator". Tests walk this table.
	Realm   string
	Handler http.Handler
}

// routes is the whole HTTP surface of kluis (shared/CONTRACT.md). The
// wrappers org, orgUser and operator resolve the tenant and the actor before
// any handler runs; rights are checked in the store method each handler calls.
func (s *server) routes() []Route {
	st := s.store
	return []Route{
		{"GET", "/healthz", "public", handleHealth()},
		{"GET", "/readyz", "public", handleReady(st)},

		// Operator realm.
		{"POST", "/api/v1/operator/login", "public", handleOperatorLogin(st)},
		{"POST", "/api/v1/operator/login/mfa", "public", handleOperatorLoginMFA(st)},
		{"POST", "/api/v1/operator/logout", "operator", s.operator(handleOperatorLogout(st))},
		{"GET", "/api/v1/operator/me", "operator", s.operator(handleOperatorMe(st))},
		{"POST", "/api/v1/operator/me/reauth", "operator", s.operator(handleOperatorReauth(st))},
		{"POST", "/api/v1/operator/me/totp", "operator", s.operator(handleOperatorStartTOTP(st))},
		{"POST", "/api/v1/operator/me/totp/confirm", "operator", s.operator(handleOperatorConfirmTOTP(st))},
		{"GET", "/api/v1/operator/logins", "operator", s.operator(handleGetInstanceLogins(st))},
		{"PUT", "/api/v1/operator/logins", "operator", s.operator(handleSetInstanceLogins(st))},
		{"GET", "/api/v1/orgs", "operator", s.operator(handleListOrgs(st))},
		{"POST", "/api/v1/orgs", "operator", s.operator(handleCreateOrg(st))},
		{"DELETE", "/api/v1/orgs/{org}", "operator", s.operator(handleDeleteOrg(st))},

		// Organisation realm, before sign-in.
		{"POST", "/api/v1/orgs/{org}/login", "org-public", s.org(handleLogin(st))},
		{"POST", "/api/v1/orgs/{org}/login/mfa", "org-public", s.org(handleLoginMFA(st))},
		{"POST", "/api/v1/orgs/{org}/login/mfa/webauthn/options", "org-public", s.org(handleBeginPasskeyLogin(st))},
		{"POST", "/api/v1/orgs/{org}/login/mfa/sms", "org-public", s.org(handleSendLoginSMS(st))},
		{"POST", "/api/v1/orgs/{org}/invitations/accept", "org-public", s.org(handleAcceptInvitation(st))},
		{"POST", "/api/v1/orgs/{org}/password-reset", "org-public", s.org(handleRequestPasswordReset(st))},
		{"POST", "/api/v1/orgs/{org}/password-reset/confirm", "org-public", s.org(handleConfirmPasswordReset(st))},
		{"POST", "/api/v1/orgs/{org}/unlock", "org-public", s.org(handleUnlock(st))},

		// Organisation realm, signed in.
		{"POST", "/api/v1/orgs/{org}/logout", "org", s.orgUser(handleLogout(st))},
		{"GET", "/api/v1/orgs/{org}/me", "org", s.orgUser(handleGetMe())},
		{"PATCH", "/api/v1/orgs/{org}/me", "org", s.orgUser(handleUpdateMe(st))},
		{"POST", "/api/v1/orgs/{org}/me/password", "org", s.orgSession(handleChangePassword(st))},
		{"POST", "/api/v1/orgs/{org}/me/reauth", "org", s.orgSession(handleReauth(st))},
		{"POST", "/api/v1/orgs/{org}/me/totp", "org", s.orgSession(handleStartTOTP(st))},
		{"POST", "/api/v1/orgs/{org}/me/totp/confirm", "org", s.orgSession(handleConfirmTOTP(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/totp", "org", s.orgSession(handleDisableTOTP(st))},
		{"POST", "/api/v1/orgs/{org}/me/reauth/webauthn/options", "org", s.orgSession(handleBeginPasskeyReauth(st))},
		{"POST", "/api/v1/orgs/{org}/me/reauth/sms", "org", s.orgSession(handleSendReauthSMS(st))},
		{"POST", "/api/v1/orgs/{org}/me/sms", "org", s.orgSession(handleStartSMS(st))},
		{"POST", "/api/v1/orgs/{org}/me/sms/confirm", "org", s.orgSession(handleConfirmSMS(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/sms", "org", s.orgSession(handleDisableSMS(st))},
		{"GET", "/api/v1/orgs/{org}/me/passkeys", "org", s.orgSession(handleListPasskeys(st))},
		{"POST", "/api/v1/orgs/{org}/me/passkeys/options", "org", s.orgSession(handleBeginPasskeyRegistration(st))},
		{"POST", "/api/v1/orgs/{org}/me/passkeys", "org", s.orgSession(handleFinishPasskeyRegistration(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/passkeys/{id}", "org", s.orgSession(handleDeletePasskey(st))},
		{"GET", "/api/v1/orgs/{org}/me/sessions", "org", s.orgUser(handleListSessions(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/sessions", "org", s.orgSession(handleEndOtherSessions(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/sessions/{id}", "org", s.orgSession(handleEndSession(st))},
		// Personal API tokens and the e-mail address: orgSession refuses
		// tokens on everything but listing and revoking tokens.
		{"GET", "/api/v1/orgs/{org}/me/tokens", "org", s.orgUser(handleListTokens(st))},
		{"POST", "/api/v1/orgs/{org}/me/tokens", "org", s.orgSession(handleCreateToken(st))},
		{"DELETE", "/api/v1/orgs/{org}/me/tokens/{id}", "org", s.orgUser(handleRevokeToken(st))},
		{"POST", "/api/v1/orgs/{org}/me/email", "org", s.orgSession(handleRequestEmailChange(st))},
		{"POST", "/api/v1/orgs/{org}/me/email/confirm", "org", s.orgSession(handleConfirmEmailChange(st))},
		{"GET", "/api/v1/orgs/{org}/users", "org", s.orgUser(handleListUsers(st))},
		{"POST", "/api/v1/orgs/{org}/users", "org", s.orgUser(handleInviteUser(st))},
		{"GET", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleGetUser(st))},
		{"PATCH", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleUpdateUser(st))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}", "org", s.orgUser(handleDeleteUser(st))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/invitation", "org", s.orgUser(handleResendInvitation(st))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/invitation", "org", s.orgUser(handleRevokeInvitation(st))},
		{"POST", "/api/v1/orgs/{org}/users/{id}/unlock", "org", s.orgUser(handleUnlockUser(st))},
		{"DELETE", "/api/v1/orgs/{org}/users/{id}/factors", "org", s.orgSession(handleResetFactors(st))},
		{"GET", "/api/v1/orgs/{org}/policy", "org", s.orgUser(handleGetPolicy(st))},
		{"PUT", "/api/v1/orgs/{org}/policy", "org", s.orgUser(handleUpdatePolicy(st))},
		{"GET", "/api/v1/orgs/{org}/logins", "org", s.orgUser(handleGetLogins(st))},
		{"PUT", "/api/v1/orgs/{org}/logins", "org", s.orgUser(handleSetLogins(st))},
		{"GET", "/api/v1/orgs/{org}/audit", "org", s.orgUser(handleListAudit(st))},
		{"GET", "/api/v1/orgs/{org}/audit/export", "org", s.orgUser(handleExportAudit(st))},
		{"GET", "/api/v1/orgs/{org}/audit/verify", "org", s.orgUser(handleVerifyAudit(st))},

		// The web interface (docs/UI.md). Its realms start with "page".
		{"GET", "/{$}", "page", s.page(handleHomePage())},
		{"GET", "/static/{file}", "page", s.static},
		{"POST", "/lang", "page", s.page(handleLangForm())},

		{"GET", "/operator/login", "page-operator", s.operatorPage(anyone, handleOperatorLoginPage())},
		{"POST", "/operator/login", "page-operator", s.operatorPage(anyone, handleOperatorLoginForm(st))},
		{"GET", "/operator/login/mfa", "page-operator", s.operatorPage(anyone, handleOperatorMFAPage(st))},
		{"POST", "/operator/login/mfa", "page-operator", s.operatorPage(anyone, handleOperatorMFAForm(st))},
		{"POST", "/operator/logout", "page-operator", s.operatorPage(signedIn, handleOperatorLogoutForm(st))},
		{"GET", "/operator", "page-operator", s.operatorPage(signedIn, handleOrgsPage(st))},
		{"POST", "/operator/orgs", "page-operator", s.operatorPage(signedIn, handleCreateOrgForm(st))},
		{"POST", "/operator/logins", "page-operator", s.operatorPage(signedIn, handleInstanceLoginsForm(st))},
		{"GET", "/operator/account", "page-operator", s.operatorPage(signedIn, handleOperatorAccountPage(st))},
		{"GET", "/operator/account/reauth", "page-operator", s.operatorPage(signedIn, handleOperatorReauthPage(st))},
		{"POST", "/operator/account/reauth", "page-operator", s.operatorPage(signedIn, handleOperatorReauthForm(st))},
		{"POST", "/operator/account/totp", "page-operator", s.operatorPage(signedIn, handleOperatorStartTOTPForm(st))},
		{"GET", "/operator/account/totp/qr.png", "page-operator", s.operatorPage(signedIn, handleOperatorTOTPQRCode(st))},
		{"POST", "/operator/account/totp/confirm", "page-operator", s.operatorPage(signedIn, handleOperatorConfirmTOTPForm(st))},

		{"GET", "/o/{org}/{$}", "page-org", s.orgPage(anyone, handleOrgHome())},
		{"GET", "/o/{org}/login", "page-org", s.orgPage(anyone, handleLoginPage())},
		{"POST", "/o/{org}/login", "page-org", s.orgPage(anyone, handleLoginForm(st))},
		{"GET", "/o/{org}/login/mfa", "page-org", s.orgPage(anyone, handleMFAPage(st))},
		{"POST", "/o/{org}/login/mfa", "page-org", s.orgPage(anyone, handleMFAForm(st))},
		{"POST", "/o/{org}/login/mfa/sms", "page-org", s.orgPage(anyone, handleSendLoginSMSForm(st))},
		{"POST", "/o/{org}/logout", "page-org", s.orgPage(signedIn, handleLogoutForm(st))},
		{"GET", "/o/{org}/signed-out", "page-org", s.orgPage(anyone, handleSignedOutPage())},
		{"GET", "/o/{org}/forgot", "page-org", s.orgPage(anyone, handleForgotPage())},
		{"POST", "/o/{org}/forgot", "page-org", s.orgPage(anyone, handleForgotForm(st))},
		{"GET", "/o/{org}/reset", "page-org", s.orgPage(anyone, handleResetPage())},
		{"POST", "/o/{org}/reset", "page-org", s.orgPage(anyone, handleResetForm(st))},
		{"GET", "/o/{org}/unlock", "page-org", s.orgPage(anyone, handleUnlockPage())},
		{"POST", "/o/{org}/unlock", "page-org", s.orgPage(anyone, handleUnlockForm(st))},
		{"GET", "/o/{org}/invite", "page-org", s.orgPage(anyone, handleInvitePage())},
		{"POST", "/o/{org}/invite", "page-org", s.orgPage(anyone, handleInviteForm(st))},
		{"GET", "/o/{org}/account", "page-org", s.orgPage(signedIn, handleAccountPage(st))},
		{"POST", "/o/{org}/account/profile", "page-org", s.orgPage(signedIn, handleProfileForm(st))},
		{"POST", "/o/{org}/account/password", "page-org", s.orgPage(signedIn, handlePasswordForm(st))},
		{"GET", "/o/{org}/account/reauth", "page-org", s.orgPage(signedIn, handleReauthPage(st))},
		{"POST", "/o/{org}/account/reauth", "page-org", s.orgPage(signedIn, handleReauthForm(st))},
		{"POST", "/o/{org}/account/reauth/sms", "page-org", s.orgPage(signedIn, handleSendReauthSMSForm(st))},
		{"POST", "/o/{org}/account/totp", "page-org", s.orgPage(signedIn, handleStartTOTPForm(st))},
		{"GET", "/o/{org}/account/totp/qr.png", "page-org", s.orgPage(signedIn, handleTOTPQRCode(st))},
		{"POST", "/o/{org}/account/totp/confirm", "page-org", s.orgPage(signedIn, handleConfirmTOTPForm(st))},
		{"POST", "/o/{org}/account/totp/disable", "page-org", s.orgPage(signedIn, handleDisableTOTPForm(st))},
		{"POST", "/o/{org}/account/sms", "page-org", s.orgPage(signedIn, handleStartSMSForm(st))},
		{"POST", "/o/{org}/account/sms/confirm", "page-org", s.orgPage(signedIn, handleConfirmSMSForm(st))},
		{"POST", "/o/{org}/account/sms/disable", "page-org", s.orgPage(signedIn, handleDisableSMSForm(st))},
		{"POST", "/o/{org}/account/passkeys/new", "page-org", s.orgPage(signedIn, handleNewPasskeyForm(st))},
		{"POST", "/o/{org}/account/passkeys", "page-org", s.orgPage(signedIn, handleAddPasskeyForm(st))},
		{"POST", "/o/{org}/account/passkeys/{id}/remove", "page-org", s.orgPage(signedIn, handleRemovePasskeyForm(st))},
		{"POST", "/o/{org}/account/sessions/{id}/end", "page-org", s.orgPage(signedIn, handleEndSessionForm(st))},
		{"POST", "/o/{org}/account/sessions/end-others", "page-org", s.orgPage(signedIn, handleEndOtherSessionsForm(st))},
		{"POST", "/o/{org}/account/email", "page-org", s.orgPage(signedIn, handleEmailChangeForm(st))},
		{"GET", "/o/{org}/confirm-email", "page-org", s.orgPage(anyone, handleConfirmEmailPage())},
		{"POST", "/o/{org}/confirm-email", "page-org", s.orgPage(signedIn, handleConfirmEmailForm(st))},
		{"POST", "/o/{org}/account/tokens", "page-org", s.orgPage(signedIn, handleCreateTokenForm(st))},
		{"POST", "/o/{org}/account/tokens/{id}/revoke", "page-org", s.orgPage(signedIn, handleRevokeTokenForm(st))},
		{"GET", "/o/{org}/users", "page-org", s.orgPage(signedIn, handleUsersPage(st))},
		{"POST", "/o/{org}/users", "page-org", s.orgPage(signedIn, handleInviteUserForm(st))},
		{"GET", "/o/{org}/users/{id}", "page-org", s.orgPage(signedIn, handleUserPage(st))},
		{"POST", "/o/{org}/users/{id}", "page-org", s.orgPage(signedIn, handleUpdateUserForm(st))},
		{"POST", "/o/{org}/users/{id}/invitation/resend", "page-org", s.orgPage(signedIn, handleInvitationForm(st, false))},
		{"POST", "/o/{org}/users/{id}/invitation/revoke", "page-org", s.orgPage(signedIn, handleInvitationForm(st, true))},
		{"POST", "/o/{org}/users/{id}/unlock", "page-org", s.orgPage(signedIn, handleUnlockUserForm(st))},
		{"POST", "/o/{org}/users/{id}/factors/reset", "page-org", s.orgPage(signedIn, handleResetFactorsForm(st))},
		{"GET", "/o/{org}/users/{id}/delete", "page-org", s.orgPage(signedIn, handleDeleteUserPage(st))},
		{"POST", "/o/{org}/users/{id}/delete", "page-org", s.orgPage(signedIn, handleDeleteUserForm(st))},
		{"GET", "/o/{org}/policy", "page-org", s.orgPage(signedIn, handlePolicyPage(st))},
		{"POST", "/o/{org}/policy", "page-org", s.orgPage(signedIn, handlePolicyForm(st))},
		{"POST", "/o/{org}/logins", "page-org", s.orgPage(signedIn, handleLoginsForm(st))},
		{"GET", "/o/{org}/audit", "page-org", s.orgPage(signedIn, handleAuditPage(st))},
		{"GET", "/o/{org}/audit/verify", "page-org", s.orgPage(signedIn, handleAuditVerifyPage(st))},
	}
}

// Routes returns the route table without handlers, for tests and docs.
func Routes() []Route {
	s := &server{}
	rs := s.routes()
	for i := range rs {
		rs[i].Handler = nil
	}
	return rs
}
