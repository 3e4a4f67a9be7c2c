// Package i18n holds kluis's texts in Dutch and English, chooses the language
// of a request, and formats dates and times in a person's language and time
// zone. It is a leaf library: the HTTP server uses it, it uses nothing of
// kluis.
//
// Texts are looked up by key (Lang.T). Messages that come from the domain and
// the store (kluis.Error messages and field problems, written in English for
// the API) are translated by Lang.Message, with any number in them standing in
// for the placeholder {n}.
package i18n

import (
	"fmt"
	"regexp"
	"sort"
	"strconv"
	"strings"
	"time"
	_ "time/tzdata" // Location must not depend on the host's zoneinfo
)

// Lang is a language kluis speaks.
type Lang string

// The languages.
const (
	EN Lang = "en"
	NL Lang = "nl"
)

// Langs lists the languages in the order a switch shows them.
var Langs = []Lang{NL, EN}

// Default is the language when nothing else tells.
const Default = EN

// Parse returns the language named by s ("nl", "en", case-insensitive, a
// region such as "nl-BE" allowed).
func Parse(s string) (Lang, bool) {
	s = strings.ToLower(strings.TrimSpace(s))
	if i := strings.IndexAny(s, "-_"); i >= 0 {
		s = s[:i]
	}
	for _, l := range Langs {
		if s == string(l) {
			return l, true
		}
	}
	return "", false
}

// Negotiate picks the best language of an Accept-Language header (RFC 9110
// §12.5.4): the highest weight among the languages kluis speaks, the earlier
// one on a tie; Default when none is acceptable. A malformed header counts as
// absent.
func Negotiate(header string) Lang {
	if len(header) > 1024 {
		return Default
	}
	best, bestQ := Default, 0.0
	for _, part := range strings.Split(header, ",") {
		tag, params, _ := strings.Cut(part, ";")
		q := 1.0
		if v, ok := strings.CutPrefix(strings.TrimSpace(params), "q="); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil || f < 0 || f > 1 {
				continue
			}
			q = f
		}
		l, ok := Parse(tag)
		if strings.TrimSpace(tag) == "*" {
			l, ok = Default, true
		}
		if ok && q > bestQ {
			best, bestQ = l, q
		}
	}
	return best
}

// T returns the text of key in the language, with args put in by
// fmt.Sprintf when there are any. An unknown key returns "!key", so that a
// missing text shows on the page and fails the template test.
func (l Lang) T(key string, args ...any) string {
	m, ok := texts[key]
	if !ok {
		return "!" + key
	}
	s := m.en
	if l == NL {
		s = m.nl
	}
	if len(args) > 0 {
		return fmt.Sprintf(s, args...)
	}
	return s
}

// Has reports whether key is a known text.
func Has(key string) bool {
	_, ok := texts[key]
	return ok
}

// Keys returns every text key, sorted.
func Keys() []string {
	out := make([]string, 0, len(texts))
	for k := range texts {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

var number = regexp.MustCompile(`[0-9]+`)

// Message translates an English message of the domain or the store. A
// message without a translation comes back as it is in English, and as ""
// in Dutch, so that the caller can fall back to a general text.
func (l Lang) Message(msg string) string {
	if l == EN {
		return msg
	}
	n := number.FindString(msg)
	key := msg
	if n != "" {
		key = strings.Replace(msg, n, "{n}", 1)
	}
	nl, ok := messages[key]
	if !ok {
		return ""
	}
	return strings.Replace(nl, "{n}", n, 1)
}

// Translated reports whether msg has a Dutch translation.
func Translated(msg string) bool { return NL.Message(msg) != "" }

var months = map[Lang][12]string{
	EN: {"Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"},
	NL: {"jan", "feb", "mrt", "apr", "mei", "jun", "jul", "aug", "sep", "okt", "nov", "dec"},
}

// Date formats the day of t in loc: "23 Nov 2026", "23 nov 2026".
func (l Lang) Date(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	return fmt.Sprintf("%d %s %d", t.Day(), l.months()[t.Month()-1], t.Year())
}

// DateTime formats t in loc to the minute with the zone's abbreviation:
// "23 Nov 2026, 14:05 CET", "23 nov 2026 14:05 CET".
func (l Lang) DateTime(t time.Time, loc *time.Location) string {
	t = t.In(loc)
	sep := ", "
	if l == NL {
		sep = " "
	}
	return l.Date(t, loc) + sep + t.Format("15:04 MST")
}

func (l Lang) months() [12]string {
	if m, ok := months[l]; ok {
		return m
	}
	return months[EN]
}

// UTC is the time zone until a person's is known.
var UTC = time.UTC

var zoneName = regexp.MustCompile(`^[A-Za-z][A-Za-z0-9_+\-]*(/[A-Za-z0-9_+\-]+){0,2}$`)

// Location returns the IANA time zone name (as a browser reports it, such as
// "Europe/Amsterdam"), or false when it is not a known zone. The time zone
// database is compiled in (time/tzdata), so this does not depend on the host.
func Location(name string) (*time.Location, bool) {
	if len(name) > 64 || !zoneName.MatchString(name) || name == "Local" {
		return nil, false
	}
	loc, err := time.LoadLocation(name)
	if err != nil {
		return nil, false
	}
	return loc, true
}
