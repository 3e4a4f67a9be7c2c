package mail

import (
	"fmt"
	"strings"
	"unicode"
)

// The notices of an e-mail address change (R45: notices, never the new
// address in full on the old one).
const (
	// EmailChangeConfirm goes to the new address: a single-use link to
	// confirm it; Data.Link is required.
	EmailChangeConfirm Kind = "email_change_confirm"
	// EmailChangeRequested tells the current address that a change to
	// another one was asked; Data.Masked, the new address masked, is
	// required, and it carries no link.
	EmailChangeRequested Kind = "email_change_requested"
	// EmailChanged tells the former address that the change is done;
	// Data.Masked is required, and it carries no link.
	EmailChanged Kind = "email_changed"
)

// checkEmailChange checks the data of the e-mail change notices.
func checkEmailChange(k Kind, d Data) error {
	switch k {
	case EmailChangeConfirm:
		if d.Link == "" {
			return fmt.Errorf("mail: a %s needs a link", k)
		}
		if d.Masked != "" {
			return fmt.Errorf("mail: a %s names no address", k)
		}
	default:
		// A masked address hides part of itself; anything else could be
		// an address in clear.
		if !strings.Contains(d.Masked, "***") || strings.IndexFunc(d.Masked, unicode.IsControl) >= 0 {
			return fmt.Errorf("mail: a %s needs a masked address", k)
		}
		if d.Link != "" {
			return fmt.Errorf("mail: a %s carries no link", k)
		}
	}
	return nil
}
