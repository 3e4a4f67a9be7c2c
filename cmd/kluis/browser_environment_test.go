package main

import (
	"context"
	"io"
	"strings"
	"testing"

	"github.com/chromedp/cdproto/network"
	"github.com/kluis/kluis"
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

// TestBrowserOperatorReadsStatisticsAndACrashReport (R37, R38): on a test
// instance the operator admin finds Statistics and Crash reports in the
// navigation; the statistics show the features used at least five times
// (and the banner stays on the operator's pages); a crash report, stored
// while the server runs, opens with its scrubbed message. The pages pass
// checkPage.
func TestBrowserOperatorReadsStatisticsAndACrashReport(t *testing.T) {
	t.Parallel()
	s := &browserSite{t: t, env: testEnv("KLUIS_ENVIRONMENT", "acceptance"), dir: t.TempDir(), seen: map[string]bool{}}
	port := freePort(t)
	s.base = "http://localhost:" + port
	s.srv = startServe(t, s.env, "--addr", "127.0.0.1:"+port, "--data", s.dir, "--public-url", s.base)
	mustCLI(t, s.env, browserOpPassword+"\n", "operator", "create", "--email", browserOpEmail, "--name", "Olga Operator", "--password-stdin", "--data", s.dir)

	ctx := context.Background()
	c, err := newConfig(func(k string) string { return s.env[k] })
	if err != nil {
		t.Fatal(err)
	}
	c.DataDir = s.dir
	a, err := open(ctx, c, false, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	id, err := a.areas.Crashes.RecordCrash(ctx, kluis.CrashInput{Route: "GET /o/{org}/account", RequestID: "00112233445566778899aabb", Panic: "no profile for mia@example.org", Stack: []byte("goroutine 9 [running]:\nmain.main()")})
	// Counters as the server's flush leaves them: five uses of the sign-in
	// page today, two of another page (left out).
	day := a.areas.Core.Now().UTC().Format("2006-01-02")
	if err == nil {
		err = a.areas.Usage.RecordUsage(ctx, []kluis.UsageCount{{Day: day, Feature: "GET /o/{org}/login", Count: 5}, {Day: day, Feature: "GET /o/{org}/forgot", Count: 2}})
	}
	a.close()
	if err != nil {
		t.Fatal(err)
	}

	b := startBrowser(t)
	op := b.newPerson("the operator", s.base, "en")
	signInOperator(t, op)
	op.open("/operator")
	op.clickLink("nav.nav", "Statistics")
	if got := op.path(); got != "/operator/statistics" {
		t.Fatalf("the navigation's Statistics leads to %s", got)
	}
	table := op.text("table#usage")
	if !strings.Contains(table, "GET /o/{org}/login") || strings.Contains(table, "GET /o/{org}/forgot") {
		t.Errorf("the statistics read %q, want the sign-in page and not the page used twice", table)
	}
	op.mustExist("#environment-banner")
	op.checkPage("operator-statistics")

	op.clickLink("nav.nav", "Crash reports")
	op.clickLink("table#crashes", "")
	if got := op.path(); got != "/operator/crash-reports/"+id {
		t.Fatalf("the crash report's link leads to %s", got)
	}
	if msg := op.text("#crash-message"); msg != "no profile for [email]" {
		t.Errorf("the crash report's message reads %q", msg)
	}
	op.checkPage("operator-crash-report")
}
