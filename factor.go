package kluis

import (
	"context"
	"time"
)

// FactorKind is a kind of second factor (R17). Every kind goes through one
// life cycle: set-up (pending, bound to the session that started it),
// confirmation by a first proof, use once per proof, a growing lock after
// wrong proofs, removal by its owner, and reset by someone else.
type FactorKind string

// The kinds of second factor.
const (
	// FactorTOTP is an authenticator app (RFC 6238 codes).
	FactorTOTP FactorKind = "totp"
	// FactorSMS is codes sent by SMS to a number verified beforehand.
	FactorSMS FactorKind = "sms"
	// FactorPasskey is a passkey or security key (WebAuthn).
	FactorPasskey FactorKind = "webauthn"
)

// MethodRecovery is the method of a recovery code: one of ten single-use
// codes made with a person's first second factor.
const MethodRecovery = "recovery"

// Valid reports whether k is a known kind.
func (k FactorKind) Valid() bool { return k == FactorTOTP || k == FactorSMS || k == FactorPasskey }

// Lifetimes and limits of second factors.
const (
	// PendingFactorTTL is how long a started set-up waits for its first
	// proof.
	PendingFactorTTL = 15 * time.Minute
	// SMSCodeTTL is how long a code sent by SMS is good for.
	SMSCodeTTL = 5 * time.Minute
	// SMSCodesPerChallenge caps the codes sent for one login or
	// re-authentication.
	SMSCodesPerChallenge = 3
	// SMSCodesPerHour caps the codes sent to one person in an hour.
	SMSCodesPerHour = 5
	// MaxPasskeyName is how long a passkey's name may be, in characters.
	MaxPasskeyName = 60
)

// Passkey is a registered passkey as its owner sees it: never its key.
type Passkey struct {
	ID         string
	Name       string
	CreatedAt  time.Time
	LastUsedAt time.Time // zero when never used
}

// Factors is what a person has enrolled, as they see it: never a secret.
type Factors struct {
	// Methods are the confirmed methods: "totp", "sms", "webauthn", and
	// then "recovery" when codes are left.
	Methods      []string
	RecoveryLeft int
	SMSNumber    string // the verified number, masked; "" without one
	Passkeys     []Passkey
}

// FactorSetup is what starting a set-up needs: for FactorSMS, the number to
// verify; nothing for the other kinds.
type FactorSetup struct {
	Phone string
}

// FactorEnrolment is a set-up under way, for the page or client that
// finishes it.
type FactorEnrolment struct {
	Secret  string // FactorTOTP: the shared secret (base32), shown once
	URL     string // FactorTOTP: its otpauth:// URL (the QR code)
	Number  string // FactorSMS: the number being verified, masked
	Options []byte // FactorPasskey: options for navigator.credentials.create (JSON)
}

// FactorProof confirms a set-up: the first code for FactorTOTP and
// FactorSMS; for FactorPasskey the browser's answer and the name its owner
// gives it.
type FactorProof struct {
	Code     string
	Name     string
	Response []byte
}

// FactorEnrolled is the outcome of a confirmed set-up.
type FactorEnrolled struct {
	// RecoveryCodes are new recovery codes, shown once: made with a
	// person's first second factor (and with every new authenticator app);
	// nil otherwise.
	RecoveryCodes []string
	// Passkey is the passkey registered (FactorPasskey).
	Passkey Passkey
}

// FactorService is the second-factor core for both realms (R17): the
// signed-in person's own factors, and the reset of someone else's. Set-ups
// and removals need a fresh authentication; every change ends the person's
// other sessions and is recorded.
type FactorService interface {
	// FindFactors returns what the signed-in person has enrolled. Errors:
	// unauthenticated.
	FindFactors(ctx context.Context, scope Scope, actor Actor) (Factors, error)
	// StartFactor begins setting up a factor of the kind, pending until
	// ConfirmFactor in the same session. Errors: unauthenticated,
	// reauth_required, invalid_input, forbidden (the policy is off, or the
	// realm does not offer the kind), conflict, too_many_requests.
	StartFactor(ctx context.Context, scope Scope, actor Actor, kind FactorKind, setup FactorSetup) (FactorEnrolment, error)
	// PendingFactor returns the set-up of the kind that this session
	// started and that has not lapsed (without the TOTP secret). Errors:
	// unauthenticated, not_found.
	PendingFactor(ctx context.Context, scope Scope, actor Actor, kind FactorKind) (FactorEnrolment, error)
	// ConfirmFactor finishes the set-up this session started with its
	// first proof. A wrong proof is recorded. Errors: unauthenticated,
	// not_found, invalid_input, forbidden, conflict.
	ConfirmFactor(ctx context.Context, scope Scope, actor Actor, kind FactorKind, proof FactorProof) (FactorEnrolled, error)
	// RemoveFactor removes the signed-in person's factor of the kind (for
	// FactorPasskey the one with the id); with the last factor the
	// recovery codes go too. Errors: unauthenticated, reauth_required,
	// not_found, conflict (operators keep one factor).
	RemoveFactor(ctx context.Context, scope Scope, actor Actor, kind FactorKind, id string) error
	// FindFactorMethods returns, per user of the organisation who enrolled
	// one, the methods of their second factors. Managers only. Errors:
	// forbidden.
	FindFactorMethods(ctx context.Context, org OrgID, actor Actor) (map[UserID][]string, error)
	// ResetFactors removes every second factor of someone who lost theirs
	// (subject: a user id in an organisation's scope), ends their sessions
	// and API tokens, and mails them a notice. Errors: forbidden,
	// reauth_required, not_found, conflict.
	ResetFactors(ctx context.Context, scope Scope, actor Actor, subject string) error
}
