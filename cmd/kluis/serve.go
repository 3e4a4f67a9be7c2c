package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"os/signal"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/kluis/kluis/internal/deliver"
	"github.com/kluis/kluis/internal/httpserver"
	"github.com/kluis/kluis/internal/mail"
	"github.com/kluis/kluis/internal/sms"
	"github.com/kluis/kluis/internal/sqlstore/auditlog"
)

// cmdServe runs the server until SIGINT or SIGTERM (or ctx ends), then shuts
// down gracefully: in-flight requests finish, queued mail gets a last
// delivery attempt and every chain gets a final checkpoint.
func cmdServe(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("serve")
	fs.StringVar(&c.Addr, "addr", c.Addr, "the `HOST:PORT` to listen on (or KLUIS_ADDR)")
	fs.StringVar(&c.PublicURL, "public-url", c.PublicURL, "the `URL` every link in mail starts with, recorded for the other commands; default http:// and the listen address (or KLUIS_PUBLIC_URL)")
	fs.StringVar(&c.MetricsAddr, "metrics-addr", c.MetricsAddr, "the `HOST:PORT` of the Prometheus metrics, apart from the API; off when empty (or KLUIS_METRICS_ADDR)")
	fs.StringVar(&c.SecurityEmail, "security-email", c.SecurityEmail, "the operator's security `ADDRESS`: sign-in alarms at once, and the security digest (or KLUIS_SECURITY_EMAIL)")
	fs.StringVar(&c.Environment, "environment", c.Environment, "what this instance is for: production (default), acceptance, test or development; outside production every page and API answer says so (or KLUIS_ENVIRONMENT; default the data folder's environment label)")
	pos, err := parseFlags(fs, args)
	if err != nil {
		return err
	}
	if len(pos) > 0 {
		return usageError("serve takes no arguments")
	}
	if err := checkDSN(flagSet(fs, "db"), c.DB); err != nil {
		return err
	}
	if err := checkDSN(flagSet(fs, "keys-db"), c.KeysDB); err != nil {
		return err
	}
	environment, err := resolveEnvironment(c.DataDir, c.Environment)
	if err != nil {
		return err
	}
	if c.DB == "" {
		// One server per embedded database, held until everything below
		// is closed (the deferred calls run in reverse order).
		unlock, err := lockDataFolder(c.DataDir)
		if err != nil {
			return err
		}
		defer unlock()
	}
	ctx, stop := signal.NotifyContext(ctx, syscall.SIGINT, syscall.SIGTERM)
	defer stop()

	ln, err := net.Listen("tcp", c.Addr)
	if err != nil {
		return fmt.Errorf("listen on %s: %w", c.Addr, err)
	}
	defer ln.Close()
	if c.PublicURL == "" {
		c.PublicURL = "http://" + ln.Addr().String()
	}
	// Everything the store reports to is made first and given to it at
	// construction: the metrics and the workers' wake-ups.
	mailWake, smsWake := deliver.NewWaker(), deliver.NewWaker()
	a, err := openWired(ctx, c, true, wiring{mailWake: mailWake, smsWake: smsWake}, stderr)
	if err != nil {
		return err
	}
	metrics := a.metrics
	defer a.close()
	if err := a.db.SetSetting(ctx, "public_url", c.PublicURL); err != nil {
		return err
	}
	worker := mail.NewWorker(a.areas.MailQueue, a.sender, a.log, nil, mailWake)
	worker.FirstRetry = c.MailRetry
	texts := sms.NewWorker(a.areas.SMSQueue, a.texter, a.log, nil, smsWake)

	// Anonymous statistics (R37): counted per request in memory, flushed
	// to the shared counters every minute and at shutdown.
	usage := httpserver.NewUsageCounter(a.areas.Usage, a.areas.Core.Now)
	srv := &http.Server{
		Handler: httpserver.NewServer(httpserver.Config{
			Services: a.areas.Services(), Ready: a.db.Ping, Logger: a.log, Metrics: metrics, TrustedProxies: c.TrustedProxies, MaxBodyBytes: c.MaxBodyBytes, MaxFileBytes: c.MaxFileBytes,
			OperatorAddresses: c.OperatorAddresses,
			HTTPS:             strings.HasPrefix(strings.ToLower(c.PublicURL), "https://"),
			Usage:             usage,
			Environment:       environment,
		}),
		ReadHeaderTimeout: 10 * time.Second,
		ReadTimeout:       30 * time.Second,
		WriteTimeout:      5 * time.Minute, // audit exports stream
		IdleTimeout:       2 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
	var wg sync.WaitGroup
	bg, stopBG := context.WithCancel(context.WithoutCancel(ctx))
	defer stopBG()
	wg.Add(4)
	go func() { defer wg.Done(); worker.Run(bg) }()
	go func() { defer wg.Done(); texts.Run(bg) }()
	go func() { defer wg.Done(); a.checkpointLoop(bg) }()
	go func() { defer wg.Done(); a.keyWorkLoop(bg) }()
	wg.Add(1)
	go func() {
		defer wg.Done()
		usage.Run(bg, time.Minute, func(err error) { a.log.Warn("usage statistics not stored; kept for the next try", "err", err.Error()) })
	}()
	// Scheduled work (scheduler.go): the jobs of a.scheduledJobs, each on
	// one node at a time.
	sched := newScheduler(a, a.scheduledJobs())
	wg.Add(1)
	go func() { defer wg.Done(); sched.Run(bg) }()

	var metricsSrv *http.Server
	if c.MetricsAddr != "" {
		mln, err := net.Listen("tcp", c.MetricsAddr)
		if err != nil {
			return fmt.Errorf("listen on %s for metrics: %w", c.MetricsAddr, err)
		}
		metricsSrv = &http.Server{Handler: metrics.Handler(), ReadHeaderTimeout: 10 * time.Second}
		go metricsSrv.Serve(mln)
		a.log.Info("metrics listening", "addr", mln.Addr().String())
	}

	a.log.Info("kluis listening", "addr", ln.Addr().String(), "public_url", c.PublicURL, "engine", a.db.Engine, "version", version, "environment", environment)
	fmt.Fprintf(stdout, "kluis %s listening on http://%s\n", version, ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		if !errors.Is(err, http.ErrServerClosed) {
			return err
		}
	case <-ctx.Done():
	}
	a.log.Info("shutting down")
	shutdownCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 15*time.Second)
	defer cancel()
	err = srv.Shutdown(shutdownCtx)
	if metricsSrv != nil {
		metricsSrv.Shutdown(shutdownCtx)
	}
	stopBG()
	wg.Wait()
	if _, derr := worker.DeliverDue(shutdownCtx); derr != nil {
		a.log.Warn("mail left in the queue for the next start", "err", derr.Error())
	}
	if _, derr := texts.DeliverDue(shutdownCtx); derr != nil {
		a.log.Warn("text messages left in the queue for the next start", "err", derr.Error())
	}
	if _, cerr := a.areas.Audit.Checkpoint(shutdownCtx, auditlog.DefaultCheckpointPolicy, true); cerr != nil {
		err = errors.Join(err, fmt.Errorf("final audit checkpoint: %w", cerr))
	}
	return err
}

// keyWorkLoop finishes key work that outlives a request or a command:
// recording in the audit chains the key events that another process (a
// command, another node) left in the key store, destroying the keys of
// deleted users and organisations whose destruction failed
// (crypto-shredding), and re-encrypting data after an organisation key
// rotation, resumed where it stopped.
func (a *app) keyWorkLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		if _, err := a.areas.Core.DrainKeyEvents(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("key events not recorded in the audit log; retried", "err", err.Error())
		}
		if n, err := a.areas.Core.Shred(ctx); err != nil && ctx.Err() == nil {
			a.log.Error("key destruction failed; retried", "pending", n, "err", err.Error())
		}
		if _, err := a.areas.KeyWork.Reencrypt(ctx, nil); err != nil && ctx.Err() == nil {
			a.log.Error("re-encryption failed; retried", "err", err.Error())
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// checkpointLoop signs audit checkpoints when they are due (docs/SECURITY.md, Audit).
func (a *app) checkpointLoop(ctx context.Context) {
	t := time.NewTicker(5 * time.Second)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
			if _, err := a.areas.Audit.Checkpoint(ctx, auditlog.DefaultCheckpointPolicy, false); err != nil && ctx.Err() == nil {
				a.log.Error("audit checkpoint failed", "err", err.Error())
			}
		}
	}
}
