package main

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/input"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"
)

// The browser tests drive Debian's Chromium through the DevTools protocol
// (chromedp) against a real `kluis serve`, and click through the pages as a
// person would. Every page they reach passes checkPage: axe-core finds no
// serious or critical accessibility problem, nothing overflows a phone's
// width, and a screenshot of it lands in the test output folder.
//
// The environment:
//
//	KLUIS_TEST_CHROMIUM       the browser, which must be there (else /usr/bin/chromium)
//	KLUIS_TEST_AXE            axe.min.js, which must be there (else .ci/node_modules/axe-core/axe.min.js)
//	KLUIS_TEST_OUTPUT         the output folder (else test-output in the repository)
//	KLUIS_UPDATE_SCREENSHOTS  1: also copy the README's screenshots to docs/screenshots
//	CI                        set: missing default tools fail the test instead of skipping it

// actionTimeout bounds one step in the browser: a page load, a click, a
// query, an axe-core run. A page that never comes fails the test instead of
// hanging it; a slow machine is not a failure (see patience).
const actionTimeout = patience

// phoneWidth is the viewport width, in CSS pixels, of the phone check.
const phoneWidth, phoneHeight = 390, 844

// repoRoot returns the repository's root folder: the tests run in cmd/kluis.
func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("the repository root %s has no go.mod: %v", root, err)
	}
	return root
}

// testOutputDir returns KLUIS_TEST_OUTPUT, else <repo>/test-output.
func testOutputDir(t testing.TB) string {
	t.Helper()
	if dir := os.Getenv("KLUIS_TEST_OUTPUT"); dir != "" {
		return dir
	}
	return filepath.Join(repoRoot(t), "test-output")
}

// browserTools returns the browser to run and the source of axe-core. A
// tool named in the environment (as .ci/run does) must be there; without
// the variables, the default places are tried, and a machine without the
// tools skips the test with the reason, unless CI is set: in CI the
// acceptance tests cannot silently not run.
func browserTools(t testing.TB) (chromium string, axeSource []byte) {
	t.Helper()
	find := func(envVar, fallback, what string) string {
		t.Helper()
		path := os.Getenv(envVar)
		if path != "" {
			if _, err := os.Stat(path); err != nil {
				t.Fatalf("%s=%s: %v", envVar, path, err)
			}
			return path
		}
		if _, err := os.Stat(fallback); err != nil {
			msg := fmt.Sprintf("no %s: %s is unset and %s is missing (.ci/run installs it)", what, envVar, fallback)
			if os.Getenv("CI") != "" {
				t.Fatalf("%s; CI is set, so the browser tests must run", msg)
			}
			t.Skipf("skipping the browser test: %s", msg)
		}
		return fallback
	}
	chromium = find("KLUIS_TEST_CHROMIUM", "/usr/bin/chromium", "Chromium")
	axePath := find("KLUIS_TEST_AXE", filepath.Join(repoRoot(t), ".ci", "node_modules", "axe-core", "axe.min.js"), "axe-core")
	axeSource, err := os.ReadFile(axePath)
	if err != nil {
		t.Fatal(err)
	}
	return chromium, axeSource
}

// browser is one headless Chromium, started for one test.
type browser struct {
	t         *testing.T
	ctx       context.Context // the browser's first tab; each person has a browser context of their own
	axeSource string
	outDir    string
}

// startBrowser starts Chromium with a fresh profile; it stops when the test
// ends.
func startBrowser(t *testing.T) *browser {
	t.Helper()
	chromium, axeSource := browserTools(t)
	b := &browser{t: t, axeSource: string(axeSource), outDir: testOutputDir(t)}
	logDir := filepath.Join(b.outDir, "browser-logs")
	if err := os.MkdirAll(logDir, 0o755); err != nil {
		t.Fatal(err)
	}
	logFile, err := os.Create(filepath.Join(logDir, strings.ReplaceAll(t.Name(), "/", "_")+".log"))
	if err != nil {
		t.Fatal(err)
	}
	var logMu sync.Mutex
	logf := func(format string, args ...any) {
		logMu.Lock()
		defer logMu.Unlock()
		fmt.Fprintf(logFile, format+"\n", args...)
	}
	allocCtx, cancelAlloc := chromedp.NewExecAllocator(context.Background(),
		chromedp.ExecPath(chromium),
		chromedp.UserDataDir(t.TempDir()),
		chromedp.Flag("headless", true),
		chromedp.Flag("no-sandbox", true),
		chromedp.Flag("disable-gpu", true),
		chromedp.Flag("disable-background-networking", true),
		chromedp.Flag("disable-component-update", true),
		chromedp.Flag("disable-sync", true),
		chromedp.Flag("no-first-run", true),
		chromedp.Flag("disable-quic", true),
		chromedp.WindowSize(1280, 800),
		chromedp.CombinedOutput(logFile),
	)
	ctx, cancel := chromedp.NewContext(allocCtx, chromedp.WithLogf(logf), chromedp.WithErrorf(logf))
	t.Cleanup(func() {
		cancel()
		cancelAlloc()
		logFile.Close()
	})
	start := time.Now()
	if err := chromedp.Do(ctx); err != nil {
		t.Fatalf("start %s: %v (its output: %s)", chromium, err, logFile.Name())
	}
	t.Logf("Chromium started in %v", time.Since(start).Round(time.Millisecond))
	b.ctx = ctx
	return b
}

// sentRequest is one request the browser sent, as the network saw it.
type sentRequest struct {
	id       network.RequestID
	method   string
	url      string            // the request line's target: never the fragment
	headers  map[string]string // as sent on the wire where Chromium reports them
	postData string
}

// String returns the request line.
func (r sentRequest) String() string { return r.method + " " + r.url }

// person is someone at the browser: a browser context of their own (their
// own cookies and storage) with one tab, in a language of their choice. It
// records every request the tab sends.
type person struct {
	t    *testing.T
	b    *browser
	name string
	base string // http://localhost:PORT, for paths
	ctx  context.Context

	mu   sync.Mutex
	sent []sentRequest
}

// newPerson opens an isolated browser context whose requests carry
// Accept-Language acceptLanguage; paths it opens are relative to base.
func (b *browser) newPerson(name, base, acceptLanguage string) *person {
	t := b.t
	t.Helper()
	p := &person{t: t, b: b, name: name, base: base}
	ctx, cancel := chromedp.NewContext(b.ctx, chromedp.WithNewBrowserContext(), chromedp.WithListener(p.record))
	t.Cleanup(cancel)
	if err := chromedp.Do(ctx); err != nil { // opens the tab, with no timeout
		t.Fatalf("%s: open a tab in a new browser context: %v", name, err)
	}
	p.ctx = ctx
	p.call("set Accept-Language", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, network.SetExtraHTTPHeaders, network.SetExtraHTTPHeadersParams{
			Headers: network.Headers{"Accept-Language": acceptLanguage},
		})
		return err
	})
	return p
}

// record keeps what the network reports about the tab's requests. It runs
// in the tab's event loop, so it only appends.
func (p *person) record(ev any) {
	p.mu.Lock()
	defer p.mu.Unlock()
	switch ev := ev.(type) {
	case *network.EventRequestWillBeSent:
		r := sentRequest{id: ev.RequestID, method: ev.Request.Method, url: ev.Request.URL, headers: map[string]string{}}
		for k, v := range ev.Request.Headers {
			r.headers[k] = fmt.Sprint(v)
		}
		for _, e := range ev.Request.PostDataEntries {
			r.postData += string(e.Bytes)
		}
		p.sent = append(p.sent, r)
	case *network.EventRequestWillBeSentExtraInfo:
		// The headers as sent on the wire (Cookie, Referer, …) come
		// separately, before or after the request; kept as an entry of
		// their own, so none is missed.
		r := sentRequest{id: ev.RequestID, method: "(headers of)", headers: map[string]string{}}
		for i := len(p.sent) - 1; i >= 0; i-- {
			if p.sent[i].id == ev.RequestID && p.sent[i].url != "" {
				r.url = p.sent[i].url
				break
			}
		}
		for k, v := range ev.Headers {
			r.headers[k] = fmt.Sprint(v)
		}
		p.sent = append(p.sent, r)
	}
}

// requests returns what the tab has sent so far.
func (p *person) requests() []sentRequest {
	p.mu.Lock()
	defer p.mu.Unlock()
	return append([]sentRequest(nil), p.sent...)
}

// call runs f with a bounded context and fails the test on an error.
func (p *person) call(what string, f func(ctx context.Context) error) {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := f(ctx); err != nil {
		p.t.Fatalf("%s: %s (on %s): %v", p.name, what, p.location(), err)
	}
}

// do runs actions in the tab, each bounded, and fails the test on an error.
func (p *person) do(what string, actions ...chromedp.Action[chromedp.Void]) {
	p.t.Helper()
	p.call(what, func(ctx context.Context) error { return chromedp.Do(ctx, actions...) })
}

// location returns the tab's address, for messages.
func (p *person) location() string {
	ctx, cancel := context.WithTimeout(p.ctx, 5*time.Second)
	defer cancel()
	loc, err := chromedp.Run(ctx, chromedp.Location())
	if err != nil {
		return "an unknown page"
	}
	return loc
}

// evaluate runs a script in the page and decodes its value into T.
func evaluate[T any](p *person, script string, opts ...chromedp.EvaluateOption) T {
	p.t.Helper()
	var v T
	p.call("evaluate "+firstLine(script), func(ctx context.Context) error {
		var err error
		v, err = chromedp.Run(ctx, chromedp.Evaluate[T](script, opts...))
		return err
	})
	return v
}

func firstLine(s string) string {
	s, _, _ = strings.Cut(strings.TrimSpace(s), "\n")
	if len(s) > 80 {
		s = s[:80] + "…"
	}
	return s
}

// js returns v as a JavaScript literal.
func js(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

// url returns the address of pathOrURL: a path is taken relative to base.
func (p *person) url(pathOrURL string) string {
	if strings.HasPrefix(pathOrURL, "/") {
		return p.base + pathOrURL
	}
	return pathOrURL
}

// open goes to a page, as typing its address would, and returns the answer
// to the document's request.
func (p *person) open(pathOrURL string) *network.Response {
	p.t.Helper()
	var resp *network.Response
	p.call("open "+pathOrURL, func(ctx context.Context) error {
		var err error
		resp, err = chromedp.Run(ctx, chromedp.NavigateResponse(p.url(pathOrURL)))
		return err
	})
	if resp == nil {
		p.t.Fatalf("%s: open %s: no response", p.name, pathOrURL)
	}
	return resp
}

// mustExist fails the test at once (instead of waiting for it) when the page
// has no element matching selector; pages are rendered on the server, so
// what is not there after the load will not come.
func (p *person) mustExist(selector string) {
	p.t.Helper()
	if !evaluate[bool](p, `document.querySelector(`+js(selector)+`) !== null`) {
		p.t.Fatalf("%s: the page %s has no %s", p.name, p.location(), selector)
	}
}

// fill types value into the field selector, replacing what it held, as a
// person would: focus, select all, type. A <select> gets the option whose
// value is value; a checkbox is ticked for "on"/"true" and cleared else.
func (p *person) fill(selector, value string) {
	p.t.Helper()
	p.mustExist(selector)
	kind := evaluate[string](p, `(e => e.tagName === "SELECT" ? "select" : (e.type || "").toLowerCase())(document.querySelector(`+js(selector)+`))`)
	switch kind {
	case "select":
		ok := evaluate[bool](p, `(e => { if (![...e.options].some(o => o.value === `+js(value)+`)) return false;
			e.focus(); e.value = `+js(value)+`; e.dispatchEvent(new Event("input", {bubbles: true}));
			e.dispatchEvent(new Event("change", {bubbles: true})); return true })(document.querySelector(`+js(selector)+`))`)
		if !ok {
			p.t.Fatalf("%s: %s on %s has no option %q", p.name, selector, p.location(), value)
		}
	case "checkbox", "radio":
		want := value == "on" || value == "true"
		if evaluate[bool](p, `document.querySelector(`+js(selector)+`).checked`) != want {
			p.do("click "+selector, chromedp.Click(chromedp.CSS(selector)))
		}
	default:
		p.do("type into "+selector,
			chromedp.Focus(chromedp.CSS(selector)),
			chromedp.Evaluate[chromedp.Void](`document.activeElement.select && document.activeElement.select()`),
			chromedp.Func(func(ctx context.Context, t *chromedp.Target) error {
				if value == "" {
					_, err := cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
						Type: input.DispatchKeyEventTypeKeyDown, Key: "Delete", Code: "Delete", WindowsVirtualKeyCode: 46,
					})
					if err == nil {
						_, err = cdp.Call(ctx, t, input.DispatchKeyEvent, input.DispatchKeyEventParams{
							Type: input.DispatchKeyEventTypeKeyUp, Key: "Delete", Code: "Delete", WindowsVirtualKeyCode: 46,
						})
					}
					return err
				}
				_, err := cdp.Call(ctx, t, input.InsertText, input.InsertTextParams{Text: value})
				return err
			}),
		)
		if got := evaluate[string](p, `document.querySelector(`+js(selector)+`).value`); got != value {
			p.t.Fatalf("%s: %s on %s holds %q after typing, want %q", p.name, selector, p.location(), got, value)
		}
	}
}

// submit sends the form formID by clicking its submit button (or, for a
// form without one, as pressing Enter would) and returns the answer to the
// document's request: after post/redirect/get, the page it led to.
func (p *person) submit(formID string) *network.Response {
	p.t.Helper()
	form := "form#" + formID
	p.mustExist(form)
	button := form + ` button[type=submit], ` + form + ` input[type=submit], ` + form + ` button:not([type])`
	hasButton := evaluate[bool](p, `document.querySelector(`+js(button)+`) !== null`)
	var resp *network.Response
	p.call("submit "+form, func(ctx context.Context) error {
		var err error
		if hasButton {
			resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(button)))
		} else {
			resp, err = chromedp.RunResponse(ctx, chromedp.Evaluate[chromedp.Void](`document.querySelector(`+js(form)+`).requestSubmit()`))
		}
		return err
	})
	if resp == nil {
		p.t.Fatalf("%s: submit %s: no response", p.name, form)
	}
	return resp
}

// click clicks the element selector and waits for the page it leads to.
func (p *person) click(selector string) *network.Response {
	p.t.Helper()
	p.mustExist(selector)
	var resp *network.Response
	p.call("click "+selector, func(ctx context.Context) error {
		var err error
		resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.CSS(selector)))
		return err
	})
	if resp == nil {
		p.t.Fatalf("%s: click %s: no response", p.name, selector)
	}
	return resp
}

// clickLink clicks the first link inside container whose text holds text,
// and waits for the page it leads to.
func (p *person) clickLink(container, text string) *network.Response {
	p.t.Helper()
	link := `[...document.querySelectorAll(` + js(container+" a") + `)].find(a => a.innerText.includes(` + js(text) + `))`
	if !evaluate[bool](p, `(`+link+`) !== undefined`) {
		p.t.Fatalf("%s: the page %s has no link with the text %q in %s", p.name, p.location(), text, container)
	}
	var resp *network.Response
	p.call("click the link "+text, func(ctx context.Context) error {
		var err error
		resp, err = chromedp.RunResponse(ctx, chromedp.Click(chromedp.JSPath(link)))
		return err
	})
	if resp == nil {
		p.t.Fatalf("%s: click the link %q: no response", p.name, text)
	}
	return resp
}

// fillByLabel chooses the option of the <select> selector whose text holds
// label.
func (p *person) fillByLabel(selector, label string) {
	p.t.Helper()
	p.mustExist(selector)
	value := evaluate[*string](p, `(o => o ? o.value : null)([...document.querySelector(`+js(selector)+`).options].find(o => o.text.includes(`+js(label)+`)))`)
	if value == nil {
		p.t.Fatalf("%s: %s on %s has no option with the text %q", p.name, selector, p.location(), label)
	}
	p.fill(selector, *value)
}

// history returns the addresses in the tab's history.
func (p *person) history() []string {
	p.t.Helper()
	var urls []string
	p.call("read the history", func(ctx context.Context) error {
		h, err := chromedp.Run(ctx, chromedp.NavigationEntries())
		for _, e := range h.Entries {
			urls = append(urls, e.URL)
		}
		return err
	})
	return urls
}

// setTimeZone makes the tab's clock run in the IANA time zone tz.
func (p *person) setTimeZone(tz string) {
	p.t.Helper()
	p.call("set the time zone", func(ctx context.Context) error {
		_, err := chromedp.Call(ctx, emulation.SetTimezoneOverride, emulation.SetTimezoneOverrideParams{TimezoneID: tz})
		return err
	})
}

// text returns the text of the element selector as a person sees it
// (innerText, whitespace collapsed).
func (p *person) text(selector string) string {
	p.t.Helper()
	p.mustExist(selector)
	s := evaluate[string](p, `document.querySelector(`+js(selector)+`).innerText`)
	return strings.Join(strings.Fields(s), " ")
}

// value returns the value of the form field selector.
func (p *person) value(selector string) string {
	p.t.Helper()
	p.mustExist(selector)
	return evaluate[string](p, `document.querySelector(`+js(selector)+`).value`)
}

// lang returns the page's <html lang>.
func (p *person) lang() string {
	p.t.Helper()
	return evaluate[string](p, `document.documentElement.lang`)
}

// path returns the tab's address without scheme and host.
func (p *person) path() string {
	p.t.Helper()
	return strings.TrimPrefix(evaluate[string](p, `location.href`), p.base)
}

// axeViolation is one axe-core rule a page breaks.
type axeViolation struct {
	ID      string `json:"id"`
	Impact  string `json:"impact"`
	Help    string `json:"help"`
	HelpURL string `json:"helpUrl"`
	Nodes   []struct {
		Target  []string `json:"target"`
		HTML    string   `json:"html"`
		Summary string   `json:"summary"`
	} `json:"nodes"`
}

func (v axeViolation) String() string {
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s): %s <%s>", v.ID, v.Impact, v.Help, v.HelpURL)
	for _, n := range v.Nodes {
		fmt.Fprintf(&b, "\n\t%s  %s", strings.Join(n.Target, " "), n.HTML)
		if n.Summary != "" {
			fmt.Fprintf(&b, "\n\t\t%s", strings.ReplaceAll(n.Summary, "\n", "\n\t\t"))
		}
	}
	return b.String()
}

// axeRun is the script that runs axe-core in the page (all rules but the
// experimental ones, its default) and returns the violations and how many
// rules passed.
const axeRun = `axe.run(document, {resultTypes: ["violations"]}).then(r => ({
	passed: r.passes.length,
	violations: r.violations.map(v => ({
		id: v.id, impact: v.impact || "", help: v.help, helpUrl: v.helpUrl,
		nodes: v.nodes.map(n => ({target: n.target.map(String), html: n.html, summary: n.failureSummary || ""}))
	}))
}))`

// axeResult is what axeRun returns.
type axeResult struct {
	Passed     int            `json:"passed"`
	Violations []axeViolation `json:"violations"`
}

// runAxe injects axe-core into the page and runs it. The injection goes
// through the DevTools protocol (Runtime.evaluate), which the page's
// Content-Security-Policy does not govern, so the CSP stays as strict as it
// is for people: nothing here turns it off.
func (p *person) runAxe() (axeResult, error) {
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if err := chromedp.Do(ctx, chromedp.Evaluate[chromedp.Void](p.b.axeSource)); err != nil {
		return axeResult{}, fmt.Errorf("inject axe-core: %w", err)
	}
	r, err := chromedp.Run(ctx, chromedp.Evaluate[axeResult](axeRun, chromedp.EvalAwaitPromise))
	if err != nil {
		return axeResult{}, fmt.Errorf("run axe-core: %w", err)
	}
	return r, nil
}

// overflow is what the phone check measured.
type overflow struct {
	Viewport    string   `json:"viewport"` // <meta name="viewport" content>
	InnerWidth  int      `json:"innerWidth"`
	ScrollWidth int      `json:"scrollWidth"`
	Wide        []string `json:"wide"` // elements reaching past the phone's right edge
}

// fits reports whether the page fits the phone's width. A phone lays out a
// page wider than its screen by widening the layout viewport (and zooming
// out), so both widths must stay at the phone's.
func (o overflow) fits() bool {
	return o.InnerWidth == phoneWidth && o.ScrollWidth <= o.InnerWidth
}

// measureOverflow lays the page out at phone width and reports how wide it
// is; a picture of it goes to png (when not nil). The desktop width comes
// back afterwards.
func (p *person) measureOverflow(png *[]byte) (overflow, error) {
	ctx, cancel := context.WithTimeout(p.ctx, actionTimeout)
	defer cancel()
	if _, err := chromedp.Call(ctx, emulation.SetDeviceMetricsOverride, emulation.SetDeviceMetricsOverrideParams{
		Width: phoneWidth, Height: phoneHeight, DeviceScaleFactor: 1, Mobile: true,
	}); err != nil {
		return overflow{}, err
	}
	defer chromedp.Call(ctx, emulation.ClearDeviceMetricsOverride, cdp.Empty{})
	// Two animation frames: the new width is laid out.
	o, err := chromedp.Run(ctx, chromedp.Evaluate[overflow](`new Promise(done => requestAnimationFrame(() => requestAnimationFrame(() => {
		// An element reaches past the edge with its box or with content
		// that overflows it (a long word); the deepest such elements are
		// the ones to fix.
		const w = `+fmt.Sprint(phoneWidth)+`, wide = new Map();
		for (const e of document.body.querySelectorAll("*")) {
			const r = e.getBoundingClientRect();
			// A form field scrolls its own text: only its box counts.
			const right = e.matches("input, textarea, select") ? r.right : Math.max(r.right, r.left + e.scrollWidth);
			if (r.width > 0 && right > w + 1) wide.set(e, right);
		}
		const deepest = [...wide.keys()].filter(e => ![...wide.keys()].some(o => o !== e && e.contains(o)));
		const names = deepest.slice(0, 8).map(e => e.tagName.toLowerCase() + (e.id ? "#" + e.id : "") +
			(typeof e.className === "string" && e.className ? "." + e.className.trim().split(/\s+/).join(".") : "") +
			" (right edge at " + Math.round(wide.get(e)) + " px)");
		const meta = document.querySelector('meta[name="viewport"]');
		done({viewport: meta ? meta.content : "", innerWidth: window.innerWidth, scrollWidth: document.scrollingElement.scrollWidth, wide: names});
	})))`, chromedp.EvalAwaitPromise))
	if err != nil {
		return overflow{}, err
	}
	if png != nil {
		if *png, err = chromedp.Run(ctx, chromedp.FullScreenshot(100)); err != nil {
			return overflow{}, err
		}
	}
	return o, nil
}

// screenshotNames holds the screenshot names taken in this run: two pages
// must not overwrite each other's picture.
var screenshotNames sync.Map

// screenshotName is a screenshot's name: lower case, digits and dashes.
var screenshotName = regexp.MustCompile(`^[a-z0-9]+(-[a-z0-9]+)*$`)

// checkPage checks the page the person is on, named name (the screenshots'
// file names): axe-core reports no serious or critical violation;
// at a phone's width nothing reaches past the right edge; and a full-page
// screenshot is saved, at desktop and at phone width, under
// $KLUIS_TEST_OUTPUT/screenshots.
func (p *person) checkPage(name string) {
	p.t.Helper()
	t := p.t
	if !screenshotName.MatchString(name) {
		t.Fatalf("screenshot name %q: want lower case, digits and dashes", name)
	}
	if other, dup := screenshotNames.LoadOrStore(name, t.Name()); dup {
		t.Fatalf("screenshot name %q is taken by %s", name, other)
	}
	where := p.location()

	start := time.Now()
	axe, err := p.runAxe()
	if err != nil {
		t.Fatalf("%s: page %s (%s): %v", p.name, name, where, err)
	}
	for _, v := range axe.Violations {
		switch v.Impact {
		case "serious", "critical":
			t.Errorf("%s: page %s (%s): axe-core: %s", p.name, name, where, v)
		default:
			t.Logf("%s: page %s (%s): axe-core, not failing: %s", p.name, name, where, v)
		}
	}

	var desktop []byte
	p.call("screenshot", func(ctx context.Context) error {
		var err error
		desktop, err = chromedp.Run(ctx, chromedp.FullScreenshot(100))
		return err
	})
	var phone []byte
	o, err := p.measureOverflow(&phone)
	if err != nil {
		t.Fatalf("%s: page %s (%s) at phone width: %v", p.name, name, where, err)
	}
	if !strings.Contains(o.Viewport, "width=device-width") {
		t.Errorf("%s: page %s (%s) has <meta name=\"viewport\" content=%q>, want width=device-width in it (else a phone shows it zoomed out)",
			p.name, name, where, o.Viewport)
	}
	if !o.fits() {
		t.Errorf("%s: page %s (%s) does not fit a %d px wide phone: innerWidth %d, scrollWidth %d, want both %d; reaching past the edge: %s",
			p.name, name, where, phoneWidth, o.InnerWidth, o.ScrollWidth, phoneWidth, strings.Join(o.Wide, ", "))
	}

	t.Logf("%s: page %s (%s): axe-core: %d rules passed, %d broken; checked in %v",
		p.name, name, where, axe.Passed, len(axe.Violations), time.Since(start).Round(time.Millisecond))

	dir := filepath.Join(p.b.outDir, "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	for file, png := range map[string][]byte{name + ".png": desktop, name + "-phone.png": phone} {
		if err := os.WriteFile(filepath.Join(dir, file), png, 0o644); err != nil {
			t.Fatal(err)
		}
		if readmeScreenshots[strings.TrimSuffix(file, ".png")] && os.Getenv("KLUIS_UPDATE_SCREENSHOTS") == "1" {
			docs := filepath.Join(repoRoot(t), "docs", "screenshots")
			if err := os.MkdirAll(docs, 0o755); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(docs, file), png, 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
}

// tokenSent returns the requests whose line or headers hold secret.
func tokenSent(reqs []sentRequest, secret string) []string {
	var out []string
	for _, r := range reqs {
		if strings.Contains(r.url, secret) {
			out = append(out, "request line "+r.String())
		}
		for k, v := range r.headers {
			if strings.Contains(v, secret) {
				out = append(out, fmt.Sprintf("header %s of %s", k, r))
			}
		}
	}
	return out
}

// strictCSP is the Content-Security-Policy of kluis's pages (docs/UI.md):
// no inline script, no eval.
const strictCSP = "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self'; object-src 'none'; base-uri 'none'; form-action 'self'; frame-ancestors 'none'"

// The harness's own checks must be able to fail: under the pages' strict
// CSP, axe-core still runs and finds a missing alt text, the phone check
// finds a page that scrolls sideways, the CSP itself stays in force (an
// inline script does not run), and the recorded requests hold the request
// line but never the fragment.
func TestBrowserHarnessChecksCanFailUnderStrictCSP(t *testing.T) {
	t.Parallel()
	mux := http.NewServeMux()
	page := func(body string) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			w.Header().Set("Content-Security-Policy", strictCSP)
			w.Header().Set("Content-Type", "text/html; charset=utf-8")
			fmt.Fprintf(w, `<!doctype html><html lang="en"><head><meta charset="utf-8">
<meta name="viewport" content="width=device-width, initial-scale=1"><title>harness</title>
<link rel="stylesheet" href="/harness.css"></head>
<body><main id="main"><h1>Harness</h1>%s</main></body></html>`, body)
		}
	}
	mux.HandleFunc("GET /bad", page(`<img src="/pixel.png" width="10" height="10">
<div id="wide">wide</div>
<script>window.__inlineRan = 1</script>
<a id="next" href="/good?x=1#not-sent">next</a>`))
	mux.HandleFunc("GET /good", page(`<p>Nothing wrong here.</p>`))
	mux.HandleFunc("GET /harness.css", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "text/css")
		fmt.Fprint(w, "#wide { width: 900px }")
	})
	mux.HandleFunc("GET /pixel.png", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "image/png")
		w.Write(onePixelPNG)
	})
	ts := httptest.NewServer(mux)
	defer ts.Close()
	base := "http://localhost:" + ts.URL[strings.LastIndex(ts.URL, ":")+1:]

	b := startBrowser(t)
	p := b.newPerson("tester", base, "en")
	p.open("/bad")

	if got := evaluate[string](p, `typeof window.__inlineRan`); got != "undefined" {
		t.Errorf("the inline script ran (window.__inlineRan is %s): the page's CSP is not in force", got)
	}
	axe, err := p.runAxe()
	if err != nil {
		t.Fatalf("axe-core under a strict CSP: %v", err)
	}
	var ids []string
	for _, v := range axe.Violations {
		ids = append(ids, v.ID+"/"+v.Impact)
	}
	if !slices.Contains(ids, "image-alt/critical") {
		t.Errorf("axe-core found %v on a page with an image without alt, want image-alt/critical among them", ids)
	}
	o, err := p.measureOverflow(nil)
	if err != nil {
		t.Fatal(err)
	}
	if o.fits() || len(o.Wide) == 0 || !strings.HasPrefix(o.Wide[0], "div#wide") {
		t.Errorf("the phone check of a page with a 900 px wide div measured %+v, want it not to fit, div#wide named first", o)
	}
	if got := evaluate[int](p, `window.innerWidth`); got == phoneWidth {
		t.Errorf("after the phone check the window is still %d px wide, want the desktop width back", got)
	}

	p.click("a#next")
	if got := p.path(); got != "/good?x=1#not-sent" {
		t.Errorf("after the click the address is %q, want /good?x=1#not-sent", got)
	}
	p.checkPage("harness-good")
	var lines []string
	for _, r := range p.requests() {
		if r.url != "" && !strings.HasPrefix(r.method, "(") {
			lines = append(lines, r.String())
		}
	}
	for _, want := range []string{"GET " + base + "/bad", "GET " + base + "/pixel.png", "GET " + base + "/good?x=1"} {
		if !slices.Contains(lines, want) {
			t.Errorf("the recorded requests are %q, want %q among them", lines, want)
		}
	}
	if got := tokenSent(p.requests(), "not-sent"); len(got) > 0 {
		t.Errorf("the fragment was sent: %q", got)
	}
	if got := tokenSent(p.requests(), "/bad"); len(got) == 0 {
		t.Errorf("tokenSent finds no request with /bad in its line, want GET /bad and the Referer of the pixel")
	}
	for _, f := range []string{"harness-good.png", "harness-good-phone.png"} {
		info, err := os.Stat(filepath.Join(b.outDir, "screenshots", f))
		if err != nil || info.Size() == 0 {
			t.Errorf("screenshot %s: %v, want a picture", f, err)
		}
	}
}

// onePixelPNG is a 1×1 transparent PNG.
var onePixelPNG, _ = base64.StdEncoding.DecodeString("iVBORw0KGgoAAAANSUhEUgAAAAEAAAABCAQAAAC1HAwCAAAAC0lEQVR42mNkYAAAAAYAAjCB0C8AAAAASUVORK5CYII=")
