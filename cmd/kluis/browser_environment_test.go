package main

import (
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
)

// headerValue reads a header of a page's answer, whatever the case of its
// name.
func headerValue(resp *network.Response, name string) string {
	for k, v := range resp.Headers {
		if strings.EqualFold(k, name) {
			s, _ := v.(string)
			return s
		}
	}
	return ""
}

// TestBrowserEnvironmentBannerShowsOnATestInstanceOnly (R48): a `kluis
// serve` started as test (KLUIS_ENVIRONMENT) shows its banner on the
// sign-in page in Dutch and English and on a signed-in page, and its
// answers carry Kluis-Environment; a production instance (the default)
// shows no banner and sends no such header. The pages pass checkPage
// (axe-core, phone width).
func TestBrowserEnvironmentBannerShowsOnATestInstanceOnly(t *testing.T) {
	b := startBrowser(t)
	const slug = "envlabel"
	for _, tc := range []struct {
		name, environment string
		banner            bool
	}{{"test", "test", true}, {"production", "", false}} {
		env := testEnv()
		if tc.environment != "" {
			env["KLUIS_ENVIRONMENT"] = tc.environment
		}
		s := &browserSite{t: t, env: env, dir: t.TempDir(), seen: map[string]bool{}}
		port := freePort(t)
		s.base = "http://localhost:" + port
		s.srv = startServe(t, s.env, "--addr", "127.0.0.1:"+port, "--data", s.dir, "--public-url", s.base)
		s.createOrgWithManager(slug)

		nl := b.newPerson("Noor ("+tc.name+")", s.base, "nl")
		resp := nl.open("/o/" + slug + "/login")
		hasBanner := evaluate[bool](nl, `document.getElementById("environment-banner") !== null`)
		if hasBanner != tc.banner {
			t.Fatalf("%s instance: banner on the sign-in page %v, want %v", tc.name, hasBanner, tc.banner)
		}
		if got := headerValue(resp, "Kluis-Environment"); got != tc.environment {
			t.Errorf("%s instance: Kluis-Environment %q, want %q", tc.name, got, tc.environment)
		}
		if !tc.banner {
			nl.checkPage("environment-production-login-nl")
			continue
		}
		if text := nl.text("#environment-banner"); !strings.Contains(strings.ToLower(text), "test") || !strings.Contains(text, "Dit is niet de productie") {
			t.Errorf("the Dutch banner says %q, want the environment's name and Dutch", text)
		}
		nl.checkPage("environment-test-login-nl")

		en := b.newPerson("Marie ("+tc.name+")", s.base, "en")
		signIn(en, slug, browserMgrEmail, browserMgrPass)
		if text := en.text("#environment-banner"); !strings.Contains(text, "This is not production") {
			t.Errorf("the English banner on My account says %q", text)
		}
		en.checkPage("environment-test-account")
	}
}
