// Package mail renders, composes and delivers kluis's outgoing notices:
// invitations and password-change notices (requirement R45: mails are
// notices, a link and no confidential content).
//
// A notice is rendered from a fixed, embedded template ([Render]), composed
// into an RFC 5322 message ([Compose]) and handed to a [Sender]: the
// [Outbox], which writes .eml files for development, or [SMTP]. In
// production messages wait in a database queue and a [Worker] delivers them,
// retrying until the server takes them, so nothing is lost.
//
// # Threat model
//
// Mail leaves the system and is read and stored by parties kluis does not
// control: relays, mailbox providers, backups of mailboxes. So mails carry
// only the organisation's name and a link; the content waits inside the
// application after login (R45). The templates hold no personal data, and
// the To header carries the bare address, never a name (R3, R40).
//
// Log files are copied, shipped and kept longer than their owners think. No
// log line or error of this package contains a recipient address, a message
// body or a password; they name a message id, a queue id or a file path.
// Errors from an SMTP server keep only the reply code, because servers echo
// addresses in their replies. [SMTP.String] redacts the password.
//
// Invitation links carry a secret token. Delivery over SMTP therefore
// requires TLS (STARTTLS or implicit TLS) except to a server on the loopback
// interface, and outbox files are readable by their owner only.
//
// Attacker-influenced values (an organisation name, a subject, an address)
// could inject headers; line breaks and control characters in them are
// refused.
package mail
