// Package links estimates a peer's own upload and download rates, the
// figure its all-reduce span is sized by (DESIGN.md: "sized by measured
// bandwidth"), from timed transfers: bandwidth probes to a few peers
// (netx.MeasureBandwidth) and the bytes and times of the all-reduce rounds
// it took part in.
//
// Both kinds of sample are lower bounds of the link's rate: a probe runs at
// the slower of two links, and a round's bytes over its time are slowed by
// its slowest member. So an Estimator keeps one smoothed estimate per kind
// and direction and reports the larger of a direction's two. Each estimate
// is an exponential moving average (weight 1/2) of the median of the last
// three samples, so from the third sample on a single outlier moves it not
// at all. The second sample counts as the smaller of the first two: a span
// sized on an overstated rate slows the whole round, an understated one
// costs only this peer's share.
//
// An Estimator is pure state, like the protocol state machines: the caller
// times the transfers and feeds it.
package links
