package main

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// serveLockName is the lock file of kluis serve in the data folder.
const serveLockName = "serve.lock"

// errLocked is what lockFile returns when another open file holds the lock.
var errLocked = errors.New("locked")

// lockDataFolder takes the data folder's serve lock, which kluis serve holds
// for its whole life when its database is the embedded SQLite one. A second
// server on the same folder would otherwise start without a word and record
// its own public URL over the first's, so that the next invitation mailed
// from the command line links to a server that is not there; with the lock
// it refuses before it records anything. The other commands never take the
// lock: they work beside a running server. With PostgreSQL several nodes
// share one database and nothing is locked.
//
// The lock is the operating system's (flock on DATA/serve.lock), released
// when the process ends, however it ends: a lock file left behind by a
// killed server never blocks the next start. The file's content, the
// holder's process id, only serves the message. The file is never removed:
// removing it while another process waits to open it would give two
// servers two different locks.
func lockDataFolder(dir string) (release func() error, err error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("data folder: %w", err)
	}
	path := filepath.Join(dir, serveLockName)
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil, fmt.Errorf("serve lock: %w", err)
	}
	if err := lockFile(f); err != nil {
		f.Close()
		if !errors.Is(err, errLocked) {
			return nil, fmt.Errorf("serve lock %s: %w", path, err)
		}
		holder := ""
		if b, rerr := os.ReadFile(path); rerr == nil {
			if pid, perr := strconv.Atoi(strings.TrimSpace(string(b))); perr == nil && pid > 0 {
				holder = fmt.Sprintf(" (process %d)", pid)
			}
		}
		return nil, &cliError{code: 1,
			msg:  "another kluis serve" + holder + " is running on the data folder " + dir,
			hint: "stop it first, or start this one with a data folder of its own (--data); the other commands (org create, audit verify, …) work beside a running server"}
	}
	// Informative only: a failure to write it changes nothing about the lock.
	if f.Truncate(0) == nil {
		f.WriteAt([]byte(strconv.Itoa(os.Getpid())+"\n"), 0)
	}
	return f.Close, nil
}
