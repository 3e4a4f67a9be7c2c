package mfa

// Passkeys and security keys (WebAuthn, R17), on github.com/go-webauthn.
//
// Threat model: a passkey proves possession of a private key that never
// leaves the authenticator, bound to this site's relying-party id (the host
// of the public URL) and checked against its origin, so a phishing page on
// another host gets nothing it can relay. Each ceremony's challenge is made
// here, kept by the store for one use and a few minutes, and bound to what
// started it. The store keeps only public keys and sign counts: a copy of
// the database gives nothing to sign in with. A sign count that does not go
// up (for an authenticator that counts) suggests a cloned key: the assertion
// is refused and the caller records it.

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"time"

	"github.com/go-webauthn/webauthn/protocol"
	"github.com/go-webauthn/webauthn/webauthn"
)

// CeremonyTTL is how long a started registration or assertion is good for.
const CeremonyTTL = 5 * time.Minute

// MaxPasskeys is how many passkeys one person may register.
const MaxPasskeys = 10

// ErrPasskey is the error of every answer from a browser that does not
// verify: a wrong origin or challenge, a bad signature, an unknown
// credential. Which of these it was is not told.
var ErrPasskey = errors.New("mfa: the passkey's answer does not verify")

// ErrSignCountRegressed says that the authenticator's sign count did not go
// up: the key may have been cloned. The assertion is refused.
var ErrSignCountRegressed = errors.New("mfa: the passkey's sign count went back")

// RelyingParty is this kluis as a WebAuthn relying party.
type RelyingParty struct {
	wa *webauthn.WebAuthn
}

// NewRelyingParty returns the relying party of the site at publicURL: its id
// is the URL's host, and the URL's origin is the only one accepted.
func NewRelyingParty(publicURL string) (*RelyingParty, error) {
	u, err := url.Parse(publicURL)
	if err != nil || u.Hostname() == "" || (u.Scheme != "http" && u.Scheme != "https") {
		return nil, fmt.Errorf("mfa: the public URL %q has no host for passkeys", publicURL)
	}
	wa, err := webauthn.New(&webauthn.Config{
		RPID:          u.Hostname(),
		RPDisplayName: "kluis",
		RPOrigins:     []string{u.Scheme + "://" + u.Host},
		AuthenticatorSelection: protocol.AuthenticatorSelection{
			ResidentKey:      protocol.ResidentKeyRequirementPreferred,
			UserVerification: protocol.VerificationPreferred,
		},
		AttestationPreference: protocol.PreferNoAttestation,
		Timeouts: webauthn.TimeoutsConfig{
			Login:        webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
			Registration: webauthn.TimeoutConfig{Enforce: true, Timeout: CeremonyTTL, TimeoutUVD: CeremonyTTL},
		},
	})
	if err != nil {
		return nil, fmt.Errorf("mfa: passkeys: %w", err)
	}
	return &RelyingParty{wa: wa}, nil
}

// ID returns the relying-party id (the public URL's host).
func (rp *RelyingParty) ID() string { return rp.wa.Config.RPID }

// PasskeyUser is the person a ceremony is for: an opaque handle (at most 64
// bytes, never an address), the name the authenticator shows, and the
// records of the passkeys they have.
type PasskeyUser struct {
	Handle      []byte
	Name        string
	DisplayName string
	Records     [][]byte // as returned by FinishRegistration and FinishLogin
}

// Credential is a registered passkey: its credential id and the record the
// store keeps.
type Credential struct {
	ID     []byte
	Record []byte
}

type waUser struct {
	u     PasskeyUser
	creds []webauthn.Credential
}

func (w waUser) WebAuthnID() []byte                         { return w.u.Handle }
func (w waUser) WebAuthnName() string                       { return w.u.Name }
func (w waUser) WebAuthnDisplayName() string                { return w.u.DisplayName }
func (w waUser) WebAuthnCredentials() []webauthn.Credential { return w.creds }

func newWAUser(u PasskeyUser) (waUser, error) {
	w := waUser{u: u}
	for _, r := range u.Records {
		var c webauthn.Credential
		if err := json.Unmarshal(r, &c); err != nil {
			return w, fmt.Errorf("mfa: a stored passkey record: %w", err)
		}
		w.creds = append(w.creds, c)
	}
	return w, nil
}

// BeginRegistration starts registering a new passkey for u: the options for
// navigator.credentials.create (as JSON, {"publicKey":…}) and the ceremony
// state the caller keeps for FinishRegistration. The passkeys u has already
// are excluded.
func (rp *RelyingParty) BeginRegistration(u PasskeyUser) (options, ceremony []byte, err error) {
	w, err := newWAUser(u)
	if err != nil {
		return nil, nil, err
	}
	creation, session, err := rp.wa.BeginRegistration(w, webauthn.WithExclusions(webauthn.Credentials(w.creds).CredentialDescriptors()))
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin registration: %w", err)
	}
	return marshalPair(creation, session)
}

// FinishRegistration checks the browser's answer (the PublicKeyCredential as
// JSON) to the ceremony and returns the new passkey. Errors: ErrPasskey.
func (rp *RelyingParty) FinishRegistration(u PasskeyUser, ceremony, response []byte) (Credential, error) {
	w, err := newWAUser(u)
	if err != nil {
		return Credential{}, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(ceremony, &session); err != nil {
		return Credential{}, fmt.Errorf("mfa: ceremony state: %w", err)
	}
	parsed, err := protocol.ParseCredentialCreationResponseBytes(response)
	if err != nil {
		return Credential{}, ErrPasskey
	}
	c, err := rp.wa.CreateCredential(w, session, parsed)
	if err != nil {
		return Credential{}, ErrPasskey
	}
	rec, err := json.Marshal(c)
	if err != nil {
		return Credential{}, err
	}
	return Credential{ID: c.ID, Record: rec}, nil
}

// BeginLogin starts an assertion with one of u's passkeys: the options for
// navigator.credentials.get (as JSON, {"publicKey":…}) and the ceremony
// state for FinishLogin.
func (rp *RelyingParty) BeginLogin(u PasskeyUser) (options, ceremony []byte, err error) {
	w, err := newWAUser(u)
	if err != nil {
		return nil, nil, err
	}
	assertion, session, err := rp.wa.BeginLogin(w)
	if err != nil {
		return nil, nil, fmt.Errorf("mfa: begin login: %w", err)
	}
	return marshalPair(assertion, session)
}

// FinishLogin checks the browser's answer to the assertion ceremony and
// returns the passkey used with its record updated (the new sign count).
// Errors: ErrPasskey; ErrSignCountRegressed with the passkey that was used.
func (rp *RelyingParty) FinishLogin(u PasskeyUser, ceremony, response []byte) (Credential, error) {
	w, err := newWAUser(u)
	if err != nil {
		return Credential{}, err
	}
	var session webauthn.SessionData
	if err := json.Unmarshal(ceremony, &session); err != nil {
		return Credential{}, fmt.Errorf("mfa: ceremony state: %w", err)
	}
	parsed, err := protocol.ParseCredentialRequestResponseBytes(response)
	if err != nil {
		return Credential{}, ErrPasskey
	}
	c, err := rp.wa.ValidateLogin(w, session, parsed)
	if err != nil {
		return Credential{}, ErrPasskey
	}
	if c.Authenticator.CloneWarning {
		return Credential{ID: c.ID}, ErrSignCountRegressed
	}
	rec, err := json.Marshal(c)
	if err != nil {
		return Credential{}, err
	}
	return Credential{ID: c.ID, Record: rec}, nil
}

// CredentialID returns the credential id in a stored record.
func CredentialID(record []byte) ([]byte, error) {
	var c webauthn.Credential
	if err := json.Unmarshal(record, &c); err != nil {
		return nil, err
	}
	return c.ID, nil
}

func marshalPair(options, session any) ([]byte, []byte, error) {
	o, err := json.Marshal(options)
	if err != nil {
		return nil, nil, err
	}
	s, err := json.Marshal(session)
	if err != nil {
		return nil, nil, err
	}
	return o, s, nil
}
