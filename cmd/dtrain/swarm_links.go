package main

import (
	"context"
	"fmt"
	"strconv"
	"strings"

	"github.com/dtrain-dev/dtrain/netx/netns"
)

// parseLinks reads --links: one rate in Mbit/s per miner at the start.
func parseLinks(s string, miners int) ([]netns.Rate, error) {
	if s == "" {
		return nil, nil
	}
	parts := strings.Split(s, ",")
	if len(parts) != miners {
		return nil, fmt.Errorf("--links gives %d rates, want one per miner (%d, as --miners)", len(parts), miners)
	}
	rates := make([]netns.Rate, len(parts))
	for i, p := range parts {
		mbit, err := strconv.ParseFloat(strings.TrimSpace(p), 64)
		// tbf takes rates in bit/s: under 0.1 Mbit/s nothing trains, above
		// 100 Gbit/s the shaping is no longer what limits the link.
		if err != nil || !(mbit >= 0.1 && mbit <= 100_000) {
			return nil, fmt.Errorf("--links: %q is no rate in Mbit/s from 0.1 to 100000", p)
		}
		rates[i] = netns.Rate(mbit * float64(netns.Mbit))
	}
	return rates, nil
}

// hostRates are the topology's links: host 0 is the bootstrap node, hosts
// 1 to miners+1 the miners (the late joiner last), then the validators. All
// but the miners at the start get the fastest of --links.
func hostRates(o swarmOptions) []netns.Rate {
	fastest := o.links[0]
	for _, r := range o.links {
		fastest = max(fastest, r)
	}
	rates := []netns.Rate{fastest}
	rates = append(rates, o.links...)
	rates = append(rates, fastest) // the late joiner
	for range o.validators {
		rates = append(rates, fastest)
	}
	return rates
}

// host is the topology host of swarm process who (0: the bootstrap node,
// i: miner i, -v: validator v).
func (s *swarm) host(who int) int {
	if who < 0 {
		return s.opts.miners + 1 - who
	}
	return who
}

// listen is the QUIC address process who listens on: its host's address
// with --links, else loopback.
func (s *swarm) listen(who int) string {
	if s.topo == nil {
		return "/ip4/127.0.0.1/udp/0/quic-v1"
	}
	return "/ip4/" + s.topo.Addr(s.host(who)) + "/udp/0/quic-v1"
}

// buildLinks makes the --links topology, or says why this machine cannot.
func (s *swarm) buildLinks(ctx context.Context) error {
	if len(s.opts.links) == 0 {
		return nil
	}
	if err := netns.Available(); err != nil {
		return fmt.Errorf("--links: %w", err)
	}
	t, err := netns.New(ctx, "swarm", hostRates(s.opts))
	if err != nil {
		return fmt.Errorf("--links: %w", err)
	}
	s.topo = t
	return nil
}

// linksNote describes the links for the header.
func linksNote(o swarmOptions) string {
	if len(o.links) == 0 {
		return "on 127.0.0.1"
	}
	var rs []string
	for _, r := range o.links {
		rs = append(rs, r.String())
	}
	return "each in its own network namespace (miners' links " + strings.Join(rs, ", ") + " each way; the others " + hostRates(o)[0].String() + ")"
}

// linksMbit are --links in Mbit/s for the JSON header (nil: loopback).
func linksMbit(o swarmOptions) []float64 {
	var mb []float64
	for _, r := range o.links {
		mb = append(mb, float64(r)/float64(netns.Mbit))
	}
	return mb
}
