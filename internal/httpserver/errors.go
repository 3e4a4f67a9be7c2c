package httpserver

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/kluis/kluis"
)

// handlerFunc is a handler that returns its error; ServeHTTP maps it.
type handlerFunc func(w http.ResponseWriter, r *http.Request) error

func (h handlerFunc) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if err := h(w, r); err != nil {
		writeError(w, r, err)
	}
}

// statusOf is the one map from error code to HTTP status, for the API and
// the pages alike (shared/CONTRACT.md, "Errors"); a code it does not know
// is a 500.
var statusOf = map[string]int{
	kluis.EInvalid:              http.StatusBadRequest,
	kluis.EUnauthenticated:      http.StatusUnauthorized,
	kluis.EForbidden:            http.StatusForbidden,
	kluis.ENotFound:             http.StatusNotFound,
	kluis.EMethodNotAllowed:     http.StatusMethodNotAllowed,
	kluis.EConflict:             http.StatusConflict,
	kluis.EPreconditionFailed:   http.StatusPreconditionFailed,
	kluis.ETooLarge:             http.StatusRequestEntityTooLarge,
	kluis.ETooManyRequests:      http.StatusTooManyRequests,
	kluis.EInternal:             http.StatusInternalServerError,
	kluis.ELoginsDisabled:       http.StatusForbidden,
	kluis.EReauthRequired:       http.StatusForbidden,
	kluis.EMFAEnrolmentRequired: http.StatusForbidden,
	kluis.ELicenceLimit:         http.StatusConflict,
	// Restriction of processing (issue 15, R34).
	kluis.EProcessingRestricted: http.StatusConflict,
}

// errorStatus is the status of an error code.
func errorStatus(code string) int {
	if status, ok := statusOf[code]; ok {
		return status
	}
	return http.StatusInternalServerError
}

type errorBody struct {
	Error struct {
		Code    string            `json:"code"`
		Message string            `json:"message"`
		Fields  map[string]string `json:"fields,omitempty"`
	} `json:"error"`
}

// clientError turns any error into what the client may see: a *kluis.Error
// as it is, a body over the limit as too_large, anything else logged with the
// request id and answered as a neutral internal error. It reports false for
// a client that went away, which gets nothing.
func clientError(r *http.Request, err error) (*kluis.Error, bool) {
	var ke *kluis.Error
	var tooBig *http.MaxBytesError
	switch {
	case errors.As(err, &ke):
	case errors.As(err, &tooBig):
		ke = kluis.Errorf(kluis.ETooLarge, "the request body is too large")
	case errors.Is(err, context.Canceled) && r.Context().Err() != nil:
		state(r).log.Info("client went away", "route", state(r).route)
		return nil, false
	default:
		state(r).log.Error("internal error", "route", state(r).route, "err", err.Error())
		ke = kluis.Errorf(kluis.EInternal, "something went wrong; the error was logged with the request id")
	}
	return ke, true
}

// writeError is the one error mapper: a *kluis.Error is shown as it is;
// anything else is logged with the request id and answered with a neutral
// internal error. A client that went away gets nothing.
func writeError(w http.ResponseWriter, r *http.Request, err error) {
	ke, ok := clientError(r, err)
	if !ok {
		return
	}
	var body errorBody
	body.Error.Code, body.Error.Message = ke.Code, ke.Message
	// Fields name the problem per input field; a limit refused names the
	// limit it hit (licence_limit; conflict for max_managers, R8).
	if ke.Code == kluis.EInvalid || ke.Code == kluis.ELicenceLimit || ke.Code == kluis.EConflict {
		body.Error.Fields = ke.Fields
	}
	status := errorStatus(ke.Code)
	if ke.Code == kluis.EUnauthenticated {
		w.Header().Set("WWW-Authenticate", `Bearer realm="kluis"`)
	}
	setRetryAfter(w, ke)
	writeJSON(w, status, body)
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(true)
	if err := enc.Encode(v); err != nil {
		http.Error(w, `{"error":{"code":"internal","message":"encoding failed"}}`, http.StatusInternalServerError)
		return
	}
	w.Header().Set("Content-Type", "application/json; charset=utf-8")
	w.WriteHeader(status)
	w.Write(buf.Bytes())
}

// errNotJSON refuses a body that does not say it is JSON in UTF-8.
var errNotJSON = kluis.Errorf(kluis.EInvalid, "the body must be JSON in UTF-8 (Content-Type: application/json)")

// decode reads exactly one JSON object into v: the body limit is enforced by
// the middleware, unknown fields and trailing data are refused, and every
// problem is an invalid_input (or too_large) error that names no internals.
// The request must say it sends JSON (a Content-Type of application/json
// or +json), in UTF-8 if it names a charset: a browser's form cannot send
// that cross-origin without a CORS preflight, which kluis never grants, and
// a body in another encoding would be misread. The body must be UTF-8 (RFC
// 8259): encoding/json would silently replace invalid bytes, so they are
// refused before, and so is anything but an object (a bare null would
// otherwise decode as {}). Routes that take no body never call decode, so
// a request without one needs no Content-Type.
func decode(r *http.Request, v any) error {
	mt, params, err := mime.ParseMediaType(r.Header.Get("Content-Type"))
	if err != nil || (mt != "application/json" && !strings.HasSuffix(mt, "+json")) {
		return errNotJSON
	}
	if cs, ok := params["charset"]; ok && !strings.EqualFold(cs, "utf-8") {
		return errNotJSON
	}
	var raw json.RawMessage
	dec := json.NewDecoder(r.Body)
	err = dec.Decode(&raw)
	if err == nil {
		if _, extra := dec.Token(); extra != io.EOF {
			err = errors.New("trailing data")
			var tooBig *http.MaxBytesError
			if errors.As(extra, &tooBig) {
				err = extra
			}
		}
	}
	if err == nil {
		raw = bytes.TrimLeft(raw, " \t\r\n")
		switch {
		case !utf8.Valid(raw):
			return kluis.Errorf(kluis.EInvalid, "the body must be UTF-8 text")
		case len(raw) == 0 || raw[0] != '{':
			return kluis.Errorf(kluis.EInvalid, "the body must be a JSON object")
		}
		strict := json.NewDecoder(bytes.NewReader(raw))
		strict.DisallowUnknownFields()
		err = strict.Decode(v)
	}
	if err == nil {
		return nil
	}
	var tooBig *http.MaxBytesError
	var syntax *json.SyntaxError
	var typ *json.UnmarshalTypeError
	switch {
	case errors.As(err, &tooBig):
		return kluis.Errorf(kluis.ETooLarge, "the request body is too large")
	case errors.Is(err, io.EOF):
		return kluis.Errorf(kluis.EInvalid, "a JSON body is required")
	case errors.As(err, &typ) && typ.Field != "":
		return kluis.Invalid(map[string]string{typ.Field: "has the wrong type"})
	case errors.As(err, &typ):
		return kluis.Errorf(kluis.EInvalid, "the body must be a JSON object")
	case errors.As(err, &syntax), errors.Is(err, io.ErrUnexpectedEOF):
		return kluis.Errorf(kluis.EInvalid, "the body is not valid JSON")
	case strings.HasPrefix(err.Error(), "json: unknown field "):
		name := strings.Trim(strings.TrimPrefix(err.Error(), "json: unknown field "), `"`)
		if len(name) > 64 {
			name = name[:64]
		}
		return kluis.Invalid(map[string]string{name: "is not a known field"})
	}
	return kluis.Errorf(kluis.EInvalid, "the body is not valid JSON")
}

// setRetryAfter tells a throttled client how long to wait, in whole seconds
// rounded up (RFC 9110 §10.2.3).
func setRetryAfter(w http.ResponseWriter, ke *kluis.Error) {
	if ke.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.FormatInt(int64((ke.RetryAfter+time.Second-1)/time.Second), 10))
	}
}
