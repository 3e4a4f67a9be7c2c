package kluistest

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"sort"
	"time"
)

// CheckJSONSchema validates doc against schema and returns every problem,
// each naming its place in doc. It knows the part of JSON Schema (draft
// 2020-12) that kluis's documented formats use: type (one or a list),
// properties, required, additionalProperties false, items, enum and format
// date-time (RFC 3339). Any other keyword in the schema is a problem too,
// so a schema cannot silently ask for more than is checked.
func CheckJSONSchema(schema, doc []byte) []string {
	var s, d any
	if err := json.Unmarshal(schema, &s); err != nil {
		return []string{"schema: " + err.Error()}
	}
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	if err := dec.Decode(&d); err != nil {
		return []string{"document: " + err.Error()}
	}
	var out []string
	checkSchema(s, d, "$", &out)
	return out
}

var knownKeywords = []string{"$schema", "title", "description", "type", "properties", "required", "additionalProperties", "items", "enum", "format"}

func typeOf(v any) string {
	switch x := v.(type) {
	case nil:
		return "null"
	case bool:
		return "boolean"
	case string:
		return "string"
	case json.Number:
		if _, err := x.Int64(); err == nil {
			return "integer"
		}
		return "number"
	case []any:
		return "array"
	case map[string]any:
		return "object"
	}
	return fmt.Sprintf("%T", v)
}

func checkSchema(schema, v any, at string, out *[]string) {
	s, ok := schema.(map[string]any)
	if !ok {
		*out = append(*out, at+": the schema is not an object")
		return
	}
	for k := range s {
		if !slices.Contains(knownKeywords, k) {
			*out = append(*out, at+": the checker does not know the keyword "+k)
		}
	}
	got := typeOf(v)
	if t, ok := s["type"]; ok {
		var types []string
		switch x := t.(type) {
		case string:
			types = []string{x}
		case []any:
			for _, y := range x {
				types = append(types, fmt.Sprint(y))
			}
		}
		if !slices.Contains(types, got) && !(got == "integer" && slices.Contains(types, "number")) {
			*out = append(*out, fmt.Sprintf("%s: is %s, want %v", at, got, types))
			return
		}
	}
	if e, ok := s["enum"].([]any); ok {
		found := false
		for _, want := range e {
			if fmt.Sprint(want) == fmt.Sprint(v) && typeOf(want) == got || (want == nil && v == nil) {
				found = true
			}
		}
		if !found {
			*out = append(*out, fmt.Sprintf("%s: %v is not one of %v", at, v, e))
		}
	}
	if f, ok := s["format"].(string); ok && got == "string" {
		switch f {
		case "date-time":
			if _, err := time.Parse(time.RFC3339Nano, v.(string)); err != nil {
				*out = append(*out, fmt.Sprintf("%s: %q is not an RFC 3339 time", at, v))
			}
		default:
			*out = append(*out, at+": the checker does not know the format "+f)
		}
	}
	switch x := v.(type) {
	case map[string]any:
		props, _ := s["properties"].(map[string]any)
		if req, ok := s["required"].([]any); ok {
			for _, r := range req {
				if _, ok := x[fmt.Sprint(r)]; !ok {
					*out = append(*out, fmt.Sprintf("%s: %v is missing", at, r))
				}
			}
		}
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			ps, ok := props[k]
			if !ok {
				if ap, ok := s["additionalProperties"].(bool); ok && !ap {
					*out = append(*out, fmt.Sprintf("%s: %s is not allowed", at, k))
				}
				continue
			}
			checkSchema(ps, x[k], at+"."+k, out)
		}
	case []any:
		if items, ok := s["items"]; ok {
			for i, y := range x {
				checkSchema(items, y, fmt.Sprintf("%s[%d]", at, i), out)
			}
		}
	}
}
