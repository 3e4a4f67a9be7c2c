package main

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"time"

	"github.com/kluis/kluis"
)

// cmdThrottle shows and settles the address blocks of the brute-force
// protection (R18, docs/SECURITY.md "Brute-force protection"): addresses appear by reference only; an
// operator told an address (a customer's office, say) finds its reference
// with --address.
func cmdThrottle(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 {
		return usageOf("throttle")
	}
	c, err := newConfig(getenv)
	if err != nil {
		return err
	}
	fs := c.flags("throttle " + args[0])
	address := new(string)
	if args[0] != "list" {
		fs.StringVar(address, "address", "", "the client `IP` address instead of its reference")
	}
	a, pos, err := prepare(ctx, c, fs, args[1:], false, stderr)
	if err != nil {
		return err
	}
	defer a.close()
	switch args[0] {
	case "list":
		if len(pos) > 0 || *address != "" {
			return usageOf("throttle " + args[0])
		}
		blocks, err := a.areas.Throttle.AddressBlocks(ctx, kluis.CLIActor)
		if err != nil {
			return clientError(err)
		}
		for _, b := range blocks {
			until := "permanent"
			if !b.Permanent {
				until = "until " + b.Until.Format(time.RFC3339)
			}
			fmt.Fprintf(stdout, "%s\tblock %d\t%s\n", b.Ref, b.Blocks, until)
		}
		return nil
	case "lift", "permanent":
		ref := ""
		switch {
		case len(pos) == 1 && *address == "":
			ref = pos[0]
		case len(pos) == 0 && *address != "":
			ip, err := netip.ParseAddr(*address)
			if err != nil {
				return usageError("--address: %q is not an IP address", *address)
			}
			if ref, err = a.areas.Throttle.AddressRef(ctx, ip); err != nil {
				return err
			}
		default:
			return usageOf("throttle " + args[0])
		}
		set := a.areas.Throttle.LiftAddressBlock
		if args[0] == "permanent" {
			set = a.areas.Throttle.KeepAddressBlock
		}
		if err := set(ctx, kluis.CLIActor, ref); err != nil {
			if kluis.ErrorCode(err) == kluis.ENotFound {
				return &cliError{code: 1, msg: "no counted address " + ref}
			}
			return clientError(err)
		}
		fmt.Fprintf(stdout, "%s: %s\n", ref, map[string]string{"lift": "block lifted", "permanent": "blocked until lifted"}[args[0]])
		return nil
	}
	return usageOf("throttle")
}
