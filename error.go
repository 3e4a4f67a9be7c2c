package kluis

import (
	"errors"
	"fmt"
	"time"
)

// Error codes of the HTTP contract (shared/CONTRACT.md, "Errors"). Each maps to
// one HTTP status in internal/httpserver.
const (
	EInvalid          = "invalid_input"
	EUnauthenticated  = "unauthenticated"
	EForbidden        = "forbidden"
	ENotFound         = "not_found"
	EMethodNotAllowed = "method_not_allowed"
	EConflict         = "conflict"
	ETooLarge         = "too_large"
	ETooManyRequests  = "too_many_requests"
	EInternal         = "internal"
	// ELoginsDisabled refuses a login while the organisation's logins are
	// stopped (R19); HTTP 403.
	ELoginsDisabled = "logins_disabled"
	// EReauthRequired asks for a fresh authentication (POST …/me/reauth)
	// before a sensitive change; HTTP 403.
	EReauthRequired = "reauth_required"
	// EMFAEnrolmentRequired refuses a request from a session limited to
	// enrolling a second factor (the policy requires one, R17); HTTP 403.
	EMFAEnrolmentRequired = "mfa_enrolment_required"
)

// Error is the only error type whose content reaches a client. Message is safe
// to show: it never holds personal data, SQL text, paths or secrets. Fields
// names the problem per input field (EInvalid) or the limit exceeded
// (ELicenceLimit).
type Error struct {
	Code    string
	Message string
	Fields  map[string]string
	// RetryAfter is how long a throttled client should wait (ETooManyRequests);
	// HTTP sends it as the Retry-After header, in whole seconds.
	RetryAfter time.Duration
}

// TooManyRequests answers a throttled request (R18): one message for every
// account, existing or not, and the time to wait (at least a second).
func TooManyRequests(wait time.Duration) *Error {
	return &Error{Code: ETooManyRequests, Message: "too many attempts; wait and try again", RetryAfter: max(wait, time.Second)}
}

func (e *Error) Error() string { return e.Code + ": " + e.Message }

// Errorf returns an *Error with the given code and a formatted message. The
// message is shown to clients: never put personal data in it.
func Errorf(code, format string, args ...any) *Error {
	return &Error{Code: code, Message: fmt.Sprintf(format, args...)}
}

// Invalid returns an EInvalid error naming the problem of each field.
func Invalid(fields map[string]string) *Error {
	return &Error{Code: EInvalid, Message: "the input is not valid", Fields: fields}
}

// ErrorCode returns the code of err if it is (or wraps) an *Error, and
// EInternal otherwise.
func ErrorCode(err error) string {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return EInternal
}

// Common errors.
var (
	// ErrNotFound is the one answer for objects that do not exist and for
	// objects of another organisation (R1: don't reveal what exists elsewhere).
	ErrNotFound = &Error{Code: ENotFound, Message: "not found"}
	// ErrUnauthenticated is the one answer for every failed login and every
	// missing, expired or wrong credential.
	ErrUnauthenticated = &Error{Code: EUnauthenticated, Message: "the credentials are not valid"}
	// ErrForbidden answers an actor who may know the object exists but lacks the right.
	ErrForbidden = &Error{Code: EForbidden, Message: "you are not allowed to do this"}
	// ErrLastManager refuses to remove, demote or disable the last active manager.
	ErrLastManager = &Error{Code: EConflict, Message: "an organisation needs at least one active manager"}
	// ErrLoginsDisabled refuses every login of an organisation whose logins
	// are stopped (R19).
	// ErrReauthRequired asks the person to prove again who they are.
	ErrReauthRequired = &Error{Code: EReauthRequired, Message: "confirm it is you: sign in again or re-authenticate first"}
	ErrLoginsDisabled = &Error{Code: ELoginsDisabled, Message: "logins to this organisation are stopped; ask a manager"}
	// ErrMFAEnrolmentRequired refuses a request from a session limited to
	// enrolling a second factor.
	ErrMFAEnrolmentRequired = &Error{Code: EMFAEnrolmentRequired, Message: "this organisation requires two-step sign-in: set up a second factor first"}
	// ErrOperatorMFAEnrolmentRequired refuses a request from an operator
	// session limited to enrolling a second factor: operators must have one.
	ErrOperatorMFAEnrolmentRequired = &Error{Code: EMFAEnrolmentRequired, Message: "operator accounts require two-step sign-in: set up an authenticator app first"}
)
