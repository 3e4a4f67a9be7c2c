package mail

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"mime"
	"mime/quotedprintable"
	"net/mail"
	"strings"
	"time"
	"unicode/utf8"
)

// maxSubjectLen bounds the subject in bytes. An encoded subject is folded
// between its encoded words, so no header line nears RFC 5322's limit.
const maxSubjectLen = 900

// Compose builds an RFC 5322 message with CRLF line endings from a sender
// address (a display name is allowed), a recipient address, a subject and a
// plain-text UTF-8 body, dated now. The body is text/plain in UTF-8, sent as
// 7bit (ASCII) or 8bit text when every line fits RFC 5322's 998-byte limit,
// so that links stay whole and copyable even in the raw message, and as
// quoted-printable otherwise; a non-ASCII subject is encoded per RFC 2047. The To
// header carries the bare address, without any display name (R3, R40).
//
// messageID is the value of the Message-ID header, "<random hex@domain of
// from>", for logging. Compose refuses line breaks in from, to or subject
// (header injection), addresses net/mail cannot parse, a subject longer than
// 900 bytes and text that is not valid UTF-8; its errors never contain an
// address.
func Compose(from, to, subject, body string, now time.Time) (msg []byte, messageID string, err error) {
	if strings.ContainsAny(from+to+subject, "\r\n") {
		return nil, "", errors.New("mail: header field contains a line break")
	}
	sender, err := mail.ParseAddress(from)
	if err != nil {
		return nil, "", errors.New("mail: invalid sender address")
	}
	recipient, err := mail.ParseAddress(to)
	if err != nil {
		return nil, "", errors.New("mail: invalid recipient address")
	}
	if !utf8.ValidString(subject) || !utf8.ValidString(body) {
		return nil, "", errors.New("mail: subject or body is not valid UTF-8")
	}
	if len(subject) > maxSubjectLen {
		return nil, "", errors.New("mail: subject too long")
	}

	domain := sender.Address[strings.LastIndexByte(sender.Address, '@')+1:]
	random := make([]byte, 16)
	rand.Read(random)
	messageID = "<" + hex.EncodeToString(random) + "@" + domain + ">"

	var buf bytes.Buffer
	header := func(name, value string) {
		buf.WriteString(name)
		buf.WriteString(": ")
		buf.WriteString(value)
		buf.WriteString("\r\n")
	}
	header("Date", now.UTC().Format(time.RFC1123Z))
	header("From", sender.String())
	header("To", (&mail.Address{Address: recipient.Address}).String())
	// mime splits a long subject into encoded words of at most 75 characters,
	// separated by spaces; folding there keeps every line short.
	header("Subject", strings.ReplaceAll(mime.QEncoding.Encode("utf-8", subject), "?= =?", "?=\r\n =?"))
	header("Message-ID", messageID)
	// RFC 3834: a notice; autoresponders should not answer it.
	header("Auto-Submitted", "auto-generated")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	lines := strings.Split(strings.TrimSuffix(strings.ReplaceAll(body, "\r\n", "\n"), "\n"), "\n")
	if cte := plainEncoding(lines); cte != "" {
		header("Content-Transfer-Encoding", cte)
		buf.WriteString("\r\n")
		for _, l := range lines {
			buf.WriteString(l)
			buf.WriteString("\r\n")
		}
		return buf.Bytes(), messageID, nil
	}
	header("Content-Transfer-Encoding", "quoted-printable")
	buf.WriteString("\r\n")

	if !strings.HasSuffix(body, "\n") {
		body += "\n"
	}
	qp := quotedprintable.NewWriter(&buf)
	// Writes to a bytes.Buffer do not fail.
	qp.Write([]byte(body))
	qp.Close()
	return buf.Bytes(), messageID, nil
}

// plainEncoding returns "7bit" or "8bit" when the lines can be sent as they
// are (no line over 998 bytes, no bare CR or NUL), and "" when they need
// quoted-printable.
func plainEncoding(lines []string) string {
	cte := "7bit"
	for _, l := range lines {
		if len(l) > 998 || strings.ContainsAny(l, "\r\x00") {
			return ""
		}
		for i := 0; i < len(l); i++ {
			if l[i] >= 0x80 {
				cte = "8bit"
				break
			}
		}
	}
	return cte
}

// messageIDOf returns the Message-ID header of msg, or "" if there is none;
// it is what log lines may name.
func messageIDOf(msg []byte) string {
	m, err := mail.ReadMessage(bytes.NewReader(msg))
	if err != nil {
		return ""
	}
	return m.Header.Get("Message-ID")
}
