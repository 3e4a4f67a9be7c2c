package kluistest

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"testing"

	"github.com/go-webauthn/webauthn/protocol/webauthncbor"
)

// Authenticator is a software WebAuthn authenticator for API tests (R17):
// one ES256 passkey, "none" attestation, user presence and verification,
// the sign count it is told. It answers the options kluis sends exactly as
// a browser would pass them on, for the origin it was made for.
type Authenticator struct {
	Origin    string // e.g. http://kluis.test
	RPID      string // e.g. kluis.test
	SignCount uint32 // the count registered; each assertion adds 1 first
	key       *ecdsa.PrivateKey
	credID    []byte
	handle    []byte
}

// NewAuthenticator returns an authenticator with a new key for origin and
// relying-party id rpID.
func NewAuthenticator(tb testing.TB, origin, rpID string) *Authenticator {
	tb.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		tb.Fatal(err)
	}
	id := make([]byte, 32)
	rand.Read(id)
	return &Authenticator{Origin: origin, RPID: rpID, key: key, credID: id, SignCount: 1}
}

var b64 = base64.RawURLEncoding

type ceremonyOptions struct {
	PublicKey struct {
		Challenge string `json:"challenge"`
		RP        struct {
			ID string `json:"id"`
		} `json:"rp"`
		RPID string `json:"rpId"`
		User struct {
			ID string `json:"id"`
		} `json:"user"`
	} `json:"publicKey"`
}

func (a *Authenticator) clientData(tb testing.TB, typ, challenge string) []byte {
	tb.Helper()
	b, err := json.Marshal(map[string]any{"type": typ, "challenge": challenge, "origin": a.Origin, "crossOrigin": false})
	if err != nil {
		tb.Fatal(err)
	}
	return b
}

func (a *Authenticator) authData(flags byte, attested []byte) []byte {
	h := sha256.Sum256([]byte(a.RPID))
	out := append(h[:], flags)
	out = binary.BigEndian.AppendUint32(out, a.SignCount)
	return append(out, attested...)
}

// Create answers registration options (the JSON kluis sent) with a new
// credential, as the JSON a browser's script posts back.
func (a *Authenticator) Create(tb testing.TB, options []byte) []byte {
	tb.Helper()
	var o ceremonyOptions
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		tb.Fatalf("registration options %s: %v", options, err)
	}
	if o.PublicKey.RP.ID != a.RPID {
		tb.Fatalf("registration for relying party %q, want %q", o.PublicKey.RP.ID, a.RPID)
	}
	handle, err := b64.DecodeString(o.PublicKey.User.ID)
	if err != nil {
		tb.Fatalf("user id %q: %v", o.PublicKey.User.ID, err)
	}
	a.handle = handle
	x, y := a.key.PublicKey.X.FillBytes(make([]byte, 32)), a.key.PublicKey.Y.FillBytes(make([]byte, 32))
	cose, err := webauthncbor.Marshal(map[int]any{1: 2, 3: -7, -1: 1, -2: x, -3: y})
	if err != nil {
		tb.Fatal(err)
	}
	attested := make([]byte, 16) // AAGUID: none
	attested = binary.BigEndian.AppendUint16(attested, uint16(len(a.credID)))
	attested = append(attested, a.credID...)
	attested = append(attested, cose...)
	ad := a.authData(0x45, attested) // UP, UV, AT
	att, err := webauthncbor.Marshal(map[string]any{"fmt": "none", "attStmt": map[string]any{}, "authData": ad})
	if err != nil {
		tb.Fatal(err)
	}
	return mustJSON(tb, map[string]any{
		"id": b64.EncodeToString(a.credID), "rawId": b64.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(a.clientData(tb, "webauthn.create", o.PublicKey.Challenge)),
			"attestationObject": b64.EncodeToString(att),
		},
		"clientExtensionResults": map[string]any{},
	})
}

// Get counts one more use and answers assertion options with a signature
// of this passkey.
func (a *Authenticator) Get(tb testing.TB, options []byte) []byte {
	tb.Helper()
	var o ceremonyOptions
	if err := json.Unmarshal(options, &o); err != nil || o.PublicKey.Challenge == "" {
		tb.Fatalf("assertion options %s: %v", options, err)
	}
	if o.PublicKey.RPID != a.RPID {
		tb.Fatalf("assertion for relying party %q, want %q", o.PublicKey.RPID, a.RPID)
	}
	cd := a.clientData(tb, "webauthn.get", o.PublicKey.Challenge)
	a.SignCount++
	ad := a.authData(0x05, nil) // UP, UV
	h := sha256.Sum256(cd)
	digest := sha256.Sum256(append(append([]byte{}, ad...), h[:]...))
	sig, err := ecdsa.SignASN1(rand.Reader, a.key, digest[:])
	if err != nil {
		tb.Fatal(err)
	}
	return mustJSON(tb, map[string]any{
		"id": b64.EncodeToString(a.credID), "rawId": b64.EncodeToString(a.credID), "type": "public-key",
		"response": map[string]any{
			"clientDataJSON":    b64.EncodeToString(cd),
			"authenticatorData": b64.EncodeToString(ad),
			"signature":         b64.EncodeToString(sig),
			"userHandle":        b64.EncodeToString(a.handle),
		},
		"clientExtensionResults": map[string]any{},
	})
}

func mustJSON(tb testing.TB, v any) []byte {
	tb.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		tb.Fatal(err)
	}
	return b
}
