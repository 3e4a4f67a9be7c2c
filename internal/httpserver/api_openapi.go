package httpserver

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"net/http"
	"time"

	"github.com/kluis/kluis/internal/openapi"
)

// handleOpenAPI serves the OpenAPI description of the API (package
// openapi). Unlike every other answer it may be cached: it is the same for
// everyone and changes only with a new release, which its ETag (a hash of
// the document) tells apart; If-None-Match answers 304.
func handleOpenAPI() http.Handler {
	doc := openapi.JSON()
	sum := sha256.Sum256(doc)
	etag := `"` + hex.EncodeToString(sum[:16]) + `"`
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("Content-Type", "application/json")
		h.Set("Cache-Control", "public, max-age=3600")
		h.Set("ETag", etag)
		http.ServeContent(w, r, "", time.Time{}, bytes.NewReader(doc))
	})
}
