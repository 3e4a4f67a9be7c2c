package personal

import (
	"bytes"
	"context"
	"encoding/json"
	"time"

	"github.com/kluis/kluis/internal/keys"
	"github.com/kluis/kluis/internal/sqlstore"
)

type eventRow struct {
	Seq     int64           `json:"seq"`
	At      time.Time       `json:"at"`
	Action  string          `json:"action"`
	Actor   string          `json:"actor"`
	Target  string          `json:"target"`
	Outcome string          `json:"outcome"`
	Details json.RawMessage `json:"details"`
	Client  *string         `json:"client"`
	Role    []string        `json:"role"`
}

// writeAudit writes audit_events.json: the events of the organisation's
// chain where the person is the actor or the subject (target), oldest
// first, one at a time. A sealed value is opened when it is sealed under
// the person's own key; any other reads Withheld, so a manager's address or
// the operator's reason never reaches the export.
func (x *exporter) writeAudit(ctx context.Context) error {
	w, err := x.zw.Create("audit_events.json")
	if err != nil {
		return err
	}
	if _, err := w.Write([]byte("{\n  \"events\": [")); err != nil {
		return err
	}
	chain := sqlstore.OrgChain(x.org.ID)
	ref := "user:" + string(x.u.ID)
	rows, err := x.s.core.DB().Query(ctx, `SELECT seq, id, at, actor, action, target, outcome, details, client FROM audit_events
		WHERE chain = ? AND (actor = ? OR target = ?) ORDER BY seq`, chain, ref, ref)
	if err != nil {
		return err
	}
	defer rows.Close()
	first := true
	for rows.Next() {
		var e eventRow
		var id string
		var at int64
		var details, client []byte
		if err := rows.Scan(&e.Seq, &id, &at, &e.Actor, &e.Action, &e.Target, &e.Outcome, &details, &client); err != nil {
			return err
		}
		e.At = sqlstore.FromMicros(at).UTC()
		if e.Actor == ref {
			e.Role = append(e.Role, "actor")
		}
		if e.Target == ref {
			e.Role = append(e.Role, "subject")
		}
		if len(client) > 0 {
			c, err := x.open(ctx, chain, id, sqlstore.ColClient, client)
			if err != nil {
				return err
			}
			e.Client = &c
		}
		if e.Details, err = x.openDetails(ctx, chain, id, details); err != nil {
			return err
		}
		b, err := json.Marshal(e)
		if err != nil {
			return err
		}
		sep := ",\n    "
		if first {
			sep, first = "\n    ", false
		}
		if _, err := w.Write(append([]byte(sep), b...)); err != nil {
			return err
		}
	}
	if err := rows.Err(); err != nil {
		return err
	}
	_, err = w.Write([]byte("\n  ]\n}\n"))
	return err
}

// theirs reports whether a ciphertext is sealed under the person's key.
func (x *exporter) theirs(c []byte) bool {
	kv, err := keys.ParseCiphertext(c)
	return err == nil && x.keyID != nil && kv.ID == *x.keyID
}

// open opens one sealed value of an audit event if it is the person's.
func (x *exporter) open(ctx context.Context, chain, id, column string, c []byte) (string, error) {
	if !x.theirs(c) {
		return Withheld, nil
	}
	return x.s.core.OpenAuditValue(ctx, chain, id, column, c)
}

// openDetails returns an event's details with the person's sealed values
// opened and everyone else's withheld; details without sealed values are
// returned as stored (ids, field names and counts, never a personal value
// in clear: DESIGN §3).
func (x *exporter) openDetails(ctx context.Context, chain, id string, details []byte) (json.RawMessage, error) {
	if len(details) == 0 {
		return json.RawMessage("null"), nil
	}
	if !bytes.Contains(details, []byte(`"sealed"`)) {
		return json.RawMessage(details), nil
	}
	var d map[string]json.RawMessage
	if err := json.Unmarshal(details, &d); err != nil {
		return json.RawMessage(details), nil
	}
	for name, v := range d {
		var sv struct {
			Sealed []byte `json:"sealed"`
		}
		if json.Unmarshal(v, &sv) != nil || sv.Sealed == nil {
			continue
		}
		shown, err := x.open(ctx, chain, id, sqlstore.ColDetails+name, sv.Sealed)
		if err != nil {
			return nil, err
		}
		d[name], _ = json.Marshal(shown)
	}
	return json.Marshal(d)
}
