//go:build !unix

package main

import "os"

// lockFile does nothing where flock does not exist: kluis is run on
// Linux and other Unix systems, where the serve lock is real.
func lockFile(f *os.File) error { return nil }
