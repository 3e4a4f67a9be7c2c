// Package loadtest holds kluis's end-to-end benchmarks: real HTTP over
// loopback against a real server on SQLite and PostgreSQL, with the load
// generator in the same process. Figures go to docs/PERFORMANCE.md with the
// command that produced them; nothing here is asserted.
package loadtest
