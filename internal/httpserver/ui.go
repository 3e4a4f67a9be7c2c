package httpserver

import (
	"bytes"
	"crypto/sha256"
	"embed"
	"encoding/hex"
	"errors"
	"fmt"
	"html/template"
	"io/fs"
	"maps"
	"net/http"
	"net/url"
	"path"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/i18n"
)

// The web interface (docs/UI.md): server-rendered pages on the same service
// methods as the API. Page handlers are pageFuncs: they fill a pageData and
// render one template, or return an error that the page wrapper shows as an
// HTML page in the person's language.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// Cookies of the web interface. The notice cookie holds a message key only;
// the language and time zone cookies hold preferences, no personal data.
const (
	noticeCookie = "kluis_notice"
	langCookie   = "kluis_lang"
	tzCookie     = "kluis_tz"
)

// pageHeaders are set on every page (docs/UI.md, Security headers).
var pageHeaders = map[string]string{
	"Content-Security-Policy":      "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; font-src 'self'; connect-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'",
	"Cross-Origin-Opener-Policy":   "same-origin",
	"Cross-Origin-Resource-Policy": "same-origin",
	"Permissions-Policy":           "accelerometer=(), autoplay=(), camera=(), display-capture=(), geolocation=(), gyroscope=(), magnetometer=(), microphone=(), midi=(), payment=(), usb=(), serial=(), hid=(), bluetooth=()",
	"X-Frame-Options":              "DENY",
}

// templates holds one parsed template set per page.
type templates map[string]*template.Template

func loadTemplates() (templates, error) {
	base, err := template.ParseFS(templateFS, "templates/_*.html")
	if err != nil {
		return nil, err
	}
	names, err := fs.Glob(templateFS, "templates/[a-z]*.html")
	if err != nil {
		return nil, err
	}
	out := templates{}
	for _, n := range names {
		t, err := template.Must(base.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return nil, err
		}
		out[strings.TrimSuffix(path.Base(n), ".html")] = t
	}
	return out, nil
}

// local is the person's language and time zone.
type local struct {
	Lang i18n.Lang
	loc  *time.Location
}

// T returns the text of key in the page's language.
func (l local) T(key string, args ...any) string { return l.Lang.T(key, args...) }

// Time formats t to the minute in the person's time zone.
func (l local) Time(t time.Time) string {
	if t.IsZero() {
		return l.T("time.never")
	}
	return l.Lang.DateTime(t, l.loc)
}

// Date formats the day of t in the person's time zone.
func (l local) Date(t time.Time) string { return l.Lang.Date(t, l.loc) }

// Size is a number of bytes as people read it: 512 bytes, 1.5 kB, 2.3 MB
// (with the page language's decimal mark).
func (l local) Size(n int64) string {
	if n < 1000 {
		return l.T("size.bytes", n)
	}
	f, unit := float64(n), ""
	for _, u := range []string{"kB", "MB", "GB", "TB"} {
		f, unit = f/1000, u
		if f < 1000 {
			break
		}
	}
	s := strconv.FormatFloat(f, 'f', 1, 64)
	if l.Lang == i18n.NL {
		s = strings.Replace(s, ".", ",", 1)
	}
	return s + " " + unit
}

// Rights are the names of what a person may do to a project, in words.
func (l local) Rights(rs kluis.Rights) []string {
	names := rs.Names()
	for i, n := range names {
		names[i] = l.T("right." + n)
	}
	return names
}

// ISO is t as RFC 3339 for <time datetime>.
func (l local) ISO(t time.Time) string { return t.UTC().Format(time.RFC3339) }

type navItem struct {
	Href, Label string
	Current     bool
}

type langChoice struct {
	Code, Label string
	Current     bool
}

// pageData is what every template gets. Data is the page's own.
type pageData struct {
	L            local
	Page         string
	Title        string
	Org          kluis.Org
	InOrg        bool
	Operator     bool
	Realm        realm // of the page: its paths (Base, Account, Start)
	SignedIn     bool  // a person of the page's realm is signed in
	Actor        kluis.Actor
	Manager      bool
	Notice       string
	Error        string
	Fields       map[string]string // translated, by field name
	Form         url.Values        // what the person typed, passwords removed
	IdleSeconds  int
	Wide         bool // a page of wide tables
	Back         string
	Home         string
	Nav          []navItem
	LogoutAction string
	Langs        []langChoice
	Data         any
	// Enrolling marks a session limited to enrolling a second factor
	// (R17): My account explains why.
	Enrolling bool
	// Support is the grant of a support session (R22): every page it
	// opens says who is in, until when, on which grant.
	Support *kluis.SupportAccess
	// SupportIn lists support sessions active in the organisation now,
	// shown on its managers' pages.
	SupportIn []kluis.SupportAccess

	srv    *server
	policy kluis.Policy // the organisation's, when a person is signed in
	unread int          // the person's unread notices, for the navigation
	// retryAfter is set by showError for a throttled form: renderPage
	// sends it as Retry-After.
	retryAfter *kluis.Error
}

func (p *pageData) title(key string, args ...any) { p.Title = p.L.T(key, args...) }

// ViewOnly reports a support session on a view grant (R22): it posts
// nothing, so its pages offer no forms that change things.
func (p *pageData) ViewOnly() bool { return p.Support != nil && p.Support.Right != kluis.SupportEdit }

// inputData is one form field for the "input", "checkbox" and "select"
// templates.
type inputData struct {
	ID, Name, Type, Label, Hint, Autocomplete, Value, Error, Optional string
	Min, Max                                                          string
	Required, Checked                                                 bool
	Options                                                           []option
}

type option struct {
	Value, Label string
	Selected     bool
}

// WithHint is the field with another hint than its name's: the code on a
// set-up page comes from one source, not from any factor.
func (f inputData) WithHint(hint string) inputData {
	f.Hint = hint
	return f
}

// Describedby links the field to its hint and its error.
func (f inputData) Describedby() string {
	var ids []string
	if f.Hint != "" {
		ids = append(ids, f.ID+"-hint")
	}
	if f.Error != "" {
		ids = append(ids, f.ID+"-error")
	}
	return strings.Join(ids, " ")
}

func (p *pageData) field(name, typ, autocomplete string, required bool) inputData {
	f := inputData{
		ID: name, Name: name, Type: typ, Autocomplete: autocomplete, Required: required,
		Label: p.L.T("field." + name), Error: p.Fields[name], Optional: p.L.T("field.optional"),
	}
	if i18n.Has("hint." + name) {
		f.Hint = p.L.T("hint." + name)
	}
	if typ != "password" {
		f.Value = p.Form.Get(name)
	}
	return f
}

// Input is a required field; typ is the input type, autocomplete its token.
func (p *pageData) Input(name, typ, autocomplete string) inputData {
	return p.field(name, typ, autocomplete, true)
}

// Optional is a field that may stay empty.
func (p *pageData) Optional(name, typ, autocomplete string) inputData {
	return p.field(name, typ, autocomplete, false)
}

// Number is a required whole-number field between lo and hi.
func (p *pageData) Number(name string, lo, hi int) inputData {
	f := p.field(name, "number", "off", true)
	f.Min, f.Max = fmt.Sprint(lo), fmt.Sprint(hi)
	return f
}

// Check is a checkbox, checked when the form says "on".
func (p *pageData) Check(name string) inputData {
	f := p.field(name, "checkbox", "", false)
	f.Checked = p.Form.Get(name) == "on"
	return f
}

// Select is a list of choices; labels are the texts "KEYPREFIX.VALUE".
func (p *pageData) Select(name, keyPrefix string, values ...string) inputData {
	f := p.field(name, "select", "", true)
	for _, v := range values {
		f.Options = append(f.Options, option{Value: v, Label: p.L.T(keyPrefix + "." + v), Selected: v == f.Value})
	}
	return f
}

// showError puts an error of a service method on the page: field problems next
// to their fields, a conflict or a refusal above the form. It reports false
// for errors the page cannot show, which the caller returns.
func (p *pageData) showError(err error) bool {
	var ke *kluis.Error
	if !errors.As(err, &ke) {
		return false
	}
	switch ke.Code {
	case kluis.EInvalid:
		p.Fields = map[string]string{}
		for name, msg := range ke.Fields {
			p.Fields[strings.ReplaceAll(name, ".", "_")] = p.message(msg, "error.field")
		}
		if len(ke.Fields) == 0 {
			p.Error = p.message(ke.Message, "error.invalid_input")
		} else {
			p.Error = p.L.T("error.check_fields")
		}
		return true
	case kluis.ELoginsDisabled:
		p.Error = p.L.T("error.logins_disabled")
		return true
	case kluis.ETooManyRequests:
		p.Error = p.L.T("error.too_many_requests")
		p.retryAfter = ke
		return true
	case kluis.EConflict:
		p.Error = p.message(ke.Message, "error."+ke.Code)
		// A conflict with a field names the limit it hit, such as the
		// policy's cap on managers (R8).
		for _, name := range slices.Sorted(maps.Keys(ke.Fields)) {
			if t := p.L.Lang.Message(ke.Fields[name]); t != "" {
				p.Error += " (" + t + ")"
			}
		}
		return true
	case kluis.EProcessingRestricted:
		p.Error = p.L.T("error.processing_restricted")
		return true
	case kluis.ELicenceLimit:
		p.Error = p.L.T("error.licence_limit")
		for _, m := range ke.Fields {
			if t := p.L.Lang.Message(m); t != "" {
				p.Error += " (" + t + ")"
			}
		}
		return true
	}
	return false
}

// message translates a domain message, or falls back to the text fallback.
func (p *pageData) message(msg, fallback string) string {
	if m := p.L.Lang.Message(msg); m != "" {
		return m
	}
	return p.L.T(fallback)
}

// render writes the page with status.
func (s *server) render(w http.ResponseWriter, status int, name string, p *pageData) error {
	t, ok := s.pages[name]
	if !ok {
		return fmt.Errorf("no template %q", name)
	}
	p.Page = name
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout", p); err != nil {
		return fmt.Errorf("render %s: %w", name, err)
	}
	h := w.Header()
	h.Set("Content-Type", "text/html; charset=utf-8")
	h.Set("Content-Length", fmt.Sprint(buf.Len()))
	w.WriteHeader(status)
	w.Write(buf.Bytes())
	return nil
}

// redirect answers a form post: 303 See Other to a page of this site, with
// an optional notice for it.
func redirect(w http.ResponseWriter, r *http.Request, to, notice string) error {
	if notice != "" {
		http.SetCookie(w, &http.Cookie{Name: noticeCookie, Value: notice, Path: "/", MaxAge: 60, HttpOnly: true, Secure: state(r).secure, SameSite: http.SameSiteLaxMode})
	}
	http.Redirect(w, r, to, http.StatusSeeOther)
	return nil
}

// formValues parses a posted form. The body limit of the middleware holds;
// only url-encoded forms are read, so a multipart upload cannot spill to
// disk.
func formValues(r *http.Request) (url.Values, error) {
	if err := r.ParseForm(); err != nil {
		var tooBig *http.MaxBytesError
		if errors.As(err, &tooBig) {
			return nil, kluis.Errorf(kluis.ETooLarge, "the request body is too large")
		}
		return nil, kluis.Errorf(kluis.EInvalid, "the form could not be read")
	}
	return r.PostForm, nil
}

// localPath returns back when it is a path of this site, else "/".
func localPath(back string) string {
	u, err := url.Parse(back)
	if err != nil || back == "" || back[0] != '/' || strings.HasPrefix(back, "//") || strings.ContainsAny(back, "\\\r\n\x00") || u.Scheme != "" || u.Host != "" {
		return "/"
	}
	return u.EscapedPath()
}

// staticFiles serves the embedded style sheet and script with an ETag, so a
// browser asks again but downloads only after a change.
func staticFiles() (http.Handler, error) {
	sub, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	type file struct {
		body  []byte
		ctype string
		etag  string
	}
	files := map[string]file{}
	err = fs.WalkDir(sub, ".", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := fs.ReadFile(sub, p)
		if err != nil {
			return err
		}
		sum := sha256.Sum256(b)
		ctype := "text/css; charset=utf-8"
		if strings.HasSuffix(p, ".js") {
			ctype = "text/javascript; charset=utf-8"
		}
		files[p] = file{body: b, ctype: ctype, etag: `"` + hex.EncodeToString(sum[:8]) + `"`}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return handlerFunc(func(w http.ResponseWriter, r *http.Request) error {
		f, ok := files[r.PathValue("file")]
		if !ok {
			return kluis.ErrNotFound
		}
		h := w.Header()
		h.Set("Content-Type", f.ctype)
		h.Set("Cache-Control", "no-cache")
		h.Set("ETag", f.etag)
		if r.Header.Get("If-None-Match") == f.etag {
			w.WriteHeader(http.StatusNotModified)
			return nil
		}
		w.Write(f.body)
		return nil
	}), nil
}
