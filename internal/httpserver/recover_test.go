package httpserver

import (
	"bytes"
	"log/slog"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
)

// A panic in a handler becomes the contract's neutral internal error; the
// cause is logged with the request id and never reaches the client.
func TestPanicBecomesNeutralInternalError(t *testing.T) {
	var logs bytes.Buffer
	s := &server{log: slog.New(slog.NewJSONHandler(&logs, nil)), mux: http.NewServeMux(), maxBody: 1 << 20}
	h := s.begin(http.HandlerFunc(func(http.ResponseWriter, *http.Request) {
		panic("secret detail from deep inside")
	}))
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, httptest.NewRequest("GET", "/anything", nil))
	if rec.Code != http.StatusInternalServerError {
		t.Fatalf("status: got %d, want 500", rec.Code)
	}
	body := rec.Body.String()
	if !strings.Contains(body, `"code":"internal"`) || strings.Contains(body, "secret detail") {
		t.Fatalf("body: got %s, want a neutral internal error", body)
	}
	id := rec.Header().Get("X-Request-Id")
	if id == "" || !strings.Contains(logs.String(), id) || !strings.Contains(logs.String(), "secret detail") {
		t.Fatalf("log: got %s, want the panic logged with request id %q", logs.String(), id)
	}
}
