package kluis

import (
	"context"
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// NoticeMaintenance is an operator's maintenance announcement (R3, R40): it
// reaches only people who chose maintenance mail, and waits in their inbox
// (R45: the mail only says that something waits).
const NoticeMaintenance = "maintenance"

// Limits of a maintenance announcement.
const (
	MaxAnnouncementTitle = 200
	MaxAnnouncementBody  = 5000
)

// Announcement is a maintenance announcement as the operator writes it: one
// text for every organisation, whatever its language.
type Announcement struct {
	Title string
	Body  string
}

// Normalize trims the title and body and gives line ends one form.
func (a Announcement) Normalize() Announcement {
	return Announcement{
		Title: strings.TrimSpace(NormalizeName(a.Title)),
		Body:  strings.TrimSpace(strings.ReplaceAll(a.Body, "\r\n", "\n")),
	}
}

// Validate checks a normalised announcement: a title of 1 to 200
// characters without control characters, a body of 1 to 5000 characters
// without control characters other than line ends and tabs.
func (a Announcement) Validate() error {
	f := map[string]string{}
	switch {
	case a.Title == "":
		f["title"] = "is required"
	case !utf8.ValidString(a.Title) || utf8.RuneCountInString(a.Title) > MaxAnnouncementTitle:
		f["title"] = fmt.Sprintf("must be at most %d characters", MaxAnnouncementTitle)
	case strings.ContainsFunc(a.Title, unicode.IsControl):
		f["title"] = "must not contain control characters"
	}
	switch {
	case a.Body == "":
		f["body"] = "is required"
	case !utf8.ValidString(a.Body) || utf8.RuneCountInString(a.Body) > MaxAnnouncementBody:
		f["body"] = fmt.Sprintf("must be at most %d characters", MaxAnnouncementBody)
	case strings.ContainsFunc(a.Body, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\t' }):
		f["body"] = "must not contain control characters"
	}
	if len(f) > 0 {
		return Invalid(f)
	}
	return nil
}

// CanAnnounce: operator admins (and the command line) send maintenance
// announcements.
func CanAnnounce(a Actor) bool { return a.HasOperatorRole(OperatorAdmin) }

// AnnouncementService sends the operator's maintenance announcements (R3,
// R40, R45): each reaches only the active people of every organisation who
// opted in to maintenance mail and whose processing is not restricted
// (R34), as a notice in their inbox and a mail that only says one waits.
// Recorded as announcement.send in the platform chain.
type AnnouncementService interface {
	// SendAnnouncement posts the announcement and returns how many people
	// it reached. Errors: forbidden, invalid_input.
	SendAnnouncement(ctx context.Context, actor Actor, a Announcement) (int, error)
}
