// Package netns builds real multi-host network topologies on one Linux
// machine: a Linux bridge in its own "switch" network namespace and N host
// namespaces, each joined to the bridge by a veth pair whose two ends are
// shaped with tbf, so every host has its own upload and download rate.
//
// Benchmarks (dtrain bench allreduce) and tests use it to run peers as
// separate hosts with realistic, heterogeneous links instead of loopback.
// Nothing touches the root namespace's networking: the bridge lives in the
// switch namespace and the hosts reach only each other.
//
// Building a topology needs CAP_NET_ADMIN, the ip and tc commands and the
// tbf qdisc; Available reports why not, so callers can skip. A Topology
// always tears down everything it created in Close, including after a
// partial failure in New.
//
// # Shaping
//
// Each host's link is shaped twice: tbf on the host's end of the veth limits
// what the host sends (upload) and tbf on the bridge's end limits what it
// receives (download). A flow from host a to host b therefore runs at
// min(rate a, rate b). tbf counts whole Ethernet frames, so TCP goodput is
// at most 1448/1514 ≈ 0.956 of the rate (1500-byte MTU, TCP timestamps on).
// See tbfParams for the bucket and queue sizes and why they are accurate at
// 50–1000 Mbit/s.
package netns
