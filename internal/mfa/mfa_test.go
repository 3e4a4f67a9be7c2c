package mfa_test

import (
	"strings"
	"testing"
	"time"

	"github.com/kluis/kluis/internal/kluistest"
	"github.com/kluis/kluis/internal/mfa"
)

// TestTOTPAgreesWithOathtool (R17): codes from an independent implementation
// are accepted one step either way, each once; older and newer ones are not.
func TestTOTPAgreesWithOathtool(t *testing.T) {
	secret, url, err := mfa.NewTOTP("kluis (Acme)", "jan@example.org")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(url, "otpauth://totp/") || !strings.Contains(url, "secret="+secret) || !strings.Contains(url, "digits=6") || !strings.Contains(url, "period=30") {
		t.Errorf("otpauth URL %s", url)
	}
	now := time.Date(2026, 11, 23, 12, 0, 10, 0, time.UTC)
	code := kluistest.OATHToolCode(t, secret, now)
	step, ok := mfa.VerifyTOTP(secret, code, now, 0)
	if !ok || step != mfa.Step(now) {
		t.Fatalf("oathtool's code %s: step %d ok %v, want the current step", code, step, ok)
	}
	if _, ok := mfa.VerifyTOTP(secret, code, now, step); ok {
		t.Error("the same code twice was accepted")
	}
	for _, tc := range []struct {
		name string
		at   time.Duration
		ok   bool
	}{
		{"previous step", -30 * time.Second, true},
		{"next step", 30 * time.Second, true},
		{"two steps ago", -60 * time.Second, false},
		{"two steps ahead", 60 * time.Second, false},
		{"an hour ago", -time.Hour, false},
	} {
		c := kluistest.OATHToolCode(t, secret, now.Add(tc.at))
		if _, ok := mfa.VerifyTOTP(secret, c, now, 0); ok != tc.ok {
			t.Errorf("%s: accepted %v, want %v", tc.name, ok, tc.ok)
		}
	}
	for _, bad := range []string{"", "12345", "1234567", "abcdef"} {
		if _, ok := mfa.VerifyTOTP(secret, bad, now, 0); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	// The longest names still make a QR code; a failure never shows the URL.
	long, longURL, err := mfa.NewTOTP("kluis "+strings.Repeat("a", 63), strings.Repeat("b", 64)+"@"+strings.Repeat("c", 180)+".example")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := mfa.QRCode(longURL); err != nil {
		t.Errorf("QR code of the longest label: %v", err)
	}
	if _, err := mfa.QRCode(longURL + strings.Repeat("x", 5000)); err == nil || strings.Contains(err.Error(), long) {
		t.Errorf("an oversized URL: %v, want an error without the secret", err)
	}
	png, err := mfa.QRCode(url)
	if err != nil || len(png) < 100 || string(png[1:4]) != "PNG" {
		t.Errorf("QR code: %d bytes, %v", len(png), err)
	}
}

func TestRecoveryCodes(t *testing.T) {
	codes := mfa.NewRecoveryCodes(mfa.RecoveryCodes)
	seen := map[string]bool{}
	for _, c := range codes {
		if len(c) != 11 || c[5] != '-' || strings.ContainsAny(c, "lo01") || seen[c] {
			t.Errorf("recovery code %q", c)
		}
		seen[c] = true
	}
	c := codes[0]
	if mfa.NormalizeRecoveryCode(c) != mfa.NormalizeRecoveryCode(" "+strings.ToUpper(strings.ReplaceAll(c, "-", " "))+" ") {
		t.Error("a code typed in capitals with a space does not match")
	}
}
