package sqlstore

// enrolmentOnlySQL is 1 when the session's organisation requires a second
// factor (R17) and its user has none: a session of s (sessions), u (users)
// and o (orgs) is then limited to enrolment. Enrolled factors count under
// every policy, "off" included: switching the policy off must not quietly
// weaken the sign-in of those who protected their account.
var enrolmentOnlySQL = enrolmentOnly("s")

// enrolmentOnly is enrolmentOnlySQL for a credential row of the alias (a
// session, an API token) with org_id and user_id columns.
func enrolmentOnly(alias string) string {
	return `CASE WHEN o.mfa = 'required'
	AND NOT EXISTS (SELECT 1 FROM user_factors f WHERE f.org_id = ` + alias + `.org_id AND f.user_id = ` + alias + `.user_id AND f.confirmed_at IS NOT NULL)
	AND NOT EXISTS (SELECT 1 FROM passkeys p WHERE p.org_id = ` + alias + `.org_id AND p.user_id = ` + alias + `.user_id)
	THEN 1 ELSE 0 END`
}
