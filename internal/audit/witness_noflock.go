//go:build !(linux || darwin || freebsd || netbsd || openbsd || dragonfly)

package audit

import "os"

// lockFile does nothing where flock is missing: appends from one process are
// still serialised by the Witness's mutex, and O_APPEND keeps whole lines
// whole, but a torn line is then repaired without excluding other processes.
func lockFile(*os.File) (unlock func(), err error) {
	return func() {}, nil
}
