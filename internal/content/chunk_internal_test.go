package content

import (
	"math/bits"
	"testing"
)

// The gear table is the format's: 256 distinct values, about half their
// bits set; the masks are the top 22 and 18 bits.
func TestGearTableAndMasks(t *testing.T) {
	seen := map[uint64]bool{}
	ones := 0
	for _, g := range gear {
		seen[g] = true
		ones += bits.OnesCount64(g)
	}
	if len(seen) != 256 {
		t.Errorf("%d distinct gear values, want 256", len(seen))
	}
	if avg := float64(ones) / 256; avg < 30 || avg > 34 {
		t.Errorf("gear values have %.1f bits set on average, want about 32", avg)
	}
	if bits.OnesCount64(strictMask) != 22 || bits.LeadingZeros64(strictMask) != 0 || bits.OnesCount64(looseMask) != 18 || bits.LeadingZeros64(looseMask) != 0 {
		t.Errorf("masks %x and %x, want the top 22 and 18 bits", strictMask, looseMask)
	}
	// The first entry pins the table's derivation.
	if gear[0] != 0x5cfc0b1060e39cf4 {
		t.Errorf("gear[0] = %#x, want %#x: the table changed, and with it every cut point", gear[0], uint64(0x5cfc0b1060e39cf4))
	}
}
