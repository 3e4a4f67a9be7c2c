package sqlstore_test

import (
	"context"
	"net/netip"

	"github.com/kluis/kluis"
)

// The tests of this package carry a request's client address in their
// context, as a request would bring it: originOf gives the kluis.Origin the
// store's calls take.

type clientKey struct{}

func withClient(ctx context.Context, addr netip.Addr) context.Context {
	return context.WithValue(ctx, clientKey{}, addr)
}

func originOf(ctx context.Context) kluis.Origin {
	a, _ := ctx.Value(clientKey{}).(netip.Addr)
	return kluis.Origin{Client: a}
}
