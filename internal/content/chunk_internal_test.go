package content

import "testing"

// The cut-point polynomial must be irreducible of degree 53 (restic's
// chunker requires both), and the average chunk about 1 MiB.
func TestPolynomial(t *testing.T) {
	if !polynomial.Irreducible() {
		t.Errorf("polynomial %v is reducible", polynomial)
	}
	if d := polynomial.Deg(); d != 53 {
		t.Errorf("polynomial degree %d, want 53", d)
	}
	if avg := MinChunkSize + 1<<averageBits; avg != 1<<20 {
		t.Errorf("expected chunk size %d, want 1 MiB", avg)
	}
}
