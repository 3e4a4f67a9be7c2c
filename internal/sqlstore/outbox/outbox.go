// Package outbox is the queues of mail and text messages as the delivery
// workers see them (mail.Queue, sms.Queue): messages are queued in the
// transaction of the action that sends them (sqlstore.Tx.QueueMail,
// QueueSMS) and stay until delivered, so a failed delivery is retried and
// nothing is lost. Leases keep two workers, on this node or another, from
// sending the same message.
package outbox

import (
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore"
)

// Mail is the mail queue.
type Mail struct{ core *sqlstore.Core }

// NewMail returns the mail queue over core.
func NewMail(core *sqlstore.Core) *Mail { return &Mail{core: core} }

// SMS is the text-message queue.
type SMS struct{ core *sqlstore.Core }

// NewSMS returns the text-message queue over core.
func NewSMS(core *sqlstore.Core) *SMS { return &SMS{core: core} }

var (
	_ mail.Queue = (*Mail)(nil)
	_ sms.Queue  = (*SMS)(nil)
)
