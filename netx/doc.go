// Package netx is dtrain's network layer: a libp2p host (QUIC first, TCP
// fallback) with a persistent identity, a Kademlia DHT, run-scoped
// discovery and gossip, and the narrow interfaces (Host, Topic) that the
// algorithms in node/ depend on so that node/sim can stand in for the
// network.
//
// Everything a peer sees is scoped by run: DHT rendezvous keys, gossip
// topics and stream protocol ids all carry the run id, so peers of one run
// never meet the traffic of another.
package netx
