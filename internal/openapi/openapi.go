// Package openapi holds kluis's OpenAPI 3.1 description of its HTTP API
// (openapi.json beside this file): every API route of the server's route
// table and of the contract's projects section, with request bodies,
// answers, the one error shape with every error code, the security schemes
// and tags per area. Page routes answer HTML and are left out.
//
// The document is written and reviewed by hand, not generated from the
// handlers, so that it is a contract the handlers are checked against:
// internal/httpserver's tests fail when a route of the table is missing
// from it (or the reverse), and when a real answer of a handler does not
// match its schema. The Go client in package client is generated from it.
package openapi

import _ "embed"

//go:embed openapi.json
var document []byte

// JSON returns the document's bytes, a copy the caller may keep or change.
func JSON() []byte { return append([]byte(nil), document...) }
