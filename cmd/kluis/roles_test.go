package main

import (
	"context"
	"slices"
	"testing"

	"github.com/kluis/kluis"
	"github.com/kluis/kluis/internal/kluistest"
)

// commandRoles says, for every command, which operator roles hold the power
// it uses (R8, R46): the command runs the same service method as the
// operator's route or page would, and that method checks the role. nil
// marks a command of the host alone — serving, migrating, the key store,
// an operator's recovery — which no operator role reaches through the API.
// The command line itself holds every role: whoever runs it has the data
// folder and its root key.
var commandRoles = map[string]struct {
	roles []kluis.OperatorRole
	// call runs the command's service method as actor; nil for a command
	// that checks no actor (the host's).
	call func(ctx context.Context, e *kluistest.Env, org kluis.Org, actor kluis.Actor) error
}{
	"serve": {},
	// The backup commands are the host's: they need the data folder (and
	// for a restore the operator's offline identity), and check no actor.
	"backup run": {}, "backup list": {}, "backup verify": {}, "backup restore": {}, "backup delete": {}, "backup drill": {},
	"migrate": {},
	// The anonymised copy (issue 15) is the host's: it reads the data
	// folder and the key store directly and writes a new instance.
	"export":  {},
	"version": {},
	"help":    {},
	"operator create": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Operators.CreateOperator(ctx, a, "", "", "", kluis.OperatorSupport)
		return err
	}},
	"operator reset-password": {nil, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Services().Operators.ResetOperatorPassword(ctx, a, "nobody@operator.example", "Long enough password 1")
	}},
	"operator disable": {nil, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, _, err := e.Services().Operators.SetOperatorDisabled(ctx, a, "nobody@operator.example", true)
		return err
	}},
	"operator enable": {nil, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, _, err := e.Services().Operators.SetOperatorDisabled(ctx, a, "nobody@operator.example", false)
		return err
	}},
	"operator reset-factors": {nil, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Services().Operators.ResetOperatorFactors(ctx, a, "nobody@operator.example")
	}},
	"org create": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, _, err := e.Services().Orgs.CreateOrg(ctx, a, kluis.NewOrg{})
		return err
	}},
	"org delete": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Services().Orgs.DeleteOrg(ctx, a, "no-such-org")
	}},
	"org list": {kluis.OperatorRoles, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Orgs.FindOrgs(ctx, a)
		return err
	}},
	"org logins": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, o kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Logins.SetLogins(ctx, o.ID, a, true)
		return err
	}},
	"org reset-factors": {nil, func(ctx context.Context, e *kluistest.Env, o kluis.Org, a kluis.Actor) error {
		return e.Factors.ResetManagerFactorsByCLI(ctx, o.ID, a, "nobody@example.test")
	}},
	"announce": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Announcements.SendAnnouncement(ctx, a, kluis.Announcement{})
		return err
	}},
	"user delete": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, o kluis.Org, a kluis.Actor) error {
		return e.Services().Users.EraseOnRequest(ctx, a, o.ID, "nobody@example.test", "the organisation asked")
	}},
	"logins": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Logins.SetInstanceLogins(ctx, a, true)
		return err
	}},
	"throttle list": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.Services().Throttle.AddressBlocks(ctx, a)
		return err
	}},
	"throttle lift": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Throttle.LiftAddressBlock(ctx, a, "no-such-ref")
	}},
	"throttle permanent": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Throttle.KeepAddressBlock(ctx, a, "no-such-ref")
	}},
	"keys rotate": {[]kluis.OperatorRole{kluis.OperatorAdmin}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		_, err := e.KeyWork.RotateOrgKey(ctx, a, "no-such-org")
		return err
	}},
	"jobs": {kluis.OperatorRoles, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		if _, err := e.Services().Jobs.OpenAlerts(ctx, a); err != nil {
			return err
		}
		_, err := e.Services().Jobs.FindJobRuns(ctx, a, "", 10)
		return err
	}},
	"alert resolve": {[]kluis.OperatorRole{kluis.OperatorAdmin, kluis.OperatorSecurity}, func(ctx context.Context, e *kluistest.Env, _ kluis.Org, a kluis.Actor) error {
		return e.Services().Jobs.ResolveAlert(ctx, a, "01a00000-0000-7000-8000-0000000000ff")
	}},
	// Reading the chains and the key store needs the data folder itself.
	"audit verify":     {},
	"keys status":      {},
	"keys export-root": {},
}

// TestCommandRoleTable: every command has a row, and the service method
// behind each refuses exactly the operator roles its row leaves out, and
// lets the command line through (R8, R46).
func TestCommandRoleTable(t *testing.T) {
	for _, c := range commands {
		if _, ok := commandRoles[c.words]; !ok {
			t.Errorf("the command role table has no row for %q", c.words)
		}
	}
	for words := range commandRoles {
		if !slices.ContainsFunc(commands, func(c commandDoc) bool { return c.words == words }) {
			t.Errorf("the command role table has a row for %q, which is no command", words)
		}
	}
	for _, engine := range kluistest.Engines {
		t.Run(engine, func(t *testing.T) {
			t.Parallel()
			e := kluistest.NewEnv(t, engine, kluistest.EnvOptions{})
			org, _ := e.NewOrg(t, kluistest.Name("roles"))
			ctx := context.Background()
			for words, row := range commandRoles {
				if row.call == nil {
					continue
				}
				for _, role := range kluis.OperatorRoles {
					a := kluis.Actor{Realm: kluis.RealmOperator, OperatorID: "01a00000-0000-7000-8000-00000000000a", OperatorRole: role}
					err := row.call(ctx, e, org, a)
					forbidden := kluis.ErrorCode(err) == kluis.EForbidden
					if allowed := slices.Contains(row.roles, role); allowed == forbidden {
						t.Errorf("%s as %s: %v, want allowed=%v", words, role, err, allowed)
					}
				}
				if err := row.call(ctx, e, org, kluis.CLIActor); kluis.ErrorCode(err) == kluis.EForbidden {
					t.Errorf("%s from the command line: forbidden", words)
				}
			}
		})
	}
}
