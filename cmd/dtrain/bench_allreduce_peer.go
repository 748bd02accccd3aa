package main

import (
	"bufio"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"math"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/libp2p/go-libp2p/core/peer"
	"github.com/libp2p/go-libp2p/core/protocol"
	ma "github.com/multiformats/go-multiaddr"
	"golang.org/x/time/rate"

	"github.com/dtrain-dev/dtrain/netx"
	"github.com/dtrain-dev/dtrain/netx/netns"
	"github.com/dtrain-dev/dtrain/node/allreduce"
	"github.com/dtrain-dev/dtrain/node/allreduce/p2p"
	"github.com/dtrain-dev/dtrain/node/matchmaking"
)

// benchAllReduceProto is the protocol prefix of the benchmark's rounds; each
// iteration appends its number, so a late frame of one round can never be
// read as part of the next.
const benchAllReduceProto = "/dtrain/bench/allreduce/1.0.0/"

// allReducePeerSetup is what the parent sends every child once all have
// started: the group in rank order and the bandwidths the spans are sized
// by (all zero: equal spans).
type allReducePeerSetup struct {
	Peers     []peer.AddrInfo `json:"peers"`
	Bandwidth []float64       `json:"bandwidth"`
}

// allReducePeerIter is one child's answer to one "go" line.
type allReducePeerIter struct {
	Iter   int     `json:"iter"`
	TookS  float64 `json:"took_s"`
	MaxErr float64 `json:"max_err"`
	Digest string  `json:"digest"` // of the result's bytes: every peer's must be the same
	Err    string  `json:"err,omitempty"`
}

// allReducePeerConfig is the part of the command line a child needs.
type allReducePeerConfig struct {
	rank, peers, n, part int
	codec                allreduce.Codec
	agg                  allreduce.Aggregation
	listen, transport    string
	timeout              time.Duration
	pace                 netns.Rate // upload limit; 0: none
	relay                string     // the relay's multiaddr: reach the others only through it; "": directly
}

// benchValue is rank's deterministic value at index j, in [-1, 1): every
// child can compute every other's vector, so each checks the mean it gets
// against the exact one on its own.
func benchValue(rank, j int) float32 {
	x := uint64(rank)<<40 ^ uint64(j)
	// splitmix64's finalizer (Steele et al. 2014).
	x += 0x9e3779b97f4a7c15
	x = (x ^ x>>30) * 0xbf58476d1ce4e5b9
	x = (x ^ x>>27) * 0x94d049bb133111eb
	x ^= x >> 31
	return float32(int32(x>>32)) / (1 << 31)
}

// benchVectors returns rank's vector and the exact mean over all peers'.
func benchVectors(rank, peers, n int) (own, mean []float32) {
	own, mean = make([]float32, n), make([]float32, n)
	for j := range n {
		var sum float64
		for r := range peers {
			v := benchValue(r, j)
			sum += float64(v)
			if r == rank {
				own[j] = v
			}
		}
		mean[j] = float32(sum / float64(peers))
	}
	return own, mean
}

// runAllReducePeer is the child side of bench allreduce: print this host's
// address, read the group, then run one round per "go N" line on stdin and
// answer each with an allReducePeerIter, until stdin closes.
func runAllReducePeer(ctx context.Context, pc allReducePeerConfig) error {
	nd, err := netx.New(ctx, benchHostConfig(pc.listen, pc.transport))
	if err != nil {
		return fmt.Errorf("peer %d: start host: %w", pc.rank, err)
	}
	defer nd.Close()
	self := peer.AddrInfo{ID: nd.ID(), Addrs: nd.Host().Addrs()}
	if pc.relay != "" {
		circuit, err := reserveAtRelay(ctx, nd, pc.relay)
		if err != nil {
			return fmt.Errorf("peer %d: %w", pc.rank, err)
		}
		self.Addrs = []ma.Multiaddr{circuit}
	}
	out := json.NewEncoder(os.Stdout)
	if err := out.Encode(self); err != nil {
		return err
	}
	own, want := benchVectors(pc.rank, pc.peers, pc.n)
	in := bufio.NewReader(os.Stdin)
	line, err := in.ReadBytes('\n')
	if err != nil {
		return fmt.Errorf("peer %d: read group: %w", pc.rank, err)
	}
	var setup allReducePeerSetup
	if err := json.Unmarshal(line, &setup); err != nil {
		return fmt.Errorf("peer %d: group %q: %w", pc.rank, line, err)
	}
	round, ids, err := benchRoundConfig(pc, setup, nd.ID().String())
	if err != nil {
		return err
	}
	for _, p := range setup.Peers[pc.rank+1:] {
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := nd.Host().Connect(cctx, p)
		cancel()
		if err != nil {
			return fmt.Errorf("peer %d: connect to %s: %w", pc.rank, p.ID, err)
		}
	}
	if _, err := fmt.Fprintln(os.Stdout, `{"ready":true}`); err != nil {
		return err
	}
	uplink := p2p.NewUplinkLimit(float64(pc.pace)) // shared by the rounds, as a miner's
	vec := make([]float32, pc.n)
	for {
		line, err := in.ReadString('\n')
		if err == io.EOF {
			return nil
		}
		if err != nil {
			return err
		}
		iter, err := strconv.Atoi(strings.TrimPrefix(strings.TrimSpace(line), "go "))
		if err != nil {
			return fmt.Errorf("peer %d: parent sent %q", pc.rank, line)
		}
		// The round may reduce into its vector, so each gets a fresh copy.
		copy(vec, own)
		rep := allReducePeerIter{Iter: iter}
		rep.TookS, rep.MaxErr, rep.Digest, err = runBenchRound(ctx, nd.Host(), ids, round, vec, want, iter, uplink)
		if err == nil && pc.relay != "" {
			err = checkRelayed(nd, ids)
		}
		if err != nil {
			rep.Err = err.Error()
		}
		if err := out.Encode(rep); err != nil {
			return err
		}
	}
}

// benchRoundConfig builds the round every iteration repeats, as this
// peer (self) runs it: the group is every peer, a full member of weight 1,
// with spans sized by setup's bandwidths. It returns the members' ids in
// the group's order.
func benchRoundConfig(pc allReducePeerConfig, setup allReducePeerSetup, self string) (allreduce.RoundConfig, []peer.ID, error) {
	if len(setup.Peers) != pc.peers || len(setup.Bandwidth) != pc.peers {
		return allreduce.RoundConfig{}, nil, fmt.Errorf("peer %d: group of %d peers and %d bandwidths, want %d",
			pc.rank, len(setup.Peers), len(setup.Bandwidth), pc.peers)
	}
	members := make([]matchmaking.Member, pc.peers)
	for i, p := range setup.Peers {
		members[i] = matchmaking.Member{ID: p.ID.String(), Role: matchmaking.Full, Weight: 1, Bandwidth: setup.Bandwidth[i]}
	}
	g := matchmaking.NewGroup("bench", 0, members)
	cfg, err := g.RoundConfig(self, nil, matchmaking.RoundOptions{Len: pc.n, Codec: pc.codec, Aggregation: pc.agg, PartSize: pc.part, Timeout: pc.timeout})
	if err != nil {
		return allreduce.RoundConfig{}, nil, err
	}
	ids, err := p2p.Peers(cfg.Group)
	return cfg, ids, err
}

// runBenchRound runs one round over vec and returns its time and the
// largest distance of the result from want.
func runBenchRound(ctx context.Context, h netx.Host, ids []peer.ID, cfg allreduce.RoundConfig, vec, want []float32, iter int, uplink *rate.Limiter) (float64, float64, string, error) {
	cfg.Vector = vec
	r, err := allreduce.NewRound(cfg)
	if err != nil {
		return 0, 0, "", err
	}
	t0 := time.Now()
	res, err := p2p.RunRound(ctx, h, protocol.ID(benchAllReduceProto+strconv.Itoa(iter)), ids, r, 5*time.Millisecond, p2p.WithUplinkLimit(uplink))
	took := time.Since(t0).Seconds()
	if err != nil {
		return took, 0, "", err
	}
	if len(res.Contributors) != len(ids) {
		return took, 0, "", fmt.Errorf("round averaged %d of %d peers' vectors", len(res.Contributors), len(ids))
	}
	h256 := sha256.New()
	_ = binary.Write(h256, binary.LittleEndian, res.Vector)
	digest := hex.EncodeToString(h256.Sum(nil)[:8])
	var maxErr float64
	for j, v := range res.Vector {
		d := math.Abs(float64(v) - float64(want[j]))
		if math.IsNaN(d) {
			d = math.Inf(1)
		}
		maxErr = max(maxErr, d)
	}
	return took, maxErr, digest, nil
}
