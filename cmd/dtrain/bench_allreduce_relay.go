package main

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/p2p/protocol/circuitv2/client"
	ma "github.com/multiformats/go-multiaddr"
	"github.com/urfave/cli/v2"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/netx/netns"
)

// runRelayedAllReduce times the same rounds as runDTrainAllReduce with
// every peer reaching the others only through a relay process without
// limits: on loopback, or under --netns on the topology's last host.
func runRelayedAllReduce(ctx context.Context, c *cli.Context, tp *netns.Topology, rates, paces []netns.Rate, timeout time.Duration) (allReduceBench, error) {
	exe, err := os.Executable()
	if err != nil {
		return allReduceBench{}, fmt.Errorf("find own binary: %w", err)
	}
	args := []string{"--log-level", childLogLevel(c), "bench", "allreduce", "--relay-node", "--transport", c.String("transport")}
	relay, err := startBenchChild(ctx, tp, c.Int("peers"), exe, args)
	if err != nil {
		return allReduceBench{}, fmt.Errorf("start the relay: %w", err)
	}
	defer func() {
		_ = relay.stdin.Close()
		_ = relay.cmd.Wait()
	}()
	var info peer.AddrInfo
	if err := relay.readJSON(&info); err != nil {
		return allReduceBench{}, fmt.Errorf("relay: %w", err)
	}
	if len(info.Addrs) == 0 {
		return allReduceBench{}, fmt.Errorf("relay %s has no address", info.ID)
	}
	return runDTrainAllReduce(ctx, c, tp, rates, paces, timeout, info.Addrs[0].String()+"/p2p/"+info.ID.String())
}

// runBenchRelay is the relay process of bench allreduce --relay: a relay
// service without limits on listen, printing its address, until stdin
// closes.
func runBenchRelay(ctx context.Context, listen, transport string) error {
	cfg := benchHostConfig(listen, transport)
	cfg.RelayService, cfg.RelayLimit = true, &netx.RelayLimit{}
	nd, err := netx.New(ctx, cfg)
	if err != nil {
		return fmt.Errorf("relay: start host: %w", err)
	}
	defer nd.Close()
	if err := json.NewEncoder(os.Stdout).Encode(peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host().Addrs()}); err != nil {
		return err
	}
	_, err = io.Copy(io.Discard, os.Stdin)
	return err
}

// benchHostConfig is a benchmark process's host: one listen address on
// listen (IPv4) over transport (quic or tcp), no NAT traversal.
func benchHostConfig(listen, transport string) netx.Config {
	cfg := netx.DefaultConfig()
	cfg.ListenAddrs = []string{"/ip4/" + listen + "/udp/0/quic-v1"}
	if transport == "tcp" {
		cfg.ListenAddrs = []string{"/ip4/" + listen + "/tcp/0"}
	}
	cfg.EnableNAT = false
	return cfg
}

// reserveAtRelay connects h to the relay at addr (a multiaddr ending in
// /p2p/<id>) and reserves a slot there; it returns h's circuit address,
// the only one the other peers are given.
func reserveAtRelay(ctx context.Context, nd *netx.Node, addr string) (ma.Multiaddr, error) {
	infos, err := netx.ParseAddrInfos([]string{addr})
	if err != nil {
		return nil, err
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	if err := nd.Host().Connect(ctx, infos[0]); err != nil {
		return nil, fmt.Errorf("connect to the relay: %w", err)
	}
	if _, err := client.Reserve(ctx, nd.Host(), infos[0]); err != nil {
		return nil, fmt.Errorf("reserve a slot at the relay: %w", err)
	}
	return ma.NewMultiaddr(addr + "/p2p-circuit")
}

// checkRelayed fails unless every connection nd has to peers runs through
// a relay: a direct one would make the relayed figure a direct one.
func checkRelayed(nd *netx.Node, peers []peer.ID) error {
	for _, p := range peers {
		if p == nd.ID() {
			continue
		}
		for _, c := range nd.Host().Network().ConnsToPeer(p) {
			if !netx.IsRelayed(c) {
				return fmt.Errorf("a direct connection to %s (%s), want the relay's only", p, c.RemoteMultiaddr())
			}
		}
	}
	return nil
}
