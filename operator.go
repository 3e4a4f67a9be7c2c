package kluis

import (
	"context"
	"time"
)

// OperatorPolicy is the password and session policy of operator accounts:
// staff accounts get a longer minimum than the organisations' default, and
// must have a second factor (R17, R22).
var OperatorPolicy = Policy{PasswordMinLength: 12, SessionIdleMinutes: 30, SessionMaxHours: 12, MFA: MFARequired, LockoutThreshold: 5}

// OperatorAccount is what an operator sees of their own account.
type OperatorAccount struct {
	Operator
	LastLoginAt time.Time // zero when never signed in
	Factors     Factors
}

// OperatorService keeps the operator's staff accounts (R8, R22): created
// and recovered from the command line, read by their owner.
type OperatorService interface {
	// CreateOperator creates an operator account of role (R8). The first
	// one is made at the command line and bootstraps the instance; after
	// that, the command line or an operator admin. Errors: forbidden,
	// invalid_input, conflict.
	CreateOperator(ctx context.Context, actor Actor, email, name, password string, role OperatorRole) (Operator, error)
	// FindOperatorAccount returns the signed-in operator's own account.
	// Errors: unauthenticated.
	FindOperatorAccount(ctx context.Context, actor Actor) (OperatorAccount, error)
	// ResetOperatorPassword gives an operator a new password, ends their
	// sessions, lifts their lock and mails them a notice. The command
	// line only. Errors: forbidden, invalid_input, not_found.
	ResetOperatorPassword(ctx context.Context, actor Actor, email, password string) error
	// SetOperatorDisabled disables or enables an operator; it returns how
	// many sessions ended and how many operators stay enabled. The command
	// line only. Errors: forbidden, not_found.
	SetOperatorDisabled(ctx context.Context, actor Actor, email string, disabled bool) (ended, enabledLeft int, err error)
	// ResetOperatorFactors removes a lost second factor of an operator,
	// ends their sessions and mails them a notice. The command line only.
	// Errors: forbidden, not_found.
	ResetOperatorFactors(ctx context.Context, actor Actor, email string) error
	// FindOperators lists every operator with their role, last sign-in and
	// whether they are disabled, for the operator admins' page (R8).
	// Errors: forbidden.
	FindOperators(ctx context.Context, actor Actor) ([]OperatorInfo, error)
}

// OperatorInfo is an operator as the operator admins' page shows them.
type OperatorInfo struct {
	Operator
	LastLoginAt time.Time // zero when never signed in
	Disabled    bool
}
