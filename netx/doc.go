// Package netx is dtrain's network layer: a libp2p host (QUIC first, TCP
// fallback) with a persistent identity, a Kademlia DHT, run-scoped
// discovery and gossip, and the narrow interfaces (Host, Topic, Network)
// that the code in node/ depends on instead of libp2p's own types. The
// protocols themselves are state machines without I/O: node/sim drives
// them with simulated messages and virtual time, not through these
// interfaces.
//
// Everything a peer sees is scoped by run: DHT rendezvous keys, gossip
// topics and stream protocol ids all carry the run id, so peers of one run
// never meet the traffic of another.
package netx
