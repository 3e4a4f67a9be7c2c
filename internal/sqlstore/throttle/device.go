package throttle

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"encoding/base64"
	"encoding/hex"
	"strconv"
	"strings"

	"github.com/kluis/kluis"
)

// Device cookies (DESIGN §6, after OWASP's "device cookies"): a browser that
// completed a sign-in to an account holds an entry for it, a MAC over the
// scope, the account's identifier, a nonce and an expiry. A sign-in that
// carries a valid entry for the identifier it tries is exempt from that
// identifier's lock and from the address block; the entry's own failures
// are counted under its nonce, so a stolen cookie buys only a few guesses.

const (
	deviceCookieMax = 8 // entries kept in one browser, newest first
	deviceMACLen    = 16
)

type deviceEntry struct {
	scope, nonce string
	expires      int64
	raw          string
}

func parseDeviceEntries(cookie string) []deviceEntry {
	var out []deviceEntry
	for _, raw := range strings.Split(cookie, "~") {
		parts := strings.Split(raw, ".")
		if len(parts) != 4 || len(out) >= deviceCookieMax {
			continue
		}
		exp, err := strconv.ParseInt(parts[2], 10, 64)
		if err != nil {
			continue
		}
		out = append(out, deviceEntry{scope: parts[0], nonce: parts[1], expires: exp, raw: raw})
	}
	return out
}

func (s *Service) deviceMAC(ctx context.Context, e deviceEntry, ident []byte) (string, error) {
	m, err := s.mac(ctx, "device", e.scope, e.nonce, strconv.FormatInt(e.expires, 10), hex.EncodeToString(ident))
	if err != nil {
		return "", err
	}
	return base64.RawURLEncoding.EncodeToString(m[:deviceMACLen]), nil
}

// trustedDevice returns the identifier the failures of the request's device
// entry for (scope, ident) are counted under, or nil when the request holds
// no valid entry for it, or the entry is itself locked.
func (s *Service) trustedDevice(ctx context.Context, from kluis.Origin, scope string, ident []byte) ([]byte, error) {
	now := s.core.Now().Unix()
	for _, e := range parseDeviceEntries(from.DeviceCookie) {
		if e.scope != scope || e.expires <= now {
			continue
		}
		want, err := s.deviceMAC(ctx, e, ident)
		if err != nil {
			return nil, err
		}
		mac := e.raw[strings.LastIndexByte(e.raw, '.')+1:]
		if !hmac.Equal([]byte(mac), []byte(want)) {
			continue
		}
		dev, err := s.mac(ctx, "device-failures", e.nonce)
		if err != nil {
			return nil, err
		}
		until, err := s.identLockedUntil(ctx, scope, dev)
		if err != nil || !until.IsZero() {
			return nil, err
		}
		return dev, nil
	}
	return nil, nil
}

// newDeviceCookie returns the device cookie to give a browser that just
// signed in to (scope, ident): a new entry first, then its other entries
// that are still valid for other accounts.
func (s *Service) newDeviceCookie(ctx context.Context, from kluis.Origin, scope string, ident []byte) (string, error) {
	nonce := make([]byte, 12)
	rand.Read(nonce)
	e := deviceEntry{scope: scope, nonce: base64.RawURLEncoding.EncodeToString(nonce), expires: s.core.Now().Add(s.c.DeviceLifetime).Unix()}
	mac, err := s.deviceMAC(ctx, e, ident)
	if err != nil {
		return "", err
	}
	entries := []string{e.scope + "." + e.nonce + "." + strconv.FormatInt(e.expires, 10) + "." + mac}
	now := s.core.Now().Unix()
	for _, old := range parseDeviceEntries(from.DeviceCookie) {
		if len(entries) >= deviceCookieMax {
			break
		}
		if old.expires <= now {
			continue
		}
		// An older entry for the same account is replaced by the new one.
		if old.scope == scope {
			if want, err := s.deviceMAC(ctx, old, ident); err != nil {
				return "", err
			} else if strings.HasSuffix(old.raw, "."+want) {
				continue
			}
		}
		entries = append(entries, old.raw)
	}
	return strings.Join(entries, "~"), nil
}
