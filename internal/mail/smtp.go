package mail

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strconv"
	"time"
)

// smtpTimeout bounds one delivery: dialling, TLS and the whole dialogue.
const smtpTimeout = 30 * time.Second

// tlsMode says how an smtp:// connection is protected.
type tlsMode int

const (
	tlsStartTLSRequired  tlsMode = iota // STARTTLS or fail
	tlsStartTLSIfOffered                // loopback only: STARTTLS when offered
	tlsNone                             // loopback only: never STARTTLS
	tlsImplicit                         // smtps://
)

// SMTP is a Sender that hands messages to an SMTP server. It is safe for
// concurrent use; every Send opens its own connection.
type SMTP struct {
	url    *url.URL // for String, with the password
	host   string   // for TLS verification and PLAIN auth
	addr   string   // host:port
	mode   tlsMode
	auth   smtp.Auth // nil without user info
	logger *slog.Logger

	rootCAs *x509.CertPool // nil: the system's; tests set their own
	timeout time.Duration
}

// NewSMTP returns an SMTP sender for rawURL, one of
//
//	smtp://[user:password@]host[:port][?tls=starttls|none]
//	smtps://[user:password@]host[:port]
//
// smtp:// uses port 587 and requires STARTTLS, except towards a loopback
// host (localhost, 127.0.0.0/8, ::1), where STARTTLS is used when the server
// offers it. ?tls=starttls requires STARTTLS even on loopback; ?tls=none
// never starts TLS and is accepted for loopback hosts only (local relays and
// test servers). smtps:// uses implicit TLS on port 465. With user info,
// Send authenticates with AUTH PLAIN, which net/smtp permits only over TLS
// or towards localhost. Server certificates are verified against the
// system's roots. The logger may be nil.
//
// Errors never contain the password.
func NewSMTP(rawURL string, logger *slog.Logger) (*SMTP, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// url.Error quotes the whole URL, password included.
		return nil, errors.New("mail: SMTP URL does not parse")
	}
	s := &SMTP{url: u, logger: logger, timeout: smtpTimeout}
	var defaultPort string
	switch u.Scheme {
	case "smtp":
		defaultPort = "587"
	case "smtps":
		defaultPort = "465"
	default:
		return nil, errors.New("mail: SMTP URL scheme must be smtp or smtps")
	}
	if u.Opaque != "" || (u.Path != "" && u.Path != "/") || u.Fragment != "" {
		return nil, errors.New("mail: SMTP URL must not have a path or fragment")
	}
	s.host = u.Hostname()
	if s.host == "" {
		return nil, errors.New("mail: SMTP URL has no host")
	}
	port := u.Port()
	if port == "" {
		port = defaultPort
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, errors.New("mail: SMTP URL has an invalid port")
	}
	s.addr = net.JoinHostPort(s.host, port)

	query, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, errors.New("mail: SMTP URL query does not parse")
	}
	loopback := isLoopback(s.host)
	tlsParam := query.Get("tls")
	delete(query, "tls")
	if len(query) > 0 {
		return nil, errors.New("mail: SMTP URL has unknown query parameters (only tls is known)")
	}
	switch {
	case u.Scheme == "smtps" && tlsParam == "":
		s.mode = tlsImplicit
	case u.Scheme == "smtps":
		return nil, errors.New("mail: smtps URL takes no tls parameter")
	case tlsParam == "starttls" || (tlsParam == "" && !loopback):
		s.mode = tlsStartTLSRequired
	case tlsParam == "" && loopback:
		s.mode = tlsStartTLSIfOffered
	case tlsParam == "none" && loopback:
		s.mode = tlsNone
	case tlsParam == "none":
		return nil, errors.New("mail: SMTP URL with tls=none is only accepted for a loopback host")
	default:
		return nil, errors.New("mail: SMTP URL tls parameter must be starttls or none")
	}

	if u.User != nil {
		password, _ := u.User.Password()
		s.auth = smtp.PlainAuth("", u.User.Username(), password, s.host)
	}
	return s, nil
}

// isLoopback reports whether host names the local machine for certain.
func isLoopback(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String returns the server URL with the password redacted.
func (s *SMTP) String() string {
	return s.url.Redacted()
}

// GoString returns the same as String, so that %#v does not print the
// password either.
func (s *SMTP) GoString() string {
	return s.String()
}

// LogValue logs the server URL with the password redacted.
func (s *SMTP) LogValue() slog.Value {
	return slog.StringValue(s.String())
}

// Send delivers msg to the server for the envelope sender from and the
// envelope recipients to (addresses; a display name is ignored). Each call
// takes at most 30 seconds, less when ctx ends sooner. Errors name the stage
// that failed and, for a refusal, the server's reply code, but never the
// server's reply text, which often repeats an address; when ctx ended, the
// error wraps its error.
func (s *SMTP) Send(ctx context.Context, from string, to []string, msg []byte) error {
	if len(to) == 0 {
		return errors.New("mail: smtp: no recipients")
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return errors.New("mail: smtp: invalid envelope sender")
	}
	recipients := make([]string, len(to))
	for i, r := range to {
		a, err := mail.ParseAddress(r)
		if err != nil {
			return fmt.Errorf("mail: smtp: invalid envelope recipient %d of %d", i+1, len(to))
		}
		recipients[i] = a.Address
	}

	// The connection's own deadline; ctx can end the dialogue sooner.
	deadline := time.Now().Add(s.timeout)
	fail := func(stage string, err error) error {
		if ctxErr := ctx.Err(); ctxErr != nil {
			return fmt.Errorf("mail: smtp %s: %w", stage, ctxErr)
		}
		var reply *textproto.Error
		if errors.As(err, &reply) {
			return fmt.Errorf("mail: smtp %s: refused by the server with code %d", stage, reply.Code)
		}
		return fmt.Errorf("mail: smtp %s: %w", stage, err)
	}

	dialer := net.Dialer{Deadline: deadline}
	// When ctx ends, the AfterFunc below cuts the connection, and ctx.Err()
	// is set by then, so fail reports it.
	conn, err := dialer.DialContext(ctx, "tcp", s.addr)
	if err != nil {
		return fail("dial", err)
	}
	defer conn.Close()
	raw := conn
	raw.SetDeadline(deadline)
	// Unblock any read or write, also through TLS, when ctx ends.
	stop := context.AfterFunc(ctx, func() { raw.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	tlsConfig := &tls.Config{ServerName: s.host, RootCAs: s.rootCAs, MinVersion: tls.VersionTLS12}
	if s.mode == tlsImplicit {
		tlsConn := tls.Client(conn, tlsConfig)
		if err := tlsConn.HandshakeContext(ctx); err != nil {
			return fail("TLS handshake", err)
		}
		conn = tlsConn
	}
	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fail("greeting", err)
	}
	defer c.Close()
	if err := c.Hello("localhost"); err != nil {
		return fail("EHLO", err)
	}
	if s.mode == tlsStartTLSRequired || s.mode == tlsStartTLSIfOffered {
		offered, _ := c.Extension("STARTTLS")
		switch {
		case offered:
			if err := c.StartTLS(tlsConfig); err != nil {
				return fail("STARTTLS", err)
			}
		case s.mode == tlsStartTLSRequired:
			return errors.New("mail: smtp: server does not offer STARTTLS, which is required")
		}
	}
	if s.auth != nil {
		if offered, _ := c.Extension("AUTH"); !offered {
			return errors.New("mail: smtp: server does not offer AUTH, but credentials are configured")
		}
		if err := c.Auth(s.auth); err != nil {
			return fail("AUTH", err)
		}
	}
	if err := c.Mail(sender.Address); err != nil {
		return fail("MAIL FROM", err)
	}
	for i, r := range recipients {
		if err := c.Rcpt(r); err != nil {
			return fail(fmt.Sprintf("RCPT TO (recipient %d of %d)", i+1, len(recipients)), err)
		}
	}
	w, err := c.Data()
	if err != nil {
		return fail("DATA", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fail("DATA", err)
	}
	if err := w.Close(); err != nil {
		return fail("end of DATA", err)
	}
	// The server has the message now; a failing QUIT changes nothing.
	c.Quit()
	logger(s.logger).DebugContext(ctx, "mail handed to SMTP server", "message_id", messageIDOf(msg), "server", s)
	return nil
}
