// Package sim is a simulated network with virtual time, so the all-reduce,
// matchmaking and progress state machines can be run with thousands of peers,
// slow links, crashes and partitions, deterministically and in seconds.
//
// # Model
//
// Every peer has an access link: an uplink and a downlink, each a FIFO queue
// served at its rate in bytes/s (0 means unlimited), and a one-way latency.
// A message of B bytes sent from s to r at time t:
//
//   - waits for s's uplink, which carries it from u0 = max(t, uplink free)
//     to u1 = u0 + B/up;
//   - its first byte reaches r's downlink at u0 + L, where L is the link
//     latency (s's latency + r's latency unless set per link, plus jitter);
//   - r's downlink serves it from d0 = max(u0 + L, downlink free) for B/down;
//   - it is delivered, whole, at max(d0 + B/down, u1 + L): not before its
//     last byte has left s and crossed the link, nor before r's downlink has
//     carried it.
//
// So one message over a link of rate R and latency L arrives at exactly
// L + B/R (cut-through, not store-and-forward), messages from one sender
// queue behind each other on its uplink, and messages into one receiver on
// its downlink, in the order their first bytes arrive.
//
// # Limits of the model
//
// It is a fluid approximation with FIFO queues, not a packet or TCP model:
//   - concurrent flows through one link are served one after another at the
//     full rate, not shared fairly at once; the total bytes and the time the
//     last one finishes are right, the order of the others' finishes is not;
//   - the two ends are queued independently: a message bottlenecked by a slow
//     sender still books only B/down of the receiver's downlink, as if that
//     downlink could catch up later. Flows limited at different ends at the
//     same time therefore finish somewhat earlier than on a real network;
//   - there is no congestion inside the network, no loss but the faults
//     injected, no slow start, no back-pressure and no per-packet overhead;
//   - time has nanosecond resolution; transfer times are rounded to it;
//   - a bandwidth change applies to transmissions that start after it, never
//     to the rest of one already under way.
//
// # Determinism
//
// Events are ordered by (virtual time, sequence number of scheduling), and
// all randomness (latency jitter) comes from the *rand.Rand passed to New, so
// the same seed and script give the same trace. No wall-clock time is read.
package sim
