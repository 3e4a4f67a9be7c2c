// Package kluis holds the domain of the kluis platform: identifiers, entities,
// validation and the pure rules that decide who may do what. It has no
// dependencies on storage or HTTP; the adapters in internal/ depend on it.
//
// The requirement ids cited in comments (R1…R50) refer to
// shared/REQUIREMENTS.md.
package kluis

import (
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"regexp"
	"time"
)

// OrgID identifies an organisation. Every storage call that touches rows of an
// organisation takes one as a typed, required argument (R1).
type OrgID string

// UserID identifies a user inside one organisation.
type UserID string

// OperatorID identifies an operator account (the separate platform realm).
type OperatorID string

// SessionID identifies a session; it is not the session's secret token.
type SessionID string

// NewID returns a random, time-ordered UUIDv7 (RFC 9562): 48 bits of Unix
// milliseconds followed by random bits. Ids reveal no volume and keep index
// locality (DESIGN §2).
func NewID(now time.Time) string {
	var b [16]byte
	if _, err := rand.Read(b[6:]); err != nil {
		panic("kluis: crypto/rand failed: " + err.Error())
	}
	ms := uint64(now.UnixMilli())
	var ts [8]byte
	binary.BigEndian.PutUint64(ts[:], ms)
	copy(b[0:6], ts[2:8])
	b[6] = (b[6] & 0x0f) | 0x70 // version 7
	b[8] = (b[8] & 0x3f) | 0x80 // RFC 9562 variant
	var s [36]byte
	hex.Encode(s[0:8], b[0:4])
	s[8] = '-'
	hex.Encode(s[9:13], b[4:6])
	s[13] = '-'
	hex.Encode(s[14:18], b[6:8])
	s[18] = '-'
	hex.Encode(s[19:23], b[8:10])
	s[23] = '-'
	hex.Encode(s[24:36], b[10:16])
	return string(s[:])
}

var uuidPattern = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// ValidID reports whether s has the form of an id made by NewID. Handlers
// answer not_found for anything else without asking the database.
func ValidID(s string) bool { return uuidPattern.MatchString(s) }

var slugPattern = regexp.MustCompile(`^[a-z0-9](?:[a-z0-9-]{0,38}[a-z0-9])?$`)

// ValidateSlug checks an organisation slug: lower-case letters, digits and
// hyphens, 2 to 40 characters, starting and ending with a letter or digit.
func ValidateSlug(slug string) error {
	if len(slug) < 2 || len(slug) > 40 || !slugPattern.MatchString(slug) {
		return fmt.Errorf("must be 2 to 40 characters of a-z, 0-9 and '-', not starting or ending with '-'")
	}
	return nil
}

// Role is a user's role inside an organisation.
type Role string

// The roles of an organisation (R7, R8: few administrators).
const (
	RoleManager Role = "manager"
	RoleMember  Role = "member"
)

// Valid reports whether r is a known role.
func (r Role) Valid() bool { return r == RoleManager || r == RoleMember }

// UserStatus is where a user is in their life cycle.
type UserStatus string

// User statuses: invited users have no password yet; disabled users cannot sign in.
const (
	StatusInvited  UserStatus = "invited"
	StatusActive   UserStatus = "active"
	StatusDisabled UserStatus = "disabled"
)

// Org is an organisation: one customer's isolated space (R1).
type Org struct {
	ID        OrgID
	Slug      string
	Name      string
	Language  string // "nl" or "en": the language of the organisation's mails
	CreatedAt time.Time
}

// User is a member or manager of one organisation. The personal data held is
// exactly name, e-mail, optional phone and the maintenance-mail choice (R3, R40).
type User struct {
	ID                UserID
	OrgID             OrgID
	Name              string
	Email             string
	Phone             string
	MaintenanceEmails bool
	Role              Role
	Status            UserStatus
	CreatedAt         time.Time
	LastLoginAt       time.Time // zero when the user never signed in
	// RestrictedAt is when the person's processing was restricted (R34);
	// zero when it is not. While it is set their data does not change and
	// no mail is sent about them.
	RestrictedAt time.Time
}

// Operator is an operator admin: staff of the party that runs the instance.
// Operators form a realm of their own and cannot read organisations' users (R22).
type Operator struct {
	ID        OperatorID
	Email     string
	Name      string
	Role      OperatorRole
	CreatedAt time.Time
}

// OperatorRole is what an operator's staff member may do (R8, R46): each
// role holds only the powers its work needs.
type OperatorRole string

// The operator roles.
const (
	// OperatorAdmin keeps organisations, their licences and the operators.
	OperatorAdmin OperatorRole = "admin"
	// OperatorSupport sees that an organisation exists and its licence;
	// anything more only through a grant of the customer (R22).
	OperatorSupport OperatorRole = "support"
	// OperatorSecurity keeps address blocks, alarms and the platform's
	// audit chain.
	OperatorSecurity OperatorRole = "security"
)

// OperatorRoles lists the roles in the order the pages show them.
var OperatorRoles = []OperatorRole{OperatorAdmin, OperatorSupport, OperatorSecurity}

// Valid reports whether r is one of OperatorRoles.
func (r OperatorRole) Valid() bool {
	return r == OperatorAdmin || r == OperatorSupport || r == OperatorSecurity
}

// Languages lists the languages kluis speaks.
var Languages = []string{"en", "nl"}

// ValidLanguage reports whether lang is one of Languages.
func ValidLanguage(lang string) bool {
	for _, l := range Languages {
		if l == lang {
			return true
		}
	}
	return false
}
