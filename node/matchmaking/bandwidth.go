package matchmaking

import (
	"slices"
)

// Bounds on the bandwidths that size a group's spans. A member's Bandwidth
// is its own claim, so nothing but these bounds stops a member from asking
// for a larger span than its link can serve in the round's time.
const (
	// MaxClaimRatio caps a reducer's bandwidth at this multiple of the
	// group's median claim. The load-balancing LP gives a member whose
	// claim is r times everyone else's up to about (2r−1)/N of an
	// N-member vector (allreduce.SpansForRoles), so a liar at the cap owns
	// about two fair shares: its reduce phase, which must end by half the
	// round's deadline (allreduce.TimeoutsFor), takes about twice what an
	// equal span's would, and its whole round at most about 1.5 times.
	// Honest links faster than 1.5 times the median are only under-used.
	MaxClaimRatio = 1.5
	// MinClaim and MaxClaim (bytes/s: 8 kbit/s and 8 Tbit/s) keep every
	// claim where the LP's arithmetic is exact enough: a claim below
	// MinClaim counts as MinClaim, one above MaxClaim as MaxClaim.
	MinClaim = 1e3
	MaxClaim = 1e12
)

// SpanBandwidths are the bandwidths that size the spans of a group of
// members (in the group's order), from the bandwidths they announced:
//
//   - with no reducer's bandwidth measured (all 0), all are 0: equal spans;
//   - otherwise a reducer that announced 0 (not measured yet) counts at the
//     median of the measured reducers, so it takes a typical share instead
//     of none (and a single measured member never takes the whole vector);
//   - every claim is kept within [MinClaim, MaxClaim] and at most
//     MaxClaimRatio (1.5) × that median. A client's or an aux member's 0
//     stays 0: unmeasured, it constrains nothing.
//
// The median is the lower one of an even count, so a liar in a group of two
// is capped at 1.5 times the other's claim. Every member computes the same
// values from the same group.
func SpanBandwidths(members []Member) []float64 {
	bw := make([]float64, len(members))
	var measured []float64
	for i, m := range members {
		if b := m.Bandwidth; b > 0 {
			bw[i] = min(max(b, MinClaim), MaxClaim)
			if m.Role.Reduces() {
				measured = append(measured, bw[i])
			}
		}
	}
	if len(measured) == 0 {
		clear(bw)
		return bw
	}
	slices.Sort(measured)
	median := measured[(len(measured)-1)/2]
	for i, m := range members {
		switch {
		case bw[i] == 0 && m.Role.Reduces():
			bw[i] = median
		case bw[i] > MaxClaimRatio*median:
			bw[i] = MaxClaimRatio * median
		}
	}
	return bw
}
