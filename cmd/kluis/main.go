// Command kluis runs the kluis platform and administers it: see
// shared/CONTRACT.md for the commands and `kluis help`.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}
