// Command kluis runs the kluis platform and administers it: `kluis help`
// lists the commands (help.go), docs/REFERENCE.md describes them.
package main

import (
	"context"
	"os"
)

func main() {
	os.Exit(exitCode(run(context.Background(), os.Args, os.Getenv, os.Stdin, os.Stdout, os.Stderr), os.Stderr))
}
